#!/usr/bin/env bash
# Checks the TypeScript SDK: its types (tsc), and that dist/imclient.js (committed, embedded in
# the server for the web chat) is what `npm run build` makes from src/ now.
# Needs sdk/ts/node_modules (scripts/install-deps.sh --test runs npm ci here).
set -euo pipefail
cd "$(dirname "$0")"
npx --no-install tsc --noEmit
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npx --no-install esbuild src/index.ts --bundle --format=esm --target=es2020 --minify --log-level=warning \
  --outfile="$tmp/imclient.js"
if ! cmp -s "$tmp/imclient.js" dist/imclient.js; then
  echo "sdk/ts/dist/imclient.js is stale: run npm run build in sdk/ts and commit" >&2
  exit 1
fi
echo "the TypeScript SDK type-checks and its bundle is up to date"
