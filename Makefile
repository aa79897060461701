# postline: `make run` starts the demo stack, `make test` runs every test.
GO      ?= go
CONFIG  ?= etc/postline.toml

# An execution count, not a duration: a -fuzztime duration can end in a
# spurious "context deadline exceeded" on a loaded machine (go.dev/issue/75804).
FUZZTIME ?= 100000x
# package:target pairs run by `make fuzz`
FUZZ_TARGETS = address:FuzzParse sieve:FuzzParse guard:FuzzDataReader guard:FuzzDataReaderRuns queue:FuzzDecodeEnvelope \
	mda:FuzzResolve mda:FuzzLFWriter msa:FuzzCompleteHeader \
	third_party/go-smtp:FuzzDataReaderRuns third_party/go-smtp:FuzzDotWriterRuns

.PHONY: build run test bench fuzz chaos powerloss vet clean proto install deb

# `make proto` regenerates plugins/pb from plugins/proto with these pinned
# generators (installed into bin/tools) and Debian's protoc (protobuf-compiler).
# The build needs none of them: the generated code is committed.
PROTOC_GEN_GO      = google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC = google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
TOOLS = $(CURDIR)/bin/tools

# Bundled plugins go beside the daemons as postline-plugin-NAME, where a
# [[plugins]] table without a path finds them.
LDFLAGS ?=
GOBUILD  = $(GO) build -ldflags '$(LDFLAGS)'
build:
	$(GOBUILD) -o bin/ ./cmd/...
	$(GOBUILD) -o bin/postline-plugin-return-path ./cmd/postline-plugin-return-path
	$(GOBUILD) -o bin/postline-plugin-received ./cmd/postline-plugin-received
	$(GOBUILD) -o bin/postline-plugin-example ./plugins/example
	$(GOBUILD) -o bin/postline-plugin-antispam ./plugins/antispam
	$(GOBUILD) -o bin/postline-plugin-dkim-sign ./plugins/dkimsign
	$(GOBUILD) -o bin/postline-plugin-milter ./plugins/milter
	$(GOBUILD) -o bin/postline-plugin-sieve ./plugins/sieve
	$(GOBUILD) -o bin/postline-plugin-webhook ./plugins/webhook

run: build
	./bin/postline -c $(CONFIG) start

test:
	$(GO) test -count=1 -timeout 15m $$($(GO) list ./... | grep -v /durable/crashtest)
	$(MAKE) powerloss
	cd third_party/go-smtp && $(GO) test -count=1 ./...

# The power-loss explorer (durable/crashtest): every crash state of the
# queue's and the MDA's workloads, its last line the figures. Run from
# the package's folder so that its output is shown. POWERLOSS_STATES=N
# builds up to N states per crash point (default 64); POWERLOSS_SEED=S
# replays the samples of a run.
powerloss:
	cd durable/crashtest && $(GO) test -count=1 -timeout 10m

# Messages the chaos test submits while it kills the MTA and the MDA.
CHAOS_N ?= 500

chaos: build
	POSTLINE_CHAOS_N=$(CHAOS_N) $(GO) test -count=1 -run '^TestChaos$$' -v -timeout 20m ./e2e/

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t#*:}; \
		echo "fuzz $$fn in ./$$pkg for $(FUZZTIME)"; \
		(cd ./$$pkg && $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) .) || exit 1; \
	done

vet:
	gofmt -l . | (! grep .)
	$(GO) vet ./...

proto:
	GOBIN=$(TOOLS) $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(TOOLS) $(GO) install $(PROTOC_GEN_GO_GRPC)
	protoc -I plugins/proto \
		--plugin=protoc-gen-go=$(TOOLS)/protoc-gen-go --go_out=. --go_opt=module=postline \
		--plugin=protoc-gen-go-grpc=$(TOOLS)/protoc-gen-go-grpc --go-grpc_out=. --go-grpc_opt=module=postline \
		plugins/proto/filter.proto

# `make install PREFIX=/usr/local DESTDIR=...`: the binaries in
# PREFIX/lib/postline (the supervisor finds its daemons, and they their
# plugins, beside it), postline itself linked from PREFIX/sbin, the
# systemd unit with that path, the README and an example config.
PREFIX  ?= /usr/local
DESTDIR ?=
LIBDIR   = $(DESTDIR)$(PREFIX)/lib/postline
install: build
	install -d $(LIBDIR) $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/lib/systemd/system $(DESTDIR)$(PREFIX)/share/doc/postline
	install -m 0755 bin/postline bin/postline-* $(LIBDIR)/
	ln -sfn ../lib/postline/postline $(DESTDIR)$(PREFIX)/sbin/postline
	sed 's#/usr/sbin/postline#$(PREFIX)/sbin/postline#g' etc/systemd/postline.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/postline.service
	chmod 0644 $(DESTDIR)$(PREFIX)/lib/systemd/system/postline.service
	install -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/postline/
	install -m 0644 etc/production.toml $(DESTDIR)$(PREFIX)/share/doc/postline/postline.toml.example

# `make deb`: build/postline_VERSION_ARCH.deb, with dpkg-deb (see
# etc/debian/). The binaries are static (CGO_ENABLED=0): the package
# needs no library; and stripped (-s -w): a third smaller. bin/ is
# rebuilt by the next `make build`.
VERSION ?= 0.1.$(shell git rev-list --count HEAD 2>/dev/null || echo 0)
ARCH    := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB      = build/deb
deb:
	rm -rf $(DEB) && mkdir -p build
	CGO_ENABLED=0 $(MAKE) install PREFIX=/usr DESTDIR=$(CURDIR)/$(DEB) LDFLAGS='-s -w'
	rm $(DEB)/usr/share/doc/postline/postline.toml.example # in /etc/postline
	install -d $(DEB)/DEBIAN $(DEB)/etc/postline $(DEB)/usr/bin $(DEB)/usr/lib
	install -m 0644 etc/production.toml $(DEB)/etc/postline/postline.toml.example
	ln -sfn ../lib/postline/postline $(DEB)/usr/sbin/sendmail
	ln -sfn ../lib/postline/postline $(DEB)/usr/bin/mailq
	ln -sfn postline/postline $(DEB)/usr/lib/sendmail
	sed -e 's/@VERSION@/$(VERSION)/' -e 's/@ARCH@/$(ARCH)/' \
		-e "s/@SIZE@/$$(du -sk $(DEB) | cut -f1)/" etc/debian/control > $(DEB)/DEBIAN/control
	install -m 0644 etc/debian/conffiles $(DEB)/DEBIAN/
	install -m 0755 etc/debian/postinst etc/debian/prerm etc/debian/postrm $(DEB)/DEBIAN/
	dpkg-deb --root-owner-group --build $(DEB) build/postline_$(VERSION)_$(ARCH).deb

clean:
	rm -rf bin var build
