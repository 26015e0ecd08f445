#!/usr/bin/env bash
# Fuzzes the targets in fuzz/ with cargo-fuzz (libFuzzer, AddressSanitizer on the Rust code).
#   scripts/fuzz.sh [TARGETS] [SECONDS]    default: "frame_decoder request ticket", 60 s each
# New inputs that reach new code are added to fuzz/corpus/<target>/ (commit them after
# `cargo +nightly fuzz cmin <target>`); a failing input lands in fuzz/artifacts/<target>/:
# copy it to fuzz/regressions/<target>/ so `cargo test` replays it forever.
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). When the release
# build has compiled RocksDB already, its library is linked instead of compiling RocksDB again.
set -euo pipefail
cd "$(dirname "$0")/.."
T="${CARGO_TARGET_DIR:-target}"
lib=$(ls "$T"/release/build/librocksdb-sys-*/out/librocksdb.a 2>/dev/null | head -1 || true)
if [ -n "$lib" ] && [ -z "${ROCKSDB_LIB_DIR:-}" ]; then
  export ROCKSDB_LIB_DIR="$(dirname "$lib")" ROCKSDB_STATIC=1
fi
targets=${1:-"frame_decoder request ticket"}
secs=${2:-60}
for t in $targets; do
  echo "== $t for $secs s"
  cargo +nightly fuzz run -O --target-dir "${FUZZ_TARGET_DIR:-$T/fuzz}" "$t" -- \
    -max_total_time="$secs" -rss_limit_mb=4096 -timeout=10 -print_final_stats=1
done
