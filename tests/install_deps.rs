//! `scripts/install-deps.sh` finds what the build loads, not what merely looks like it: its
//! detection runs against fake roots (`--root DIR --check`). The base image ships
//! `libclang-cpp` (the C++ API), which bindgen cannot use; only a real libclang counts.

use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-deps.sh")
}

fn file(root: &Path, rel: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, b"\x7fELF").unwrap();
}

fn exe(root: &Path, rel: &str) {
    use std::os::unix::fs::PermissionsExt;
    file(root, rel);
    std::fs::set_permissions(root.join(rel), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A root with what the base image has: a C++ compiler, make, and libclang-cpp only.
fn base_image() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    exe(t.path(), "usr/bin/g++");
    exe(t.path(), "usr/bin/make");
    file(t.path(), "usr/lib/llvm-14/lib/libclang-cpp.so.14");
    file(t.path(), "usr/lib/x86_64-linux-gnu/libclang-cpp.so.14");
    file(t.path(), "usr/lib/llvm-14/lib/libLLVM-14.so.1");
    t
}

fn check(root: &Path, extra: &[&str]) -> (bool, String) {
    let out = Command::new("bash")
        .arg(script())
        .args(["--check", "--root"])
        .arg(root)
        .args(extra)
        .output()
        .expect("bash runs the script");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn libclang_cpp_alone_is_missing_libclang() {
    let root = base_image();
    let (ok, out) = check(root.path(), &[]);
    assert!(!ok, "{out}");
    assert!(out.lines().any(|l| l == "missing: libclang (package libclang-dev)"), "{out}");
    assert!(out.lines().any(|l| l == "missing: clang-headers (package libclang-dev)"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("present: g++ (")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("present: make (")), "{out}");
}

#[test]
fn a_real_libclang_and_its_headers_are_present() {
    // What libclang-dev brings on Debian 12: libclang1-14's versioned library and
    // libclang-common-14-dev's builtin headers.
    let root = base_image();
    file(root.path(), "usr/lib/llvm-14/lib/libclang.so.1");
    file(root.path(), "usr/lib/llvm-14/lib/clang/14.0.6/include/stddef.h");
    let (ok, out) = check(root.path(), &[]);
    assert!(ok, "{out}");
    assert!(out.lines().any(|l| l.starts_with("present: libclang (") && l.ends_with("/libclang.so.1)")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("present: clang-headers (")), "{out}");

    // The system-dir name clang-sys also accepts.
    let root = base_image();
    file(root.path(), "usr/lib/x86_64-linux-gnu/libclang-14.so.1");
    file(root.path(), "usr/lib/llvm-14/lib/clang/14.0.6/include/stddef.h");
    let (ok, out) = check(root.path(), &[]);
    assert!(ok, "{out}");
    assert!(out.contains("libclang-14.so.1)"), "{out}");
}

#[test]
fn a_dangling_libclang_link_or_missing_headers_do_not_count() {
    // A half-removed -dev package leaves libclang.so pointing at nothing.
    let root = base_image();
    let lib = root.path().join("usr/lib/llvm-14/lib");
    std::os::unix::fs::symlink(lib.join("libclang-14.so.1"), lib.join("libclang.so")).unwrap();
    file(root.path(), "usr/lib/llvm-14/lib/clang/14.0.6/include/stddef.h");
    let (ok, out) = check(root.path(), &[]);
    assert!(!ok, "{out}");
    assert!(out.lines().any(|l| l == "missing: libclang (package libclang-dev)"), "{out}");

    // The library without the headers bindgen parses rocksdb/c.h with.
    let root = base_image();
    file(root.path(), "usr/lib/llvm-14/lib/libclang.so.1");
    let (ok, out) = check(root.path(), &[]);
    assert!(!ok, "{out}");
    assert!(out.lines().any(|l| l.starts_with("present: libclang (")), "{out}");
    assert!(out.lines().any(|l| l == "missing: clang-headers (package libclang-dev)"), "{out}");
}

#[test]
fn the_tests_also_need_strace_and_the_script_says_what_to_install() {
    let root = base_image();
    file(root.path(), "usr/lib/llvm-14/lib/libclang.so.1");
    file(root.path(), "usr/lib/llvm-14/lib/clang/14.0.6/include/stddef.h");
    let (ok, out) = check(root.path(), &["--test"]);
    assert!(!ok, "{out}");
    assert!(out.lines().any(|l| l == "missing: strace (package strace)"), "{out}");
    exe(root.path(), "usr/bin/strace");
    exe(root.path(), "usr/bin/flatc");
    let (ok, out) = check(root.path(), &["--test"]);
    assert!(!ok, "{out}");
    assert!(out.lines().any(|l| l == "missing: node (package nodejs)"), "{out}");
    assert!(out.lines().any(|l| l == "missing: chromium (package chromium)"), "{out}");
    exe(root.path(), "usr/bin/node");
    exe(root.path(), "usr/bin/npm");
    exe(root.path(), "usr/bin/chromium");
    let (ok, out) = check(root.path(), &["--test"]);
    assert!(ok, "{out}");

    // Outside --check, on a root it may not install into, it names the exact command.
    let root = base_image();
    let out = Command::new("bash").arg(script()).arg("--root").arg(root.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("install them with: sudo apt-get install -y libclang-dev"), "{err}");
}

#[test]
fn this_machine_has_everything_make_test_needs() {
    // `make test` ran the script (installing what was missing) before the tests.
    let out = Command::new("bash").arg(script()).args(["--check", "--test"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for need in
        ["libclang", "clang-headers", "g++", "make", "strace", "flatc", "node", "npm", "chromium", "sdk-modules"]
    {
        assert!(text.lines().any(|l| l.starts_with(&format!("present: {need} ("))), "{need}: {text}");
    }
}
