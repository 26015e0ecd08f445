#!/usr/bin/env bash
# Measures how long imserver takes from process start to answering a login, on a data
# directory (for example one filled by imload and then killed with kill -9):
#   scripts/restart-time.sh DATA_DIR [PORT]
# The directory is used in place (recovery rewrites it): pass a copy to measure again.
set -euo pipefail
B="${CARGO_TARGET_DIR:-target}/release"
dir=$1
port=${2:-7711}
start=$(date +%s%N)
"$B/imserver" --data "$dir" --listen "127.0.0.1:$port" --http-listen "" --durability wal >/dev/null 2>"$dir.restart.log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
until "$B/imctl" --addr "127.0.0.1:$port" ping >/dev/null 2>&1; do
  kill -0 $pid 2>/dev/null || { echo "imserver exited; see $dir.restart.log" >&2; exit 1; }
  sleep 0.01
done
end=$(date +%s%N)
echo "first login answered $(( (end - start) / 1000000 )) ms after the process started"
echo "peak RSS: $(grep VmHWM /proc/$pid/status | awk '{print $2/1024 " MiB"}')"
