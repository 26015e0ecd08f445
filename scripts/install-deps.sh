#!/usr/bin/env bash
# Installs what the build needs beyond the Rust toolchain, when it is missing:
#   - libclang (bindgen, for the rocksdb crate's C++ bindings) and a C++ compiler
#   - with --test: strace (tests/powerloss.rs traces the server's WAL writes and syncs)
#   - flatc 25.12.19 only matters for regenerating protocol code (protocol/generate.sh).
# Debian/Ubuntu as root: installs with apt-get. Otherwise prints the exact command to run.
set -euo pipefail

have_libclang() {
  [ -n "${LIBCLANG_PATH:-}" ] && return 0
  ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 && return 0
  ls /usr/lib/x86_64-linux-gnu/libclang*.so* /usr/lib/aarch64-linux-gnu/libclang*.so* >/dev/null 2>&1 && return 0
  return 1
}

missing=()
# `--test`: also what the tests need (strace, for the simulated power-loss test).
if [ "${1:-}" = "--test" ]; then
  command -v strace >/dev/null || missing+=(strace)
fi
have_libclang || missing+=(libclang-dev)
command -v g++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${missing[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${missing[@]}" >&2
else
  echo "missing: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
