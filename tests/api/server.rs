//! The HTTP server loop against raw TCP clients: slow and idle connections are closed, a
//! connection over the cap gets a clear answer, a client that stops reading is cut off.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::TestApp;

/// Far longer than any timeout these tests configure: a connection still open by then was not
/// going to be closed.
const PATIENCE: Duration = Duration::from_secs(20);

/// Reads until the server closes the connection (or resets it), or `PATIENCE` runs out.
/// Returns what was read and whether it closed.
async fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + PATIENCE;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (got, false),
        }
    }
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_client_trickling_its_request_head_is_disconnected(db: PgPool) {
    let app = TestApp::spawn_with(db, |c| c.server.header_timeout_secs = 1).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: siaran\r\n")
        .await
        .unwrap();

    // One more header byte every 200 ms, as slowloris does, until the server hangs up.
    let deadline = Instant::now() + PATIENCE;
    let mut closed = false;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if stream.write_all(b"X").await.is_err() {
            closed = true;
            break;
        }
        let mut probe = [0u8; 1024];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await
        {
            closed = true;
            break;
        }
    }

    assert!(closed, "the server kept a trickling connection open");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn an_idle_keep_alive_connection_is_closed(db: PgPool) {
    let app = TestApp::spawn_with(db, |c| c.server.header_timeout_secs = 1).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: siaran\r\n\r\n")
        .await
        .unwrap();

    // The answer comes, then nothing more is asked: the server closes the connection.
    let (got, closed) = read_until_closed(&mut stream).await;

    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(closed, "an idle keep-alive connection stayed open");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn connections_over_the_cap_get_a_503_problem_and_are_closed(db: PgPool) {
    let app = TestApp::spawn_with(db, |c| c.server.max_connections = 3).await;
    // Three connections that have not sent anything yet hold every permit.
    let mut holders = Vec::new();
    for _ in 0..3 {
        holders.push(TcpStream::connect(app.addr).await.unwrap());
    }

    let mut extra = TcpStream::connect(app.addr).await.unwrap();
    extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: siaran\r\n\r\n")
        .await
        .unwrap();
    let (got, closed) = read_until_closed(&mut extra).await;

    let text = String::from_utf8_lossy(&got);
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole response");
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    assert!(head.contains("retry-after: "), "{head}");
    let problem: Value = serde_json::from_str(body).expect("problem JSON");
    assert_eq!(problem["code"], "too_many_connections");
    assert!(closed, "the refused connection was left open");

    // A permit comes back when a connection ends, and the server serves again.
    drop(holders.pop());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let answered = reqwest::Client::new()
            .get(app.url("/healthz"))
            .send()
            .await
            .map(|r| r.status());
        if answered.as_ref().is_ok_and(|s| *s == StatusCode::OK) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never served again: {answered:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_client_that_stops_reading_is_disconnected(db: PgPool) {
    let app = TestApp::spawn_with(db, |c| c.server.write_timeout_secs = 1).await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(app.addr).await.unwrap();
    // Far more answer than the socket buffers hold, asked for all at once (pipelined), never read.
    let request = b"GET /api/openapi.json HTTP/1.1\r\nHost: siaran\r\n\r\n";
    let asked = 400;
    stream.write_all(&request.repeat(asked)).await.unwrap();

    // Wait until the server reports a write that could not progress for the whole timeout,
    // then read what it managed to send before it cut the connection.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        let stalls = metrics
            .lines()
            .find(|l| l.starts_with("http_write_stalls_total"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if stalls >= 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no write ever stalled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (got, closed) = read_until_closed(&mut stream).await;

    let answered = String::from_utf8_lossy(&got)
        .matches("HTTP/1.1 200 OK\r\n")
        .count();
    assert!(closed, "the connection is still open");
    assert!(
        answered < asked,
        "every one of {asked} answers was delivered to a client that did not read"
    );
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_request_in_flight_finishes_when_the_server_shuts_down(db: PgPool) {
    let mut app = TestApp::spawn(db).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let body = br#"{"refresh_token": "srt_unknown"}"#;
    stream
        .write_all(
            format!(
                "POST /api/auth/logout HTTP/1.1\r\nHost: siaran\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nexpect: 100-continue\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // `100 Continue` means the handler is running and waiting for the body.
    let mut interim = [0u8; 64];
    let n = tokio::time::timeout(PATIENCE, stream.read(&mut interim))
        .await
        .expect("an interim answer")
        .unwrap();
    assert!(
        interim[..n].starts_with(b"HTTP/1.1 100 Continue"),
        "{}",
        String::from_utf8_lossy(&interim[..n])
    );
    let stopping = async {
        app.shut_down().await;
    };
    let finishing = async {
        stream.write_all(body).await.unwrap();
        read_until_closed(&mut stream).await
    };

    let ((), (got, closed)) = tokio::join!(stopping, finishing);

    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 204 No Content\r\n"), "{text}");
    assert!(closed, "the connection outlived the server");
}
