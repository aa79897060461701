# postline: `make run` starts the demo stack, `make test` runs every test.
GO      ?= go
CONFIG  ?= etc/postline.toml

.PHONY: build run test bench vet clean

build:
	$(GO) build -o bin/ ./cmd/...

run: build
	./bin/postline -c $(CONFIG) start

test:
	$(GO) test -count=1 -timeout 15m ./...
	cd third_party/go-smtp && $(GO) test -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

vet:
	gofmt -l . | (! grep .)
	$(GO) vet ./...

clean:
	rm -rf bin var
