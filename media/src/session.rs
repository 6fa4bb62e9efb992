//! One RTMP connection on the async executor: the socket, timeouts, and the application's
//! decisions around the synchronous [`protocol`](crate::protocol) state machine — `connect` to
//! the `live` application, `publish` with a stream key the application authorizes, then media
//! handed to the stream thread. The task only moves bytes; it never blocks on the pipeline.
//!
//! A connection ends on a clean unpublish, a closed socket, silence longer than the idle timeout
//! (a publisher whose network dropped raises nothing else), a kick (takeover, stop, refused
//! media, eviction while pending) or shutdown. Bytes that do not parse end that connection
//! only; so does a panic in the code that reads them (caught at each call into the protocol,
//! and by tokio for the task as a whole). Whatever way it ends, the connection's slot and its
//! stream are released by drop guards ([`Ticket`], [`Publishing`]), so a stream is never left
//! live without its publisher.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::admission::{Progress, Ticket};
use crate::beat;
use crate::flv::{self, VideoTag};
use crate::ingest::Shared;
use crate::protocol::{Event, Protocol, ProtocolError};
use crate::registry::{Claim, PublisherId, SharedRegistry};
use crate::worker::{self, StreamContext, StreamInput, WorkerSender};
use crate::{APP_NAME, AuthError, Authorizer, stream_dir};

/// A client must have handshaken, connected and started publishing within this.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the application may take to authorize a key.
const AUTHORIZE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a write to the client may take (a client that does not read is dropped).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Reads before publishing: a handshake packet, a command or two.
const SETUP_READ_BUFFER: usize = 4 * 1024;
/// A keyframe (~100 KB at 3 Mbit/s) fits in one or two reads.
const READ_BUFFER: usize = 128 * 1024;

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("panicked reading the connection's input: {0}")]
    Panic(String),
}

/// Why the connection loop stopped, when not an error.
#[derive(Debug, PartialEq, Eq)]
enum Close {
    /// The peer closed, unpublished, or was refused.
    Done,
    /// Kicked, evicted or shut down.
    Kicked,
}

/// The stream a connection publishes to; dropping it (however the connection ends) releases
/// the stream, which then ends unless another publisher took over.
#[derive(Debug)]
struct Publishing {
    stream_id: Uuid,
    publisher: PublisherId,
    input: WorkerSender,
    registry: SharedRegistry,
    /// Video is skipped until the next keyframe after a drop: frames without their reference
    /// would only decode as garbage.
    awaiting_keyframe: bool,
}

impl Drop for Publishing {
    fn drop(&mut self) {
        self.registry.release(self.stream_id, self.publisher);
    }
}

struct Connection<'a, A> {
    shared: &'a Arc<Shared<A>>,
    socket: TcpStream,
    peer: SocketAddr,
    kick: CancellationToken,
    ticket: Ticket,
    protocol: Protocol,
    publishing: Option<Publishing>,
}

/// Serves one connection until it ends.
pub(crate) async fn serve<A: Authorizer>(
    shared: &Arc<Shared<A>>,
    socket: TcpStream,
    peer: SocketAddr,
    kick: CancellationToken,
    ticket: Ticket,
) {
    let _ = socket.set_nodelay(true);
    let mut conn = Connection {
        shared,
        socket,
        peer,
        kick,
        ticket,
        protocol: Protocol::new(),
        publishing: None,
    };
    match conn.run().await {
        Ok(Close::Done | Close::Kicked) => {}
        Err(SessionError::Panic(cause)) => {
            tracing::error!(%peer, cause, "RTMP connection closed after a panic in its input");
        }
        Err(e) => tracing::debug!(%peer, cause = %e, "RTMP connection ended"),
    }
    if let Some(publishing) = conn.publishing.take() {
        tracing::info!(%peer, stream_id = %publishing.stream_id, "publisher disconnected");
    }
    let _ = conn.socket.shutdown().await;
}

/// Runs synchronous code that reads the client's input; a panic in it becomes an error of
/// this connection.
fn guarded<T>(f: impl FnOnce() -> Result<T, ProtocolError>) -> Result<T, SessionError> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(SessionError::from),
        Err(panic) => Err(SessionError::Panic(panic_message(panic.as_ref()))),
    }
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

