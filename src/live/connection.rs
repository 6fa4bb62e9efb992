//! What the stream and overlay sockets share: the WebSocket settings, heartbeats, delivery of
//! events with bounded waiting, and the rules for dropping a connection.
//!
//! - Heartbeats: the server pings every `ws_ping_interval`; a socket from which nothing (not even
//!   a pong) arrived for `ws_idle_timeout` is closed as dead.
//! - Slow clients: events wait in the stream's ring, not in per-socket queues. A socket that
//!   falls `ws_max_lag` events behind, or whose writes stall for the idle timeout, is told
//!   (`error` `too_slow`, best effort) and closed with 1013, so it cannot hold up anyone else.
//! - Shutdown: every socket is closed with 1001 when `state.shutdown` is cancelled.

use std::pin::Pin;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use futures::SinkExt;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::LiveConfig;
use super::hub::{Frame, FrameKind};
use super::protocol::{Control, MAX_CLIENT_FRAME, SocketError};

/// How long a goodbye (close frame, last error) may take before the socket is simply dropped.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);
/// Close code for clients that fell behind: reconnect (with `last_event_id`) later.
const TRY_AGAIN_LATER: u16 = 1013;

/// WebSocket settings for both sockets. Buffers start small (an idle socket should cost a few
/// kilobytes; tungstenite's default read buffer alone is 128 KiB, zero-filled per connection)
/// and are bounded.
pub(crate) fn configure(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade
        .read_buffer_size(1024)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(MAX_CLIENT_FRAME)
        .max_frame_size(MAX_CLIENT_FRAME)
}

/// What woke a socket up.
#[derive(Debug)]
pub(crate) enum Next {
    /// A message from the client.
    Client(Message),
    /// An event from the stream's hub (or the news that the socket fell behind).
    Event(Result<Frame, RecvError>),
    /// The socket must end: the client left, broke the protocol, went silent, or the server is
    /// stopping. The goodbye has been said.
    Stop(Stop),
}

/// Why a socket ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    ClientLeft,
    Dead,
    TooSlow,
    Shutdown,
    Broken(String),
}

impl Stop {
    fn label(&self) -> &'static str {
        match self {
            Self::ClientLeft => "client_left",
            Self::Dead => "dead",
            Self::TooSlow => "too_slow",
            Self::Shutdown => "shutdown",
            Self::Broken(_) => "broken",
        }
    }
}

/// Counts a socket in `live_sockets{kind}` while it is open, and its ending in
/// `live_sockets_closed_total{kind, reason}`.
#[derive(Debug)]
pub(crate) struct SocketMetrics {
    kind: &'static str,
}

impl SocketMetrics {
    pub(crate) fn open(kind: &'static str) -> Self {
        metrics::gauge!("live_sockets", "kind" => kind).increment(1.0);
        Self { kind }
    }

    pub(crate) fn closed(self, stop: &Stop) {
        metrics::counter!("live_sockets_closed_total", "kind" => self.kind, "reason" => stop.label())
            .increment(1);
    }
}

impl Drop for SocketMetrics {
    fn drop(&mut self) {
        metrics::gauge!("live_sockets", "kind" => self.kind).decrement(1.0);
    }
}

/// A WebSocket connection with its heartbeat and the id of the last event it delivered.
#[derive(Debug)]
pub(crate) struct Connection {
    socket: WebSocket,
    /// The id of the last event delivered (or the resume point). Control messages carry it.
    pub(crate) position: u64,
    last_heard: Instant,
    heartbeat: Interval,
    idle_timeout: Duration,
    /// Waits for the server's shutdown. Made once per socket: a fresh `cancelled()` per wake-up
    /// would register and unregister with the token shared by every socket each time, which at
    /// 10,000 sockets is lock contention on every event (and see [`Connection::next`]).
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Connection {
    pub(crate) fn new(
        socket: WebSocket,
        config: &LiveConfig,
        position: u64,
        shutdown: &CancellationToken,
    ) -> Self {
        // The first ping at a random point of the interval: sockets opened together (a
        // reconnect storm) must not all be pinged in the same instant ever after.
        let every = config.ping_interval();
        let first = Duration::from_millis(rand::random_range(0..=every.as_millis() as u64));
        let mut heartbeat = tokio::time::interval_at(Instant::now() + first, every);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            socket,
            position,
            last_heard: Instant::now(),
            heartbeat,
            idle_timeout: config.idle_timeout(),
            shutdown: Box::pin(shutdown.clone().cancelled_owned()),
        }
    }

