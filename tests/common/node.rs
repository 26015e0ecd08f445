//! Node.js programs of the TypeScript SDK (`sdk/ts`) run against a test server.

use std::path::Path;
use std::time::Duration;

use super::{TestServer, APP};

/// Runs `node args..` in `sdk/ts` with the server's address, and fails with its output.
pub fn node(server: &TestServer, args: &[&str], within: Duration) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk/ts");
    assert!(
        dir.join("node_modules/flatbuffers").exists(),
        "sdk/ts/node_modules is missing: run scripts/install-deps.sh --test (it runs npm ci there)"
    );
    let http = format!("http://{}", server.http_addr.as_ref().expect("the HTTP listener is on"));
    let mut child = std::process::Command::new("node")
        .args(args)
        .current_dir(&dir)
        .env("IM_HTTP", &http)
        .env("IM_APP", APP.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node is installed (scripts/install-deps.sh --test)");
    let deadline = std::time::Instant::now() + within;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success(), "node {args:?} failed ({:?}):\n{text}", out.status);
}
