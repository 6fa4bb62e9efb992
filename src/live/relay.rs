//! This process's one Redis subscription: every stream with local sockets is a channel on it,
//! and each message is handed to that stream's hub. No socket ever opens a Redis connection.
//!
//! The connection exists only while some stream is subscribed. When it drops (Redis restarted,
//! the network failed, a ping went unanswered) the relay reconnects with exponential backoff,
//! subscribes again and tells every hub to catch up from the log, so what was published
//! meanwhile is delivered late rather than lost. Every (re)subscription is answered with such a
//! resync, which also covers events published while a new hub was starting.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::hub::Frame;

/// How long connecting (or answering a ping) may take before the connection counts as dead.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the idle subscription is pinged, to notice a connection that died silently.
const PING_EVERY: Duration = Duration::from_secs(15);

/// What the relay hands a hub.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// An event as announced on Redis.
    Frame(Frame),
    /// The subscription was (re)established: read the log for anything newer.
    Resync,
    /// The hub's sweep found the log behind what the hub delivered: rewind to it.
    Rewound,
}

/// Requests to the relay.
#[derive(Debug)]
pub(crate) enum Command {
    Subscribe {
        channel: String,
        inbox: mpsc::Sender<Inbound>,
    },
    Unsubscribe {
        channel: String,
    },
}

/// Sends commands to the relay. Commands are rare (a hub starting or retiring) and tiny, so the
/// queue is unbounded: a hub never waits on the relay.
#[derive(Debug, Clone)]
pub(crate) struct Handle {
    commands: mpsc::UnboundedSender<Command>,
}

impl Handle {
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<Command>) {
        let (commands, receiver) = mpsc::unbounded_channel();
        (Self { commands }, receiver)
    }

    pub(crate) fn subscribe(&self, channel: String, inbox: mpsc::Sender<Inbound>) {
        // Fails only when the relay has stopped, i.e. the server is shutting down.
        let _ = self.commands.send(Command::Subscribe { channel, inbox });
    }

    pub(crate) fn unsubscribe(&self, channel: String) {
        let _ = self.commands.send(Command::Unsubscribe { channel });
    }
}

/// Exponential backoff with jitter: 250 ms doubling to 10 s.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(10);

    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        // Up to 20% jitter so that processes that lost Redis together do not return together.
        let jitter = rand::random_range(0..=delay.as_millis() as u64 / 5);
        delay + Duration::from_millis(jitter)
    }

    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// Starts the relay task, which takes its commands from `commands` (the other end of the
/// [`Handle`] the hubs hold).
pub(crate) fn spawn(
    redis: &crate::kv::Redis,
    commands: mpsc::UnboundedReceiver<Command>,
    shutdown: &CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) {
    let relay = Relay {
        client: redis.client().clone(),
        commands,
        routes: HashMap::new(),
        shutdown: shutdown.clone(),
    };
    tasks.spawn(relay.run());
}

struct Relay {
    client: redis::Client,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Channel name → the inbox of the stream's hub.
    routes: HashMap<String, mpsc::Sender<Inbound>>,
    shutdown: CancellationToken,
}

/// Why a connection ended.
enum Ended {
    Shutdown,
    /// No stream needs the subscription any more.
    Idle,
    Lost(String),
}

