//! Retries: a read the daemon could not receive (connection refused) is tried again, up to
//! three times with a growing pause; a create is never repeated, so it fails at once.
//! The daemon here is a bare listener that appears on a port some time after the first
//! attempt, so the test needs no root and no sandbox.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use airlock_api::CreateSandbox;
use airlock_client::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A loopback port with nothing listening on it (yet).
fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

/// After `delay`, listens on `port` and answers one request with an empty JSON list.
fn daemon_appearing(port: u16, delay: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]")
            .await
            .unwrap();
    })
}

#[tokio::test]
async fn a_read_is_retried_until_the_daemon_answers() {
    let port = free_port();
    let daemon = daemon_appearing(port, Duration::from_millis(100));
    let client = Client::new(format!("http://127.0.0.1:{port}"), "token");
    let started = Instant::now();
    let listed = client.list().await.unwrap();
    assert!(listed.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "the first attempt was refused, and the second came after a pause"
    );
    daemon.await.unwrap();
}

#[tokio::test]
async fn a_read_gives_up_after_three_attempts() {
    let port = free_port();
    let client = Client::new(format!("http://127.0.0.1:{port}"), "token");
    let started = Instant::now();
    assert!(client.list().await.is_err());
    // Pauses of 200 and 400 ms between the three attempts.
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_create_is_never_repeated() {
    let port = free_port();
    let client = Client::new(format!("http://127.0.0.1:{port}"), "token");
    let started = Instant::now();
    assert!(client.create(&CreateSandbox::default()).await.is_err());
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
}
