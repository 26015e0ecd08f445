//! The TypeScript SDK's own tests (`sdk/ts/test`), run with Node against a real server over
//! WebSocket: login with a development ticket, send and live pushes, receive-acks and read
//! receipts, typed errors, heartbeats past the idle timeout, reconnect with resync by seq.

mod common;

use std::time::Duration;

use common::node::node;
use common::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_passes_its_tests_against_a_real_server() {
    let s = TestServer::start_with(|c| {
        c.web.dev_tickets = true;
        c.timeouts.heartbeat_secs = 1;
        c.timeouts.idle_secs = 3;
    })
    .await;
    let server = &s;
    tokio::task::block_in_place(|| node(server, &["--test", "test/client.test.mjs"], Duration::from_secs(120)));
}
