#!/usr/bin/env bash
# Runs the kill -9, restart, power-loss and full-disk tests many times with the server pinned
# to one CPU beside a busy thread (IMSERVER_TEST_CONTENTION=1, see tests/common), the way the
# crash loop always runs. Losses that need a preempted thread at the wrong moment show up
# here and rarely on an idle machine.
#   scripts/contended-crash-tests.sh [RUNS [LOOPS]]   (default 20 runs of each test, and
#                                                     RUNS crash loops of 150 cycles)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-20}"
loops="${2:-$runs}"
cargo build --release --tests --quiet
failed=0
for t in restart powerloss diskfull; do
  ok=0
  for i in $(seq 1 "$runs"); do
    if IMSERVER_TEST_CONTENTION=1 cargo test --release --quiet --test "$t" >"/tmp/contended-$t.log" 2>&1; then
      ok=$((ok + 1))
    else
      failed=$((failed + 1))
      echo "$t run $i failed; its output:" >&2
      grep -E "panicked|assert|FAILED" "/tmp/contended-$t.log" | head -5 >&2 || true
    fi
  done
  echo "$t: $ok of $runs runs passed"
done
# The crash loop is contended by itself; a different seed each run.
ok=0
for i in $(seq 1 "$loops"); do
  if IMSERVER_CRASH_SEED=$((1000 + i)) cargo test --release --quiet --test crashloop >/tmp/contended-crashloop.log 2>&1; then
    ok=$((ok + 1))
  else
    failed=$((failed + 1))
    echo "crashloop run $i (seed $((1000 + i))) failed:" >&2
    grep -E "panicked|missing|times in|lost" /tmp/contended-crashloop.log | head -3 >&2 || true
  fi
done
echo "crashloop: $ok of $loops runs passed"
[ "$failed" -eq 0 ]
