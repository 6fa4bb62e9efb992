//! The HTTP server loop: accepting connections and serving each with hyper, with the limits a
//! server on the open internet needs and `axum::serve` does not set.
//!
//! - **Connection cap.** A semaphore of `SIARAN_HTTP_MAX_CONNECTIONS` permits, one per
//!   connection (as mini-redis caps its clients). A connection over the cap is answered at once
//!   with a fixed 503 problem document (`too_many_connections`, `Retry-After`) and closed; at
//!   most [`REFUSAL_SLOTS`] of those answers are in flight, connections beyond that are closed
//!   without one. WebSockets give their permit back when they upgrade: their own cap is
//!   `SIARAN_WS_MAX_CONNECTIONS`.
//! - **Slow or idle clients.** hyper's `header_read_timeout` starts when the connection is
//!   accepted and again whenever a keep-alive connection waits for its next request, so a client
//!   trickling a request head (slowloris) and a keep-alive connection left idle are both closed
//!   after `SIARAN_HTTP_HEADER_TIMEOUT_SECS`. Request bodies are read inside the handler and so
//!   fall under the request timeout (408). A client that stops reading a response is cut off once
//!   no byte could be written to it for `SIARAN_HTTP_WRITE_TIMEOUT_SECS` ([`StallGuard`]).
//! - **Slow readers pin little.** A response body is polled only while the connection's write
//!   buffer has room ([`MAX_BUF_BYTES`]), and the kernel holds at most
//!   [`NOTSENT_LOWAT_BYTES`] of it not yet sent (`TCP_NOTSENT_LOWAT`). Without that limit Linux
//!   grows each socket's send buffer to `tcp_wmem`'s maximum (4 MiB here) and copies the whole
//!   response into kernel memory at once: 1,000 readers of a live segment at 1 KB/s held
//!   852 MB of kernel memory (`ss -tm`), invisible in the server's RSS. Data in flight is not
//!   limited, so a fast client across a long path keeps its window.
//! - **HTTP/1.1 only.** HTTP/2 over cleartext (prior knowledge) is what `axum::serve` adds on
//!   top; no browser speaks it, proxies terminate HTTP/2, and its preface would be read with no
//!   timeout. Leaving it out keeps every byte before a request head under the header timeout.
//! - **Graceful shutdown.** When told to stop, the listener is closed, every connection is asked
//!   to finish its request in flight and close ([`graceful_shutdown`]), and the loop waits for
//!   them up to [`DRAIN_TIMEOUT`].
//!
//! Compared with the alternatives: `axum::serve` (0.8) offers graceful shutdown and
//! `TCP_NODELAY` only; tower-http's `TimeoutLayer` bounds a handler until its response head and
//! `RequestBodyTimeoutLayer` a body between frames, but neither sees the connection before a
//! request exists (slowloris), between requests, or a response the client does not read.
//!
//! [`graceful_shutdown`]: hyper::server::conn::http1::Connection::graceful_shutdown

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Connections over the cap that are answered 503 at the same time; more are simply closed.
pub const REFUSAL_SLOTS: usize = 256;
/// How long connections get to finish their request in flight after shutdown begins.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest request head (request line and headers) accepted; larger ones get 431.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The most a connection buffers to write (and to read a request head into): a response body is
/// polled only while its buffer has room, so a slow reader pins this much, not the body.
/// hyper's default is ~400 KiB.
const MAX_BUF_BYTES: usize = 32 * 1024;
/// Bytes of a response the kernel may hold for a connection beyond what is in flight.
const NOTSENT_LOWAT_BYTES: u32 = 64 * 1024;
/// How long an over-the-cap connection is given to take its 503.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);
/// Seconds a refused client is told to wait.
const REFUSAL_RETRY_AFTER_SECS: u64 = 5;

/// The limits of [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time to send a request head; also how long an idle keep-alive connection stays open.
    pub header_timeout: Duration,
    /// Time a response may wait for a client that reads nothing.
    pub write_timeout: Duration,
}

impl ServerLimits {
    #[must_use]
    pub fn from_config(config: &crate::config::ServerConfig) -> Self {
        Self {
            max_connections: config.max_connections.max(1),
            header_timeout: Duration::from_secs(config.header_timeout_secs.max(1)),
            write_timeout: Duration::from_secs(config.write_timeout_secs.max(1)),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains the connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSAL_SLOTS));
    let connections = TaskTracker::new();
    let drain = CancellationToken::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    if !is_connection_error(&e) {
                        // Most likely out of file descriptors: give connections time to close.
                        tracing::error!(cause = %e, "accepting an HTTP connection failed");
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(Duration::from_millis(250)) => {}
                        }
                    }
                    continue;
                }
            },
        };
        if let Ok(permit) = Arc::clone(&permits).try_acquire_owned() {
            let router = router.clone();
            let drain = drain.clone();
            connections.spawn(serve_connection(
                stream, peer, router, limits, drain, permit,
            ));
        } else {
            metrics::counter!("http_connections_refused_total").increment(1);
            if let Ok(slot) = Arc::clone(&refusals).try_acquire_owned() {
                connections.spawn(refuse(stream, slot));
            }
        }
    }
    drop(listener);
    drain.cancel();
    connections.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "HTTP connections still open after {DRAIN_TIMEOUT:?}; closing them"
        );
    }
    Ok(())
}

