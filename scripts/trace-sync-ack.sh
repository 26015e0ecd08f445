#!/usr/bin/env bash
# Shows, with strace, that in `sync` mode an answer leaves only after the WAL is fdatasync'ed:
# starts imserver under strace, imports one user with imctl, and checks that the WAL write and
# its fdatasync come before the answer's sendto. Needs strace (apt-get install strace) and a
# release build (CARGO_TARGET_DIR or ./target).
set -euo pipefail
B="${CARGO_TARGET_DIR:-target}/release"
dir=$(mktemp -d)
trace="$dir/strace.out"
strace -f -e trace=openat,close,write,fdatasync,sendto -o "$trace" \
  "$B/imserver" --data "$dir/data" --listen 127.0.0.1:7797 --http-listen "" --durability sync >/dev/null 2>&1 &
pid=$!
server() { pgrep -P "$pid" | head -1; }
trap 'kill -TERM "$(server)" 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 50); do timeout 2 "$B/imctl" --addr 127.0.0.1:7797 ping >/dev/null 2>&1 && break; sleep 0.1; done
timeout 10 "$B/imctl" --addr 127.0.0.1:7797 import-users traced-user >/dev/null
sleep 0.3
# Stop the traced server (strace then exits with it).
kill -TERM "$(server)"
timeout 10 tail --pid="$pid" -f /dev/null || true
# The WAL file's descriptor: the newest *.log opened for writing that was written to (a clean
# stop flushes the memtables, which opens a fresh WAL that is never written), and its last
# write before it was closed (the number is reused after, e.g. by the flush's table file).
fd="" wal_write=""
while read -r opened f; do
  w=$(awk -v s="$opened" -v fd="$f" 'NR > s && index($0, "close(" fd ")") {exit}
    NR > s && index($0, "write(" fd ", ") {l = NR} END {print l}' "$trace")
  if [[ -n "$w" ]]; then fd="$f" wal_write="$w"; fi
done < <(grep -nE 'openat\(.*/[0-9]+\.log", O_WRONLY' "$trace" | sed -E 's/^([0-9]+):.*= ([0-9]+)$/\1 \2/')
if [[ -z "$wal_write" ]]; then
  echo "FAILED: no write to a WAL file in the trace" >&2
  exit 1
fi
sync_line=$(awk -v n="$wal_write" -v fd="$fd" 'NR>n && $0 ~ "fdatasync\\("fd {print NR; exit}' "$trace")
answer=$(awk -v n="$wal_write" 'NR>n && /sendto\(/ {print NR; exit}' "$trace")
echo "WAL fd $fd: last write at line $wal_write, fdatasync at line $sync_line, answer sent at line $answer"
if [[ -n "$sync_line" && -n "$answer" && "$sync_line" -lt "$answer" ]]; then
  echo "ok: the answer left after the fdatasync"
else
  echo "FAILED: the answer did not wait for the fdatasync" >&2
  exit 1
fi