impl Relay {
    async fn run(mut self) {
        let mut backoff = Backoff::default();
        let mut outage: Option<Instant> = None;
        loop {
            // Without subscriptions there is no connection: wait for the first one.
            while self.routes.is_empty() {
                tokio::select! {
                    () = self.shutdown.cancelled() => return,
                    command = self.commands.recv() => match command {
                        Some(command) => self.apply_offline(command),
                        None => return,
                    },
                }
            }
            let connected = tokio::select! {
                () = self.shutdown.cancelled() => return,
                result = tokio::time::timeout(CONNECT_TIMEOUT, self.client.get_async_pubsub()) => result,
            };
            let failure = match connected {
                Ok(Ok(pubsub)) => {
                    if let Some(since) = outage.take() {
                        tracing::info!(
                            down_for_ms = since.elapsed().as_millis() as u64,
                            streams = self.routes.len(),
                            "Redis subscription restored; catching up on missed events from the log"
                        );
                    }
                    backoff.reset();
                    match self.serve(pubsub).await {
                        Ended::Shutdown => return,
                        Ended::Idle => continue,
                        Ended::Lost(reason) => reason,
                    }
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => "connecting timed out".to_owned(),
            };
            if outage.is_none() {
                outage = Some(Instant::now());
                metrics::counter!("live_redis_subscription_lost_total").increment(1);
                tracing::warn!(
                    cause = %failure,
                    streams = self.routes.len(),
                    "lost the Redis subscription; sockets stay open and events wait in the log; reconnecting with backoff"
                );
            } else {
                tracing::debug!(cause = %failure, "Redis subscription still unavailable");
            }
            let wake = tokio::time::sleep(backoff.next_delay());
            tokio::pin!(wake);
            loop {
                tokio::select! {
                    () = self.shutdown.cancelled() => return,
                    () = &mut wake => break,
                    command = self.commands.recv() => match command {
                        Some(command) => self.apply_offline(command),
                        None => return,
                    },
                }
            }
        }
    }

    /// Records a command while there is no connection; the next connection subscribes to
    /// whatever is in `routes` then.
    fn apply_offline(&mut self, command: Command) {
        match command {
            Command::Subscribe { channel, inbox } => {
                self.routes.insert(channel, inbox);
            }
            Command::Unsubscribe { channel } => {
                self.routes.remove(&channel);
            }
        }
    }

    /// Subscribes to every routed channel and relays messages until the connection ends.
    async fn serve(&mut self, pubsub: redis::aio::PubSub) -> Ended {
        let (mut sink, mut messages) = pubsub.split();
        let channels: Vec<String> = self.routes.keys().cloned().collect();
        if let Err(e) = sink.subscribe(&channels).await {
            return Ended::Lost(e.to_string());
        }
        for inbox in self.routes.values() {
            let _ = inbox.try_send(Inbound::Resync);
        }
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.reset();
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return Ended::Shutdown,
                command = self.commands.recv() => match command {
                    None => return Ended::Shutdown,
                    Some(Command::Subscribe { channel, inbox }) => {
                        let result = sink.subscribe(&channel).await;
                        let _ = inbox.try_send(Inbound::Resync);
                        self.routes.insert(channel, inbox);
                        if let Err(e) = result {
                            return Ended::Lost(e.to_string());
                        }
                    }
                    Some(Command::Unsubscribe { channel }) => {
                        self.routes.remove(&channel);
                        if self.routes.is_empty() {
                            return Ended::Idle;
                        }
                        if let Err(e) = sink.unsubscribe(&channel).await {
                            return Ended::Lost(e.to_string());
                        }
                    }
                },
                message = messages.next() => match message {
                    Some(message) => self.dispatch(&message),
                    None => return Ended::Lost("the connection closed".to_owned()),
                },
                _ = ping.tick() => {
                    // A subscribed connection answers PING with `["pong", ""]`, not `PONG`.
                    match tokio::time::timeout(CONNECT_TIMEOUT, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Ended::Lost(e.to_string()),
                        Err(_) => return Ended::Lost("ping timed out".to_owned()),
                    }
                }
            }
        }
    }

    fn dispatch(&self, message: &redis::Msg) {
        let channel = message.get_channel_name();
        let Some(inbox) = self.routes.get(channel) else {
            return;
        };
        let Ok(text) = String::from_utf8(message.get_payload_bytes().to_vec()) else {
            tracing::warn!(channel, "ignoring a message that is not UTF-8");
            return;
        };
        let Some(frame) = Frame::parse(text) else {
            tracing::warn!(channel, "ignoring a message that is not an event");
            return;
        };
        if inbox.try_send(Inbound::Frame(frame)).is_err() {
            // The hub is behind (or stopping); it repairs the gap from the log.
            tracing::debug!(channel, "hub inbox full; event left to the log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_at_most_a_fifth_of_jitter_and_resets() {
        let mut backoff = Backoff::default();
        let mut base = Backoff::FIRST;
        for _ in 0..10 {
            let delay = backoff.next_delay();
            assert!(
                delay >= base && delay <= base + base / 5,
                "{delay:?} for a base of {base:?}"
            );
            base = (base * 2).min(Backoff::MAX);
        }
        assert_eq!(base, Backoff::MAX, "the cap is reached within ten failures");
        backoff.reset();
        assert!(backoff.next_delay() <= Backoff::FIRST + Backoff::FIRST / 5);
    }
}
