//! One RTMP connection on the async executor: handshake, `connect` to the `live` application,
//! `publish` with a stream key the application authorizes, then media handed to the stream
//! thread. The task only moves bytes; it never blocks on the pipeline.
//!
//! A connection ends on a clean unpublish, a closed socket, silence longer than the idle timeout
//! (a publisher whose network dropped raises nothing else), a kick (takeover, stop, refused
//! media) or shutdown. Bytes that do not parse end that connection only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::beat;
use crate::flv::{self, VideoTag};
use crate::ingest::Shared;
use crate::registry::{Claim, PublisherId};
use crate::worker::{self, StreamContext, StreamInput, WorkerSender};
use crate::{APP_NAME, AuthError, Authorizer, stream_dir};

/// A client must have handshaken, connected and started publishing within this.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the application may take to authorize a key.
const AUTHORIZE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a write to the client may take (a client that does not read is dropped).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// A keyframe (~100 KB at 3 Mbit/s) fits in one or two reads.
const READ_BUFFER: usize = 128 * 1024;

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("RTMP handshake: {0}")]
    Handshake(#[from] rml_rtmp::handshake::HandshakeError),
    #[error("RTMP: {0}")]
    Rtmp(#[from] rml_rtmp::sessions::ServerSessionError),
}

/// Why the connection loop stopped, when not an error.
#[derive(Debug, PartialEq, Eq)]
enum Close {
    /// The peer closed, unpublished, or was refused.
    Done,
    /// Kicked or shut down.
    Kicked,
}

/// The stream a connection publishes to.
#[derive(Debug)]
struct Publishing {
    stream_id: Uuid,
    publisher: PublisherId,
    input: WorkerSender,
    /// Video is skipped until the next keyframe after a drop: frames without their reference
    /// would only decode as garbage.
    awaiting_keyframe: bool,
}

struct Connection<'a, A> {
    shared: &'a Arc<Shared<A>>,
    socket: TcpStream,
    peer: SocketAddr,
    kick: CancellationToken,
    session: Option<ServerSession>,
    publishing: Option<Publishing>,
}

/// Serves one connection until it ends.
pub(crate) async fn serve<A: Authorizer>(
    shared: &Arc<Shared<A>>,
    socket: TcpStream,
    peer: SocketAddr,
    kick: CancellationToken,
) {
    let _ = socket.set_nodelay(true);
    let mut conn = Connection {
        shared,
        socket,
        peer,
        kick,
        session: None,
        publishing: None,
    };
    match conn.run().await {
        Ok(Close::Done | Close::Kicked) => {}
        Err(e) => tracing::debug!(%peer, cause = %e, "RTMP connection ended"),
    }
    if let Some(publishing) = conn.publishing.take() {
        tracing::info!(%peer, stream_id = %publishing.stream_id, "publisher disconnected");
        shared
            .registry
            .release(publishing.stream_id, publishing.publisher);
    }
    let _ = conn.socket.shutdown().await;
}

