//! The web chat served at `GET /`, driven in headless Chromium (`sdk/ts/e2e/chat.mjs`, with
//! playwright-core): alice and bob, two browser sessions, exchange messages live and each
//! sees the other read them.

mod common;

use std::time::Duration;

use common::node::node;
use common::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_chat_through_the_web_page() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: run scripts/install-deps.sh --test (it installs Debian's chromium)"
    );
    let s = TestServer::start_with(|c| c.web.dev_tickets = true).await;
    let (status, page) = common::http::get(&common::http::client(), &s, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("imserver web chat"), "GET / serves the page: {page}");
    let server = &s;
    tokio::task::block_in_place(|| node(server, &["e2e/chat.mjs"], Duration::from_secs(120)));
}
