# The two commands of the README:
#   make run    builds and starts the server on 127.0.0.1:7700 with data in ./data
#   make test   checks the generated protocol code and runs every test
# Both install what the build needs (libclang, g++; the tests also strace) on Debian when run as root,
# or say exactly what to install.
#
# Everything builds in the release profile, so RocksDB's C++ compiles once (~10 min on
# 2 cores) and the tests, the server and the benches share it.

CARGO ?= cargo
ARGS ?=

.PHONY: run test deps check-generated lint bench

deps:
	@./scripts/install-deps.sh

run: deps
	$(CARGO) run --release --bin imserver -- $(ARGS)

test: check-generated
	@./scripts/install-deps.sh --test
	$(CARGO) test --release

check-generated:
	./protocol/generate.sh --check

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets -- -D warnings

bench: deps
	$(CARGO) bench