/// Errors of one connection that has already gone, which say nothing about the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ServerLimits,
    drain: CancellationToken,
    permit: OwnedSemaphorePermit,
) {
    metrics::gauge!("http_connections").increment(1.0);
    let _ = stream.set_nodelay(true);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) = socket2::SockRef::from(&stream).set_tcp_notsent_lowat(NOTSENT_LOWAT_BYTES) {
        tracing::debug!(%peer, cause = %e, "TCP_NOTSENT_LOWAT could not be set");
    }
    let io = TokioIo::new(StallGuard::new(stream, limits.write_timeout));
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request.map(Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(100)
        .max_buf_size(MAX_BUF_BYTES)
        .keep_alive(true);
    let connection = builder.serve_connection(io, service).with_upgrades();
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = drain.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        // Timeouts, resets and malformed requests are the client's business, not an error here.
        tracing::debug!(%peer, cause = %e, "HTTP connection ended with an error");
    }
    metrics::gauge!("http_connections").decrement(1.0);
    drop(permit);
}

/// The whole answer to a connection over the cap, written before any of its request is read.
fn refusal() -> &'static [u8] {
    static RESPONSE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    RESPONSE.get_or_init(|| {
        let body = serde_json::json!({
            "type": format!("urn:siaran:problem:{}", crate::error::ErrorCode::TooManyConnections.as_str()),
            "title": "Service Unavailable",
            "status": 503,
            "detail": "The server has too many open connections; try again in a few seconds.",
            "code": crate::error::ErrorCode::TooManyConnections.as_str(),
            "retry_after": REFUSAL_RETRY_AFTER_SECS,
        })
        .to_string();
        format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\ncontent-length: {}\r\n\
             retry-after: {REFUSAL_RETRY_AFTER_SECS}\r\ncache-control: no-store\r\n\
             connection: close\r\n\r\n{body}",
            crate::error::PROBLEM_JSON,
            body.len()
        )
        .into_bytes()
    })
}

/// Answers a connection over the cap with [`refusal`] and closes it. What the client sent is
/// read and dropped for a moment first: closing a socket with unread data resets it, and the
/// reset can destroy the answer before the client has read it.
async fn refuse(mut stream: TcpStream, _slot: OwnedSemaphorePermit) {
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
        stream.write_all(refusal()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut total = 0usize;
        while total < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => total += n,
            }
        }
        io::Result::Ok(())
    })
    .await;
}

/// A socket whose writes fail once no byte could be written for `timeout`: a client that stops
/// reading a response (its receive window stays shut) loses the connection instead of holding
/// it, and the response it pins, forever. Progress of any size resets the clock, so slow but
/// live readers are served.
#[derive(Debug)]
pub struct StallGuard<T> {
    inner: T,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> StallGuard<T> {
    pub fn new(inner: T, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            stalled: None,
        }
    }

    /// Called when a write could not make progress: `Err` once the stall has lasted too long.
    fn on_pending(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let timeout = self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if sleep.as_mut().poll(cx).is_ready() {
            self.stalled = None;
            metrics::counter!("http_write_stalls_total").increment(1);
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for too long",
            ));
        }
        Ok(())
    }

    fn on_progress<R>(&mut self, result: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if result.is_ready() {
            self.stalled = None;
        }
        result
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Pending => {
                this.on_pending(cx)?;
                Poll::Pending
            }
            ready => this.on_progress(ready),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => {
                this.on_pending(cx)?;
                Poll::Pending
            }
            ready => this.on_progress(ready),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => {
                this.on_pending(cx)?;
                Poll::Pending
            }
            ready => this.on_progress(ready),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let result = ready!(Pin::new(&mut this.inner).poll_shutdown(cx));
        this.stalled = None;
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_problem_response() {
        let text = String::from_utf8(refusal().to_vec()).expect("ASCII");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(head.contains("content-type: application/problem+json\r\n"));
        assert!(head.contains("retry-after: 5\r\n"));
        assert!(head.contains(&format!("content-length: {}\r\n", body.len())));
        let problem: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(problem["code"], "too_many_connections");
        assert_eq!(problem["status"], 503);
    }

    #[tokio::test]
    async fn a_write_that_cannot_progress_fails_after_the_timeout() {
        // A duplex pipe with a tiny buffer nobody reads: the second write stalls.
        let (writer, _reader) = tokio::io::duplex(16);
        let mut guarded = StallGuard::new(writer, Duration::from_millis(50));
        guarded
            .write_all(&[0u8; 16])
            .await
            .expect("fits the buffer");

        let stalled = guarded.write_all(&[0u8; 16]).await;

        assert_eq!(
            stalled.expect_err("stalled").kind(),
            io::ErrorKind::TimedOut
        );
    }

    #[tokio::test]
    async fn a_slow_reader_keeps_the_connection() {
        let (writer, mut reader) = tokio::io::duplex(16);
        let mut guarded = StallGuard::new(writer, Duration::from_secs(5));
        let read = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 8];
            while got.len() < 64 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let n = reader.read(&mut buf).await.expect("read");
                got.extend_from_slice(&buf[..n]);
            }
            got.len()
        });

        guarded
            .write_all(&[1u8; 64])
            .await
            .expect("slow but moving");

        assert_eq!(read.await.expect("reader"), 64);
    }
}
