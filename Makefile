# postline: `make run` starts the demo stack, `make test` runs every test.
GO      ?= go
CONFIG  ?= etc/postline.toml

FUZZTIME ?= 20s
# package:target pairs run by `make fuzz`
FUZZ_TARGETS = address:FuzzParse guard:FuzzDataReader queue:FuzzDecodeEnvelope \
	mda:FuzzResolve msa:FuzzCompleteHeader

.PHONY: build run test bench fuzz vet clean

build:
	$(GO) build -o bin/ ./cmd/...

run: build
	./bin/postline -c $(CONFIG) start

test:
	$(GO) test -count=1 -timeout 15m ./...
	cd third_party/go-smtp && $(GO) test -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t#*:}; \
		echo "fuzz $$fn in ./$$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) ./$$pkg || exit 1; \
	done

vet:
	gofmt -l . | (! grep .)
	$(GO) vet ./...

clean:
	rm -rf bin var