impl<A: Authorizer> Connection<'_, A> {
    async fn run(&mut self) -> Result<Close, SessionError> {
        let setup = self.kick.clone();
        let remaining = tokio::select! {
            () = setup.cancelled() => return Ok(Close::Kicked),
            r = tokio::time::timeout(SETUP_TIMEOUT, self.handshake()) => r.map_err(|_| SessionError::Timeout)??,
        };
        let (session, results) = ServerSession::new(ServerSessionConfig::new())?;
        self.session = Some(session);
        if let Some(close) = self.process(results).await? {
            return Ok(close);
        }
        if !remaining.is_empty()
            && let Some(close) = self.input(&remaining).await?
        {
            return Ok(close);
        }
        let mut buffer = vec![0u8; READ_BUFFER];
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

    /// Completes the server side of the handshake; returns bytes that followed it.
    async fn handshake(&mut self) -> Result<Vec<u8>, SessionError> {
        let mut handshake = Handshake::new(PeerType::Server);
        let mut buffer = [0u8; 4096];
        loop {
            let n = self.socket.read(&mut buffer).await?;
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
            match handshake.process_bytes(&buffer[..n])? {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.write(&response_bytes).await?;
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.write(&response_bytes).await?;
                    return Ok(remaining_bytes);
                }
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        if bytes.is_empty() {
            return Ok(());
        }
        tokio::time::timeout(WRITE_TIMEOUT, self.socket.write_all(bytes))
            .await
            .map_err(|_| SessionError::Timeout)?
            .map_err(SessionError::from)
    }

    async fn input(&mut self, bytes: &[u8]) -> Result<Option<Close>, SessionError> {
        let Some(session) = self.session.as_mut() else {
            return Ok(Some(Close::Done));
        };
        let results = session.handle_input(bytes)?;
        self.process(results).await
    }

    /// Sends responses and acts on events, in order.
    async fn process(
        &mut self,
        results: Vec<ServerSessionResult>,
    ) -> Result<Option<Close>, SessionError> {
        for result in results {
            match result {
                ServerSessionResult::OutboundResponse(packet) => self.write(&packet.bytes).await?,
                ServerSessionResult::RaisedEvent(event) => {
                    if let Some(close) = self.event(event).await? {
                        return Ok(Some(close));
                    }
                }
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(None)
    }

    async fn event(&mut self, event: ServerSessionEvent) -> Result<Option<Close>, SessionError> {
        match event {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                if app_name.trim_matches('/') == APP_NAME {
                    self.respond(request_id, None).await?;
                    Ok(None)
                } else {
                    tracing::info!(peer = %self.peer, app_name, "refusing an unknown RTMP application");
                    let reason = (
                        "NetConnection.Connect.Rejected",
                        "Unknown application; publish to /live.",
                    );
                    self.respond(request_id, Some(reason)).await?;
                    Ok(Some(Close::Done))
                }
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                stream_key,
                ..
            } => self.publish(request_id, &stream_key).await,
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                let reason = (
                    "NetStream.Play.Failed",
                    "Playback is served over HLS, not RTMP.",
                );
                self.respond(request_id, Some(reason)).await?;
                Ok(Some(Close::Done))
            }
            ServerSessionEvent::PublishStreamFinished { .. } => Ok(Some(Close::Done)),
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => {
                self.media(true, timestamp.value, data);
                Ok(None)
            }
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => {
                self.media(false, timestamp.value, data);
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// Accepts (`None`) or rejects a request and sends the answer.
    async fn respond(
        &mut self,
        request_id: u32,
        reject: Option<(&str, &str)>,
    ) -> Result<(), SessionError> {
        let Some(session) = self.session.as_mut() else {
            return Ok(());
        };
        let results = match reject {
            None => session.accept_request(request_id)?,
            Some((code, description)) => session.reject_request(request_id, code, description)?,
        };
        for result in results {
            if let ServerSessionResult::OutboundResponse(packet) = result {
                self.write(&packet.bytes).await?;
            }
        }
        Ok(())
    }

    async fn publish(
        &mut self,
        request_id: u32,
        stream_key: &str,
    ) -> Result<Option<Close>, SessionError> {
        const BAD_NAME: &str = "NetStream.Publish.BadName";
        if self.publishing.is_some() {
            let reason = (BAD_NAME, "This connection is already publishing.");
            self.respond(request_id, Some(reason)).await?;
            return Ok(Some(Close::Done));
        }
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
            match tokio::time::timeout(AUTHORIZE_TIMEOUT, task).await {
                Ok(Ok(decision)) => decision,
                Ok(Err(e)) => Err(AuthError::Unavailable(format!("authorizer failed: {e}"))),
                Err(_) => Err(AuthError::Unavailable("authorization timed out".to_owned())),
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
                self.respond(request_id, Some((BAD_NAME, &detail))).await?;
                return Ok(Some(Close::Done));
            }
        };
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
                let reason = (BAD_NAME, "The stream is still ending; retry in a moment.");
                self.respond(request_id, Some(reason)).await?;
                return Ok(Some(Close::Done));
            }
        };
        self.publishing = Some(Publishing {
            stream_id,
            publisher,
            input,
            awaiting_keyframe: false,
        });
        self.respond(request_id, None).await?;
        Ok(None)
    }

    /// Hands a payload to the stream thread, dropping (and counting) what does not fit.
    fn media(&mut self, video: bool, timestamp: u32, data: bytes::Bytes) {
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
