//! The end of a connection the server closes: the socket is held until the client has
//! acknowledged every byte sent to it, or a deadline passes.
//!
//! Closing a socket that still has unread input makes the kernel reset the connection and
//! throw away whatever the client has not acknowledged yet: the last answers and the closing
//! `KickPush` among them. So what the client still sends is read and dropped meanwhile.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// How often the send queue is looked at while waiting.
const POLL: Duration = Duration::from_millis(10);

/// Writes `last` (if any), shuts the sending side, and lingers (see the module). Gives up at
/// the deadline.
pub async fn close_with(mut stream: TcpStream, last: &[u8], within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    let sent = tokio::time::timeout_at(deadline, async {
        stream.write_all(last).await?;
        stream.shutdown().await
    })
    .await;
    if matches!(sent, Ok(Ok(()))) {
        until_acknowledged(&stream, deadline).await;
    }
}

/// Reads and drops the client's input until the kernel has nothing left unacknowledged
/// towards it (the FIN included), or the deadline.
pub async fn until_acknowledged(stream: &TcpStream, deadline: tokio::time::Instant) {
    let mut scratch = [0u8; 2048];
    let mut eof = false;
    loop {
        while !eof {
            match stream.try_read(&mut scratch) {
                Ok(0) => eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => return,
            }
        }
        match unacknowledged(stream) {
            Some(0) | None => return,
            Some(_) if tokio::time::Instant::now() >= deadline => return,
            Some(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Bytes sent (or queued) towards the peer and not acknowledged by it, where the platform
/// tells; `None` elsewhere (then nobody waits).
#[cfg(target_os = "linux")]
fn unacknowledged(stream: &TcpStream) -> Option<usize> {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ for TCP) writes one int through the pointer, which points
    // at a live c_int; the fd is open for as long as `stream` is borrowed.
    let r = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    (r == 0).then_some(n.max(0) as usize)
}

#[cfg(not(target_os = "linux"))]
fn unacknowledged(_: &TcpStream) -> Option<usize> {
    None
}