    /// Waits for the next thing to handle. Heartbeats are handled here. Cancel-safe.
    ///
    /// The branches are polled in order, events first: a socket woken by an event then polls
    /// nothing else, which is what keeps fan-out to 10,000 sockets as cheap as a bare broadcast
    /// (polling the shutdown future takes a lock shared by every socket). A client that cannot
    /// keep up with a continuous flood of events is not starved of its other duties for long:
    /// it falls behind the ring and is disconnected as too slow.
    pub(crate) async fn next(
        &mut self,
        mut events: Option<&mut broadcast::Receiver<Frame>>,
    ) -> Next {
        loop {
            let next = tokio::select! {
                biased;
                event = async {
                    match events.as_deref_mut() {
                        Some(receiver) => receiver.recv().await,
                        None => std::future::pending().await,
                    }
                } => Next::Event(event),
                incoming = self.socket.recv() => match incoming {
                    None => Next::Stop(Stop::ClientLeft),
                    Some(Ok(message)) => {
                        self.last_heard = Instant::now();
                        match message {
                            Message::Close(_) => Next::Stop(Stop::ClientLeft),
                            // tungstenite answers pings itself; pongs only prove liveness.
                            Message::Ping(_) | Message::Pong(_) => continue,
                            message => Next::Client(message),
                        }
                    }
                    Some(Err(e)) => {
                        let reason = e.to_string();
                        if reason.contains("Space limit exceeded") || reason.contains("too long") {
                            self.close(close_code::SIZE, "message too large").await;
                        }
                        Next::Stop(Stop::Broken(reason))
                    }
                },
                _ = self.heartbeat.tick() => {
                    if self.last_heard.elapsed() >= self.idle_timeout {
                        self.close(close_code::AWAY, "no heartbeat").await;
                        Next::Stop(Stop::Dead)
                    } else {
                        match self.write(Message::Ping(Default::default())).await {
                            Ok(()) => continue,
                            Err(stop) => Next::Stop(stop),
                        }
                    }
                }
                () = self.shutdown.as_mut() => {
                    self.close(close_code::AWAY, "server shutting down").await;
                    Next::Stop(Stop::Shutdown)
                }
            };
            return next;
        }
    }

    /// Sends a control message.
    pub(crate) async fn send_control(&mut self, control: &Control) -> Result<(), Stop> {
        let text = control.encode(self.position);
        self.write(Message::Text(text.into())).await
    }

    /// Sends an error message; the socket stays open.
    pub(crate) async fn send_error(&mut self, error: SocketError) -> Result<(), Stop> {
        self.send_control(&Control::Error(error)).await
    }

    /// Delivers an event unless the socket is already past it; `wanted` filters what is sent
    /// (the position still moves past what it rejects). One event, one write: taking more from
    /// the ring to batch them would lock it again for every event and socket.
    pub(crate) async fn deliver(
        &mut self,
        frame: Frame,
        wanted: impl Fn(&Frame) -> bool,
    ) -> Result<(), Stop> {
        if frame.kind == FrameKind::Rewind {
            // The stream's log went backwards (see `hub`): what follows reuses ids.
            self.position = self.position.min(frame.id);
            return Ok(());
        }
        if frame.id <= self.position {
            return Ok(());
        }
        self.position = frame.id;
        if wanted(&frame) {
            self.write(Message::Text(frame.text)).await?;
        }
        Ok(())
    }

    /// Sends events read from the log (a replay); they are sent whatever the position, which
    /// ends at the last one.
    pub(crate) async fn replay(&mut self, frame: Frame) -> Result<(), Stop> {
        self.position = self.position.max(frame.id);
        bounded(
            self.idle_timeout,
            self.socket.feed(Message::Text(frame.text)),
        )
        .await
    }

    pub(crate) async fn flush(&mut self) -> Result<(), Stop> {
        bounded(self.idle_timeout, self.socket.flush()).await
    }

    /// Handles the outcome of waiting on the hub: an event is delivered, falling behind ends
    /// the socket.
    pub(crate) async fn on_event(
        &mut self,
        event: Result<Frame, RecvError>,
        wanted: impl Fn(&Frame) -> bool,
    ) -> Result<(), Stop> {
        match event {
            Ok(frame) => self.deliver(frame, wanted).await,
            Err(RecvError::Lagged(_)) => Err(self.too_slow().await),
            Err(RecvError::Closed) => Err(Stop::Shutdown),
        }
    }

    /// Tells the client it fell behind and closes; it may reconnect with `last_event_id`.
    async fn too_slow(&mut self) -> Stop {
        let error = SocketError::new(
            "too_slow",
            "This connection fell too far behind the stream's events and is being closed; \
             reconnect with `last_event_id` to catch up.",
        );
        let text = Control::Error(error).encode(self.position);
        let _ = tokio::time::timeout(
            GOODBYE_TIMEOUT,
            self.socket.send(Message::Text(text.into())),
        )
        .await;
        self.close(TRY_AGAIN_LATER, "too slow").await;
        Stop::TooSlow
    }

    /// Sends a close frame (best effort) with the given code.
    pub(crate) async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(
            GOODBYE_TIMEOUT,
            self.socket.send(Message::Close(Some(frame))),
        )
        .await;
    }

    async fn write(&mut self, message: Message) -> Result<(), Stop> {
        bounded(self.idle_timeout, self.socket.send(message)).await
    }
}

/// Runs a write, giving up on a client that does not take data for `limit`.
async fn bounded(
    limit: Duration,
    write: impl Future<Output = Result<(), axum::Error>>,
) -> Result<(), Stop> {
    match tokio::time::timeout(limit, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Stop::Broken(e.to_string())),
        Err(_) => Err(Stop::TooSlow),
    }
}
