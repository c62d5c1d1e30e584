//! Webhook bodies are read within bounds: bytes held at once, requests in flight, a
//! read deadline. Each test drives raw sockets against the real server with small
//! limits, so the bounds are reached with a few MiB instead of a flood.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use stagehand::http::intake_limits::MAX_BODY;

use crate::support::*;

const MIB: usize = 1024 * 1024;
const BOGUS_SIGNATURE: &str =
    "sha256=0000000000000000000000000000000000000000000000000000000000000000";

/// A hook request whose head (declaring `length` bytes) is sent; the body follows by
/// [`Pending::send`].
struct Pending(TcpStream);

impl Pending {
    fn open(url: &str, length: usize, signature: Option<&str>) -> Pending {
        let mut stream = TcpStream::connect(url.trim_start_matches("http://")).unwrap();
        // Without the bounds some of these would wait forever: fail instead of hanging.
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let signature = signature
            .map(|s| format!("X-Hub-Signature-256: {s}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "POST /hooks/shop HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: {}\r\n\
             Content-Type: application/json\r\n{signature}Content-Length: {length}\r\nConnection: close\r\n\r\n",
            unique_id()
        );
        stream.write_all(head.as_bytes()).unwrap();
        Pending(stream)
    }

    fn send(&mut self, bytes: usize) {
        // The server may have answered and closed already: that is what some tests check.
        let _ = self.0.write_all(&vec![b'x'; bytes]);
    }

    /// The whole response as text (empty if the connection was reset).
    fn response(mut self) -> String {
        let mut response = Vec::new();
        let _ = self.0.read_to_end(&mut response);
        String::from_utf8_lossy(&response).into_owned()
    }

    fn status(self) -> u16 {
        status_of(&self.response())
    }
}

fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    actix_web::rt::task::spawn_blocking(f).await.unwrap()
}

/// Polls until `held()` is `want` (the server reads on its own schedule).
async fn wait_for_bytes_held(server: &Harness, want: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let held = server.intake.bytes_held();
        if held == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "bytes held stayed {held}, expected {want}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn signed_push(server: &Harness) -> u16 {
    server
        .send(&Delivery::json("push", &sample("push.json")))
        .await
        .0
}

#[actix_web::test]
async fn big_bogus_bodies_are_refused_past_the_budget_and_signed_pushes_get_through() {
    let server = Harness::builder()
        .without_runner()
        .intake_limits(Limits {
            small_body: 64 * 1024,
            small_pool: MIB,
            large_pool: 3 * MIB,
            max_requests: 64,
            read_timeout: Duration::from_secs(120),
        })
        .start()
        .await;
    // Three big bogus bodies, each one byte short: together they hold the whole pool.
    let url = server.url.clone();
    let mut holders = blocking(move || {
        (0..3)
            .map(|_| {
                let mut pending = Pending::open(&url, MIB, Some(BOGUS_SIGNATURE));
                pending.send(MIB - 1);
                pending
            })
            .collect::<Vec<_>>()
    })
    .await;
    wait_for_bytes_held(&server, 3 * (MIB - 1)).await;

    // A fourth is refused as its bytes arrive, with Retry-After.
    let url = server.url.clone();
    let refused = blocking(move || {
        let mut pending = Pending::open(&url, MIB, Some(BOGUS_SIGNATURE));
        pending.send(16 * 1024);
        pending.response()
    })
    .await;
    assert_eq!(status_of(&refused), 503, "{refused}");
    assert!(
        refused.to_ascii_lowercase().contains("retry-after: 5"),
        "{refused}"
    );
    assert!(refused.contains(r#"{"error":"#), "{refused}");
    // A signed push is small: it is read from its own pool while the big one is full.
    assert_eq!(signed_push(&server).await, 202);

    // The three finish, fail the signature, and give their bytes back.
    let statuses = blocking(move || {
        holders
            .iter_mut()
            .for_each(|pending: &mut Pending| pending.send(1));
        holders.into_iter().map(Pending::status).collect::<Vec<_>>()
    })
    .await;
    assert_eq!(statuses, [401, 401, 401]);
    wait_for_bytes_held(&server, 0).await;
    // The pool is whole again: a body as big as it still fits.
    let url = server.url.clone();
    let big = blocking(move || {
        let mut pending = Pending::open(&url, 3 * MIB, Some(BOGUS_SIGNATURE));
        pending.send(3 * MIB);
        pending.status()
    })
    .await;
    assert_eq!(big, 401);
    let (_, _, metrics) = server.get_with("/metrics", None).await;
    assert!(
        metrics.contains("stagehand_deliveries_total{result=\"busy\"} 1\n"),
        "{metrics}"
    );
    server.stop().await;
}

#[actix_web::test]
async fn a_trickling_body_is_cut_off_and_a_lying_length_reserves_nothing() {
    let server = Harness::builder()
        .without_runner()
        .intake_limits(Limits {
            read_timeout: Duration::from_secs(1),
            ..Limits::default()
        })
        .start()
        .await;
    // Declares almost 25 MiB, sends 10 bytes, then nothing.
    let url = server.url.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let liar = actix_web::rt::task::spawn_blocking(move || {
        let mut pending = Pending::open(&url, MAX_BODY - 1, Some(BOGUS_SIGNATURE));
        pending.send(10);
        let _ = tx.send(());
        pending.response()
    });
    blocking(move || rx.recv().unwrap()).await;
    // What is held is what arrived, not what was declared.
    wait_for_bytes_held(&server, 10).await;
    let answer = liar.await.unwrap();
    assert_eq!(status_of(&answer), 408, "{answer}");
    assert!(answer.contains("did not arrive within 1s"), "{answer}");
    wait_for_bytes_held(&server, 0).await;
    assert_eq!(signed_push(&server).await, 202);
    let (_, _, metrics) = server.get_with("/metrics", None).await;
    assert!(
        metrics.contains("stagehand_deliveries_total{result=\"timed_out\"} 1\n"),
        "{metrics}"
    );
    server.stop().await;
}

#[actix_web::test]
async fn unsigned_bodies_are_refused_before_they_are_read() {
    let server = Harness::builder().without_runner().start().await;
    // No body is ever sent: the answer cannot wait for it.
    let url = server.url.clone();
    let status = blocking(move || Pending::open(&url, 10 * MIB, None).status()).await;
    assert_eq!(status, 401);
    let url = server.url.clone();
    let status =
        blocking(move || Pending::open(&url, 10 * MIB, Some("sha256=short")).status()).await;
    assert_eq!(status, 401);
    assert_eq!(server.intake.bytes_held(), 0);
    server.stop().await;
}

#[actix_web::test]
async fn requests_past_the_cap_get_503_until_those_in_flight_end() {
    let server = Harness::builder()
        .without_runner()
        .intake_limits(Limits {
            max_requests: 2,
            read_timeout: Duration::from_secs(120),
            ..Limits::default()
        })
        .start()
        .await;
    let url = server.url.clone();
    let stalled = blocking(move || {
        (0..2)
            .map(|_| {
                let mut pending = Pending::open(&url, 100, Some(BOGUS_SIGNATURE));
                pending.send(1);
                pending
            })
            .collect::<Vec<_>>()
    })
    .await;
    wait_for_bytes_held(&server, 2).await;
    assert_eq!(signed_push(&server).await, 503);
    let statuses = blocking(move || {
        stalled
            .into_iter()
            .map(|mut pending| {
                pending.send(99);
                pending.status()
            })
            .collect::<Vec<_>>()
    })
    .await;
    assert_eq!(statuses, [401, 401]);
    assert_eq!(signed_push(&server).await, 202);
    server.stop().await;
}
