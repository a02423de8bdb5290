# strata: build, test and demo. "make test" and "make demo" are meant to run
# as root; tests that need root skip without it.

GO        ?= go
BIN       := bin/strata
# Debian packages the tests and the demo use: ar (binutils) and xz unpack
# .deb files, zstd and bzip2 make compressed layers, fuse3 serves test
# Additional Layer Stores, e2fsprogs builds scratch filesystems, util-linux
# gives the interop tests unshare, debootstrap builds the Debian rootfs the
# interop tests import (internal/rootfs). README.md points here rather than
# repeating the list. Go itself (go.mod's version) is not installed here.
DEPS_PKGS := binutils xz-utils zstd bzip2 fuse3 e2fsprogs util-linux debootstrap

.PHONY: all build demo test deps clean stress fuzz bench

all: build

build:
	$(GO) build -o $(BIN) ./cmd/strata

demo: deps build
	scripts/demo.sh $(BIN)

test: deps
	$(GO) vet ./...
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt needed on:" >&2; echo "$$unformatted" >&2; exit 1; \
	fi
	$(GO) test -count=1 ./...

# Times strata against containers-storage and GNU tar (see BENCHMARKS.md);
# inputs are prepared once into .cache/bench. Needs root.
bench: deps
	scripts/bench.sh

# Long robustness runs: 1,000 SIGKILLs of a process using the store, and a
# million files streamed into one layer. CI runs the short forms in "test".
stress:
	STRATA_STRESS_KILLS=1000 STRATA_STRESS_ENTRIES=1000000 $(GO) test -count=1 -timeout 60m \
		-run 'TestCrash$$|TestConcurrency$$|TestHostileManyEntries$$' -v ./layers/ ./archive/

# Each fuzz target for 20 seconds (go test takes one -fuzz target at a time).
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzApply$$' -fuzztime $(FUZZTIME) ./archive/
	$(GO) test -run '^$$' -fuzz '^FuzzTarReader$$' -fuzztime $(FUZZTIME) ./archive/
	$(GO) test -run '^$$' -fuzz '^FuzzLoadLayersJSON$$' -fuzztime $(FUZZTIME) ./layers/
	$(GO) test -run '^$$' -fuzz '^FuzzALSInfo$$' -fuzztime $(FUZZTIME) ./layers/
	$(GO) test -run '^$$' -fuzz '^FuzzLowerChain$$' -fuzztime $(FUZZTIME) ./overlay/
	$(GO) test -run '^$$' -fuzz '^FuzzUpdate$$' -fuzztime $(FUZZTIME) ./internal/crc64iso/
	$(GO) test -run '^$$' -fuzz '^FuzzPacker$$' -fuzztime $(FUZZTIME) ./internal/tarsplit/

# Installs the packages above that are missing; apt-get update runs only
# when something is missing. Without root it only says what is missing.
deps:
	@missing=""; \
	for p in $(DEPS_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || \
			missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "make deps: not root, not installing:$$missing" >&2; exit 0; \
	fi; \
	echo "make deps: installing$$missing"; \
	apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing

clean:
	rm -rf bin .cache