impl<A: Authorizer> Connection<'_, A> {
    async fn run(&mut self) -> Result<Close, SessionError> {
        let mut buffer = vec![0u8; SETUP_READ_BUFFER];
        // One timer and one kick future for the whole connection: re-arming a timer and a
        // cancellation future on every read costs more than the read itself.
        let kick = self.kick.clone();
        let kicked = kick.cancelled();
        tokio::pin!(kicked);
        let silence = tokio::time::sleep(SETUP_TIMEOUT);
        tokio::pin!(silence);
        let mut last_read = tokio::time::Instant::now();
        loop {
            let read = tokio::select! {
                biased;
                () = &mut kicked => return Ok(Close::Kicked),
                r = self.socket.read(&mut buffer) => r,
                () = &mut silence => {
                    // Before publishing, a client gets the setup deadline; after, it must send
                    // something within the idle timeout of its last read.
                    if self.publishing.is_some() {
                        let due = last_read + self.shared.config.idle_timeout;
                        if due > tokio::time::Instant::now() {
                            silence.as_mut().reset(due);
                            continue;
                        }
                    }
                    tracing::info!(peer = %self.peer, publishing = self.publishing.is_some(), "RTMP client silent for too long");
                    return Err(SessionError::Timeout);
                }
            };
            let n = match read {
                Ok(0) => return Ok(Close::Done),
                Ok(n) => n,
                Err(e) => return Err(e.into()),
            };
            let was_publishing = self.publishing.is_some();
            last_read = tokio::time::Instant::now();
            if let Some(close) = self.input(&buffer[..n]).await? {
                return Ok(close);
            }
            if !was_publishing && self.publishing.is_some() {
                buffer.resize(READ_BUFFER, 0);
                silence
                    .as_mut()
                    .reset(last_read + self.shared.config.idle_timeout);
            }
            if self.publishing.is_some() && n < READ_BUFFER {
                // Let a publisher's bytes gather in the socket until the next beat shared by all
                // connections and stream threads (see [`beat`]): the ingest thread then wakes
                // once per beat for every publisher, not once per packet of each (the cost that
                // dominated it). A full read means more is waiting (a keyframe), so that is read
                // at once. Kicks still land at once.
                let next = beat::next(std::time::Instant::now());
                tokio::select! {
                    biased;
                    () = &mut kicked => return Ok(Close::Kicked),
                    () = tokio::time::sleep_until(next.into()) => {}
                }
            }
        }
    }

    /// Sends what the protocol has queued for the client.
    async fn flush(&mut self) -> Result<(), SessionError> {
        let bytes = self.protocol.take_output();
        if bytes.is_empty() {
            return Ok(());
        }
        tokio::time::timeout(WRITE_TIMEOUT, self.socket.write_all(&bytes))
            .await
            .map_err(|_| SessionError::Timeout)?
            .map_err(SessionError::from)
    }

    async fn input(&mut self, bytes: &[u8]) -> Result<Option<Close>, SessionError> {
        let mut events = Vec::new();
        let handshaken = self.protocol.handshaken();
        let protocol = &mut self.protocol;
        let result = guarded(|| protocol.feed(bytes, &mut events));
        self.ticket.set_buffered(self.protocol.buffered());
        result?;
        if !handshaken && self.protocol.handshaken() {
            self.ticket.progress(Progress::Handshaken);
        }
        self.flush().await?;
        self.events(events).await
    }

    /// Acts on the protocol's events, in order (answering a request may release more).
    async fn events(&mut self, events: Vec<Event>) -> Result<Option<Close>, SessionError> {
        let mut queue = VecDeque::from(events);
        while let Some(event) = queue.pop_front() {
            let mut more = Vec::new();
            let close = match event {
                Event::Connect { transaction, app } => {
                    if app.trim_matches('/') == APP_NAME {
                        let protocol = &mut self.protocol;
                        guarded(|| protocol.accept_connect(transaction, &mut more))?;
                        self.ticket.progress(Progress::Connected);
                        None
                    } else {
                        tracing::info!(peer = %self.peer, app, "refusing an unknown RTMP application");
                        self.protocol.reject(
                            transaction,
                            0,
                            "NetConnection.Connect.Rejected",
                            "Unknown application; publish to /live.",
                        )?;
                        Some(Close::Done)
                    }
                }
                Event::Publish {
                    stream,
                    transaction,
                    key,
                } => self.publish(stream, transaction, &key, &mut more).await?,
                Event::Play {
                    stream,
                    transaction,
                } => {
                    self.protocol.reject(
                        transaction,
                        stream,
                        "NetStream.Play.Failed",
                        "Playback is served over HLS, not RTMP.",
                    )?;
                    Some(Close::Done)
                }
                Event::Unpublish => Some(Close::Done),
                Event::Media {
                    video,
                    timestamp,
                    data,
                } => {
                    guarded(|| {
                        self.media(video, timestamp, data);
                        Ok(())
                    })?;
                    None
                }
            };
            self.ticket.set_buffered(self.protocol.buffered());
            self.flush().await?;
            if close.is_some() {
                return Ok(close);
            }
            queue.extend(more);
        }
        Ok(None)
    }

    async fn publish(
        &mut self,
        stream: u32,
        transaction: f64,
        stream_key: &str,
        events: &mut Vec<Event>,
    ) -> Result<Option<Close>, SessionError> {
        const BAD_NAME: &str = "NetStream.Publish.BadName";
        if self.publishing.is_some() {
            let reason = "This connection is already publishing.";
            self.protocol
                .reject(transaction, stream, BAD_NAME, reason)?;
            return Ok(Some(Close::Done));
        }
        self.ticket.progress(Progress::Authorizing);
        // Some encoders append a query string to the key; it is not part of it.
        let key = stream_key.split('?').next().unwrap_or_default();
        // The authorizer runs on the application's runtime, where its connections live.
        let decision = {
            let shared = Arc::clone(self.shared);
            let (key, peer) = (key.to_owned(), self.peer);
            let task = self
                .shared
                .app
                .spawn(async move { shared.authorizer.authorize(&key, peer).await });
            let kick = self.kick.clone();
            tokio::select! {
                () = kick.cancelled() => return Ok(Some(Close::Kicked)),
                r = tokio::time::timeout(AUTHORIZE_TIMEOUT, task) => match r {
                    Ok(Ok(decision)) => decision,
                    Ok(Err(e)) => Err(AuthError::Unavailable(format!("authorizer failed: {e}"))),
                    Err(_) => Err(AuthError::Unavailable("authorization timed out".to_owned())),
                },
            }
        };
        let stream_id = match decision {
            Ok(stream_id) => stream_id,
            Err(e) => {
                if e == AuthError::UnknownKey {
                    self.shared.record_bad_key(self.peer.ip());
                }
                // Never the key itself: it is a secret, and a wrong one may be one digit off.
                tracing::info!(peer = %self.peer, reason = %e, "publish refused");
                let detail = match &e {
                    AuthError::UnknownKey => "Invalid stream key.".to_owned(),
                    AuthError::Refused(why) => why.clone(),
                    AuthError::Unavailable(_) => {
                        "The server cannot check stream keys right now; try again.".to_owned()
                    }
                };
                self.protocol
                    .reject(transaction, stream, BAD_NAME, &detail)?;
                return Ok(Some(Close::Done));
            }
        };
        if !self.ticket.promote() {
            tracing::warn!(peer = %self.peer, %stream_id, "publish refused: publisher limit reached");
            let reason = "The server is at its limit of publishers; try again later.";
            self.protocol
                .reject(transaction, stream, BAD_NAME, reason)?;
            return Ok(Some(Close::Done));
        }
        let registry = &self.shared.registry;
        let (publisher, input) = match registry.claim(stream_id, self.kick.clone()) {
            Claim::New(publisher) => {
                let context = StreamContext {
                    stream_id,
                    dir: stream_dir(&self.shared.config.hls_root, &stream_id.to_string()),
                    window: self.shared.config.playlist_window,
                    registry: Arc::clone(registry),
                    events: self.shared.events.clone(),
                    thumbnails: self.shared.thumbnails.clone(),
                    _token: self.shared.threads.token(),
                };
                let input = worker::spawn(context)?;
                registry.install(stream_id, publisher, self.kick.clone(), input.clone());
                tracing::info!(peer = %self.peer, %stream_id, "publishing");
                (publisher, input)
            }
            Claim::TakenOver(publisher, input) => {
                tracing::info!(peer = %self.peer, %stream_id, "publisher took over the stream");
                (publisher, input)
            }
            Claim::Busy => {
                let reason = "The stream is still ending; retry in a moment.";
                self.protocol
                    .reject(transaction, stream, BAD_NAME, reason)?;
                return Ok(Some(Close::Done));
            }
        };
        self.publishing = Some(Publishing {
            stream_id,
            publisher,
            input,
            registry: Arc::clone(registry),
            awaiting_keyframe: false,
        });
        let protocol = &mut self.protocol;
        guarded(|| protocol.accept_publish(stream, events))?;
        Ok(None)
    }

    /// Hands a payload to the stream thread, dropping (and counting) what does not fit.
    fn media(&mut self, video: bool, timestamp: u32, data: Bytes) {
        let Some(publishing) = self.publishing.as_mut() else {
            return;
        };
        if video && publishing.awaiting_keyframe {
            match flv::parse_video(&data) {
                VideoTag::AvcFrame {
                    keyframe: false, ..
                } => {
                    publishing.input.count_dropped(data.len());
                    return;
                }
                VideoTag::AvcFrame { keyframe: true, .. } => publishing.awaiting_keyframe = false,
                _ => {}
            }
        }
        let input = StreamInput {
            publisher: publishing.publisher,
            video,
            timestamp,
            data,
        };
        if !publishing.input.offer(input) && video {
            publishing.awaiting_keyframe = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarded_turns_a_panic_into_this_connections_error() {
        let text = guarded::<()>(|| panic!("drain out of range"));
        let formatted = guarded::<()>(|| panic!("index {} out of range", 3));
        let opaque = guarded::<()>(|| std::panic::panic_any(42_u8));

        assert!(matches!(text, Err(SessionError::Panic(m)) if m == "drain out of range"));
        assert!(matches!(formatted, Err(SessionError::Panic(m)) if m == "index 3 out of range"));
        assert!(matches!(opaque, Err(SessionError::Panic(m)) if m == "a panic without a message"));
    }

    #[test]
    fn guarded_passes_results_and_protocol_errors_through() {
        assert!(matches!(guarded(|| Ok(7)), Ok(7)));
        let refused = guarded::<()>(|| Err(ProtocolError::Malformed("short")));
        assert!(matches!(
            refused,
            Err(SessionError::Protocol(ProtocolError::Malformed("short")))
        ));
    }
}
