//! Per stream with local sockets, one hub: it receives the stream's events from the relay,
//! delivers them in id order without gaps, and fans them out in memory to every local socket.
//!
//! Ids are gapless per stream (see [`super::events`]), so a hub that last delivered id N and is
//! handed N + 2 knows it missed N + 1. Two publishers' announcements can cross on their way
//! through Redis, so N + 2 waits a moment ([`GAP_GRACE`]) for N + 1; if it does not come, the
//! hub reads what is missing from the log before going on. After the relay reconnects it asks
//! every hub to catch up the same way, and a slow sweep covers announcements lost with their
//! publisher. Sockets therefore see each event once, in order, whatever happened to Redis.
//!
//! Ids are never issued twice (every transaction that issues them commits synchronously), but
//! a hub does not take that on trust: were the log ever to go backwards — a database restored
//! from a backup, a commit lost in a crash — a hub that kept its high-water mark would drop
//! every new event as a duplicate, silently and for good. So a hub remembers a digest of the
//! last events it delivered; an "old" id arriving with other content that the log confirms, or
//! a log whose last id is below what the hub delivered (checked on every resync and sweep),
//! makes it rewind to the log, tell its sockets to rewind with it ([`FrameKind::Rewind`]), and
//! log it.
//!
//! Fan-out is a [`tokio::sync::broadcast`] ring per stream: an event is stored once and each
//! socket holds only its read position, so an idle socket costs a few bytes here. The ring's
//! length is how far a socket may fall behind ([`super::LiveConfig::ws_max_lag`]); a socket that
//! falls further is told and disconnected by [`super::connection`], without slowing the others.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::events::{EventKind, Events, LoggedEvent};
use super::relay::{self, Inbound};
use super::reorder::{Held, Reorder};
use crate::config::LiveConfig;

/// How long a hub without sockets lingers (so a reconnecting socket finds it warm).
const IDLE_GRACE: Duration = Duration::from_secs(30);
/// How often a hub checks the log for events it may have missed while nothing told it to.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Events read from the log per query when catching up.
const CATCH_UP_BATCH: u32 = 500;
/// Messages the relay may queue for a hub; beyond, it drops them and the hub repairs the gap.
const INBOX: usize = 1024;
/// How long an event that arrived ahead of a missing one waits for it before the log is read.
const GAP_GRACE: Duration = Duration::from_millis(25);
/// Most events kept waiting for a missing one.
const MAX_EARLY: usize = 256;
/// Delivered events whose digest a hub keeps, to tell a duplicate from a reused id.
const RECENT: usize = 64;
/// How long a socket waits for a new hub to learn where the stream's log stands.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// What a message is, as far as delivery cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameKind {
    DonationReceived,
    StreamEnded,
    ViewersCount(u64),
    Other,
    /// Not an event and never sent: the log went backwards, and sockets move their position
    /// back to this frame's id so that the events issued from there on reach them.
    Rewind,
}

/// An event as sent to sockets: its id and the exact text of the message.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub(crate) id: u64,
    pub(crate) kind: FrameKind,
    pub(crate) text: Utf8Bytes,
}

#[derive(Deserialize)]
struct Head<'a> {
    id: u64,
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

#[derive(Deserialize)]
struct CountBody {
    data: super::events::ViewersCount,
}

impl FrameKind {
    fn of(kind: &str, text: &str) -> Self {
        match EventKind::parse(kind) {
            Some(EventKind::DonationReceived) => Self::DonationReceived,
            Some(EventKind::StreamEnded) => Self::StreamEnded,
            Some(EventKind::ViewersCount) => serde_json::from_str::<CountBody>(text)
                .map_or(Self::Other, |body| Self::ViewersCount(body.data.count)),
            _ => Self::Other,
        }
    }
}

impl Frame {
    /// Reads a message as announced on Redis; `None` if it is not one of ours.
    pub(crate) fn parse(text: String) -> Option<Self> {
        let (id, kind) = {
            let head: Head<'_> = serde_json::from_str(&text).ok()?;
            (head.id, FrameKind::of(&head.kind, &text))
        };
        Some(Self {
            id,
            kind,
            text: Utf8Bytes::from(text),
        })
    }

    pub(crate) fn from_logged(event: LoggedEvent) -> Self {
        let kind = FrameKind::of(&event.kind, &event.wire);
        Self {
            id: event.id,
            kind,
            text: Utf8Bytes::from(event.wire),
        }
    }
}

/// One stream's fan-out point in this process.
#[derive(Debug)]
pub(crate) struct Hub {
    pub(crate) stream_id: Uuid,
    sender: broadcast::Sender<Frame>,
    state: Mutex<HubState>,
    ready: watch::Sender<bool>,
    /// Sockets holding a [`Subscription`] (viewers and overlays).
    listeners: AtomicUsize,
    /// Sockets counted as viewers.
    viewers: AtomicUsize,
}

#[derive(Debug, Default)]
struct HubState {
    /// The id of the last event delivered (or known to exist when the hub started).
    last_id: u64,
    /// The last `viewers.count` seen, for new sockets' `ready` message.
    viewer_count: Option<u64>,
    /// `(id, digest of the message)` of the last [`RECENT`] events delivered.
    recent: VecDeque<(u64, u64)>,
}

fn digest(text: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// What became of an event offered to the hub.
#[derive(Debug, PartialEq, Eq)]
enum Offer {
    Delivered,
    Duplicate,
    /// An id already delivered, with other content: the log has issued it again.
    Reused,
    /// Events between the last delivered one and this are missing.
    Gap,
}

impl Hub {
    fn offer(&self, frame: Frame) -> Offer {
        let mut state = self.state.lock();
        if frame.id <= state.last_id {
            let seen = state.recent.iter().find(|(id, _)| *id == frame.id);
            return match seen {
                Some(&(_, known)) if known != digest(frame.text.as_str()) => Offer::Reused,
                _ => Offer::Duplicate,
            };
        }
        if frame.id != state.last_id + 1 {
            return Offer::Gap;
        }
        state.last_id = frame.id;
        if state.recent.len() == RECENT {
            state.recent.pop_front();
        }
        state
            .recent
            .push_back((frame.id, digest(frame.text.as_str())));
        if let FrameKind::ViewersCount(count) = frame.kind {
            state.viewer_count = Some(count);
        }
        // No receivers is fine: sockets come and go.
        let _ = self.sender.send(frame);
        Offer::Delivered
    }

    /// Accepts that events up to `id` are gone from the log (pruned) and moves past them.
    fn skip_to(&self, id: u64) {
        let mut state = self.state.lock();
        if id > state.last_id {
            tracing::warn!(stream_id = %self.stream_id, from = state.last_id, to = id,
                "events were pruned from the log before this process could deliver them");
            state.last_id = id;
        }
    }

    fn last_id(&self) -> u64 {
        self.state.lock().last_id
    }

    /// Moves back to `id` after the log went backwards, and tells every socket to move back
    /// too. Events after `id` are then read from the log as if missed.
    fn rewind_to(&self, id: u64, why: &'static str) {
        let mut state = self.state.lock();
        if id >= state.last_id {
            return;
        }
        tracing::error!(stream_id = %self.stream_id, delivered = state.last_id, log = id, why,
            "the stream's event ids went backwards; rewinding to the log so that new events are delivered");
        metrics::counter!("live_event_rewinds_total").increment(1);
        state.last_id = id;
        state.recent.clear();
        let _ = self.sender.send(Frame {
            id,
            kind: FrameKind::Rewind,
            text: Utf8Bytes::from_static(""),
        });
    }

    /// The latest `viewers.count` this process delivered, if any.
    pub(crate) fn viewer_count(&self) -> Option<u64> {
        self.state.lock().viewer_count
    }

    pub(crate) fn local_viewers(&self) -> usize {
        self.viewers.load(Ordering::Relaxed)
    }
}

/// Whether a socket counts as a viewer of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audience {
    Viewer,
    /// The OBS overlay: receives events but is not a viewer.
    Overlay,
}

/// A socket's place in a hub: the events after `position`, and its share of the counts.
#[derive(Debug)]
pub(crate) struct Subscription {
    pub(crate) hub: Arc<Hub>,
    pub(crate) receiver: broadcast::Receiver<Frame>,
    /// The id of the last event delivered before this subscription began: the receiver yields
    /// exactly the events after it.
    pub(crate) position: u64,
    _membership: Membership,
}

/// Counts a socket in while it lives.
#[derive(Debug)]
struct Membership {
    hub: Arc<Hub>,
    audience: Audience,
}

impl Drop for Membership {
    fn drop(&mut self) {
        if self.audience == Audience::Viewer {
            self.hub.viewers.fetch_sub(1, Ordering::Relaxed);
        }
        self.hub.listeners.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a socket could not join a stream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JoinError {
    #[error("the stream's event log could not be read in time")]
    NotReady,
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// Every hub of this process, and what they share.
#[derive(Debug)]
pub(crate) struct Hubs {
    pub(crate) config: LiveConfig,
    pub(crate) events: Events,
    instance: Uuid,
    hubs: Registry,
    relay: relay::Handle,
    sockets: Arc<Semaphore>,
    pub(crate) overlays: super::notices::Overlays,
    pub(crate) shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Hubs {
    /// The hubs, and the receiving end of their relay's commands for [`relay::spawn`].
    pub(crate) fn new(
        config: &LiveConfig,
        events: Events,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> (Self, mpsc::UnboundedReceiver<relay::Command>) {
        let (relay, commands) = relay::Handle::new();
        let hubs = Self {
            config: config.clone(),
            events,
            instance: Uuid::new_v4(),
            hubs: Arc::new(Mutex::new(HashMap::new())),
            relay,
            sockets: Arc::new(Semaphore::new(config.ws_max_connections)),
            overlays: super::notices::Overlays::new(
                config.overlay_max_per_token,
                config.overlay_max_per_address,
            ),
            shutdown,
            tasks,
        };
        (hubs, commands)
    }

    pub(crate) fn instance(&self) -> Uuid {
        self.instance
    }

    pub(crate) fn relay(&self) -> &relay::Handle {
        &self.relay
    }

    /// A slot for one more socket, or `None` when this process has as many as it accepts.
    pub(crate) fn admit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.sockets).try_acquire_owned().ok()
    }

    /// Whether this process already serves the stream (so it is known to exist).
    pub(crate) fn serves(&self, stream_id: Uuid) -> bool {
        self.hubs.lock().contains_key(&stream_id)
    }

    /// Local viewers per stream, for streams that have any.
    pub(crate) fn local_viewers(&self) -> Vec<(Uuid, u64)> {
        self.hubs
            .lock()
            .values()
            .filter_map(|hub| {
                let n = hub.local_viewers();
                (n > 0).then(|| (hub.stream_id, n as u64))
            })
            .collect()
    }

    /// Subscribes a socket to a stream's events, starting the stream's hub if needed. Returns
    /// once the hub knows where the stream's log stands, so that every event committed after
    /// this returns reaches the subscription.
    pub(crate) async fn join(
        &self,
        stream_id: Uuid,
        audience: Audience,
    ) -> Result<Subscription, JoinError> {
        if self.shutdown.is_cancelled() {
            return Err(JoinError::ShuttingDown);
        }
        // Counting in under the registry lock: a hub removes itself only under the same lock
        // and only with no listeners, so it cannot vanish between lookup and count.
        let hub = {
            let mut hubs = self.hubs.lock();
            let hub = hubs
                .entry(stream_id)
                .or_insert_with(|| self.spawn_hub(stream_id))
                .clone();
            hub.listeners.fetch_add(1, Ordering::Relaxed);
            if audience == Audience::Viewer {
                hub.viewers.fetch_add(1, Ordering::Relaxed);
            }
            hub
        };
        let membership = Membership {
            hub: Arc::clone(&hub),
            audience,
        };
        let mut ready = hub.ready.subscribe();
        match tokio::time::timeout(READY_TIMEOUT, ready.wait_for(|r| *r)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return Err(JoinError::ShuttingDown),
            Err(_) => return Err(JoinError::NotReady),
        }
        // Position and receiver taken together under the state lock, which `offer` holds while
        // delivering: the receiver gets exactly the events after `position`.
        let (receiver, position) = {
            let state = hub.state.lock();
            (hub.sender.subscribe(), state.last_id)
        };
        Ok(Subscription {
            hub,
            receiver,
            position,
            _membership: membership,
        })
    }

    fn spawn_hub(&self, stream_id: Uuid) -> Arc<Hub> {
        let (sender, _) = broadcast::channel(self.config.ws_max_lag.max(16));
        let (ready, _) = watch::channel(false);
        let hub = Arc::new(Hub {
            stream_id,
            sender,
            state: Mutex::new(HubState::default()),
            ready,
            listeners: AtomicUsize::new(0),
            viewers: AtomicUsize::new(0),
        });
        let (inbox_tx, inbox) = mpsc::channel(INBOX);
        let channel = self.events.channel(stream_id);
        let own_inbox = inbox_tx.downgrade();
        self.relay.subscribe(channel.clone(), inbox_tx);
        let task = HubTask {
            hub: Arc::clone(&hub),
            registry: Arc::clone(&self.hubs),
            events: self.events.clone(),
            relay: self.relay.clone(),
            channel,
            inbox,
            own_inbox,
            early: Reorder::new(MAX_EARLY),
            shutdown: self.shutdown.clone(),
        };
        self.tasks.spawn(task.run());
        hub
    }
}

type Registry = Arc<Mutex<HashMap<Uuid, Arc<Hub>>>>;

/// The task behind a hub: learns where the log stands, then delivers what the relay hands it,
/// repairing gaps from the log, until the hub has had no sockets for [`IDLE_GRACE`].
struct HubTask {
    hub: Arc<Hub>,
    registry: Registry,
    events: Events,
    relay: relay::Handle,
    channel: String,
    inbox: mpsc::Receiver<Inbound>,
    /// For the sweep to ask for a resync; weak, so that the inbox closes when the relay lets go.
    own_inbox: mpsc::WeakSender<Inbound>,
    /// Events that arrived ahead of a missing one, waiting briefly for it.
    early: Reorder<Frame>,
    shutdown: CancellationToken,
}

impl HubTask {
    async fn run(mut self) {
        let stream_id = self.hub.stream_id;
        if !self.start().await {
            return;
        }
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.reset();
        let mut idle_check = tokio::time::interval(IDLE_GRACE / 3);
        let mut idle_since: Option<tokio::time::Instant> = None;
        loop {
            let gap_deadline = self.early.deadline();
            tokio::select! {
                () = self.shutdown.cancelled() => break,
                inbound = self.inbox.recv() => match inbound {
                    Some(Inbound::Frame(frame)) => self.receive(frame).await,
                    Some(Inbound::Resync) => {
                        self.check_log_not_behind().await;
                        self.catch_up().await;
                    }
                    Some(Inbound::Rewound) => {
                        self.check_log_not_behind().await;
                        self.catch_up().await;
                    }
                    // The relay is gone: the server is stopping.
                    None => break,
                },
                () = sleep_until_some(gap_deadline) => self.catch_up().await,
                _ = sweep.tick() => self.sweep(),
                _ = idle_check.tick() => {
                    if self.hub.listeners.load(Ordering::Relaxed) > 0 {
                        idle_since = None;
                    } else if idle_since.is_some_and(|t| t.elapsed() >= IDLE_GRACE) {
                        if self.retire() {
                            break;
                        }
                    } else if idle_since.is_none() {
                        idle_since = Some(tokio::time::Instant::now());
                    }
                }
            }
        }
        tracing::debug!(%stream_id, "hub stopped");
    }

    /// Reads where the stream's log stands, retrying while PostgreSQL is unreachable, and
    /// marks the hub ready. The relay was asked to subscribe before this, and answers every
    /// (re)subscription with a resync, so nothing published around this moment is missed.
    async fn start(&mut self) -> bool {
        let mut backoff = relay::Backoff::default();
        loop {
            match self.events.last_id(self.hub.stream_id).await {
                Ok(last_id) => {
                    self.hub.state.lock().last_id = last_id;
                    let _ = self.hub.ready.send(true);
                    return true;
                }
                Err(e) => {
                    tracing::warn!(stream_id = %self.hub.stream_id, cause = %e,
                        "cannot read the stream's event log; retrying");
                    tokio::select! {
                        () = self.shutdown.cancelled() => return false,
                        () = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
        }
    }

    /// Delivers an event from Redis. Two publishers' announcements can cross on the way, so an
    /// event that arrives ahead of a missing one waits [`GAP_GRACE`] for it before the log is
    /// read.
    async fn receive(&mut self, frame: Frame) {
        match self.hub.offer(frame.clone()) {
            Offer::Delivered => self.deliver_early(),
            Offer::Duplicate => {}
            // Only the log can tell a reissued id from a stray message: rewind if it agrees.
            Offer::Reused if !self.log_has(&frame).await => {}
            Offer::Reused => {
                self.hub.rewind_to(
                    frame.id - 1,
                    "an id already delivered came with other content",
                );
                self.early.clear();
                self.catch_up().await;
            }
            Offer::Gap => {
                let now = tokio::time::Instant::now();
                if self.early.hold(frame.id, frame, now, GAP_GRACE) == Held::Full {
                    self.catch_up().await;
                }
            }
        }
    }

    /// Delivers waiting events that are now next in line; forgets those already delivered.
    fn deliver_early(&mut self) {
        while let Some(frame) = self.early.next_after(self.hub.last_id()) {
            self.hub.offer(frame);
        }
    }

    /// The safety net: checks, off the delivery path, whether the log has events this hub
    /// was never told about (an announcement lost with its publisher), and asks for a resync.
    fn sweep(&self) {
        let (events, stream_id, delivered) =
            (self.events.clone(), self.hub.stream_id, self.hub.last_id());
        let Some(inbox) = self.own_inbox.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            match events.last_id(stream_id).await {
                Ok(last) if last > delivered => {
                    let _ = inbox.try_send(Inbound::Resync);
                }
                Ok(last) if last < delivered => {
                    let _ = inbox.try_send(Inbound::Rewound);
                }
                _ => {}
            }
        });
    }

    /// Whether the log holds exactly this message under its id.
    async fn log_has(&self, frame: &Frame) -> bool {
        let id = frame.id;
        match self
            .events
            .history(self.hub.stream_id, id - 1, Some(id), None, 1)
            .await
        {
            Ok(logged) => logged
                .first()
                .is_some_and(|e| e.id == id && e.wire == frame.text.as_str()),
            Err(e) => {
                tracing::warn!(stream_id = %self.hub.stream_id, cause = %e,
                    "cannot read the event log to check a reused id");
                false
            }
        }
    }

    /// Rewinds the hub if the log's last id is below what the hub delivered.
    async fn check_log_not_behind(&mut self) {
        match self.events.last_id(self.hub.stream_id).await {
            Ok(last) if last < self.hub.last_id() => {
                self.hub
                    .rewind_to(last, "the log's last id is below the last delivered");
                self.early.clear();
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(stream_id = %self.hub.stream_id, cause = %e,
                    "cannot read where the stream's event log stands");
            }
        }
    }

    /// Delivers every logged event after the last delivered one.
    async fn catch_up(&mut self) {
        let read = self.read_log().await;
        self.deliver_early();
        // Still missing: look again shortly, or in a while if the log is unreachable.
        let wait = if read {
            GAP_GRACE
        } else {
            Duration::from_secs(1)
        };
        self.early.wait_again(tokio::time::Instant::now(), wait);
    }

    /// Reads and delivers what the log has after the last delivered event; false if the log
    /// could not be read.
    async fn read_log(&mut self) -> bool {
        loop {
            let after = self.hub.last_id();
            let batch = match self
                .events
                .history(self.hub.stream_id, after, None, None, CATCH_UP_BATCH)
                .await
            {
                Ok(batch) => batch,
                Err(e) => {
                    // The next event, resync or sweep tries again.
                    tracing::warn!(stream_id = %self.hub.stream_id, cause = %e,
                        "cannot read missed events from the log");
                    return false;
                }
            };
            let full = batch.len() == CATCH_UP_BATCH as usize;
            if let Some(first) = batch.first()
                && first.id > after + 1
            {
                self.hub.skip_to(first.id - 1);
            }
            let caught = batch.len();
            for event in batch {
                self.hub.offer(Frame::from_logged(event));
            }
            if caught > 0 {
                metrics::counter!("live_events_recovered_total").increment(caught as u64);
                tracing::debug!(stream_id = %self.hub.stream_id, caught, "caught up from the log");
            }
            if !full {
                return true;
            }
        }
    }

    /// Removes the hub if it still has no listeners; joins take the same lock.
    fn retire(&self) -> bool {
        let mut hubs = self.registry.lock();
        if self.hub.listeners.load(Ordering::Relaxed) > 0 {
            return false;
        }
        hubs.remove(&self.hub.stream_id);
        // Still under the lock: a hub started for the stream after this one sends its
        // subscription after this unsubscription, so the relay keeps the new one's route.
        self.relay.unsubscribe(self.channel.clone());
        true
    }
}

/// Sleeps until the deadline, or forever without one.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Hub {
        let (sender, _) = broadcast::channel(16);
        let (ready, _) = watch::channel(true);
        Hub {
            stream_id: Uuid::nil(),
            sender,
            state: Mutex::new(HubState::default()),
            ready,
            listeners: AtomicUsize::new(0),
            viewers: AtomicUsize::new(0),
        }
    }

    fn frame(id: u64, content: &str) -> Frame {
        Frame::parse(format!(
            r#"{{"type":"comment.created","id":{id},"data":{{"content":"{content}"}}}}"#
        ))
        .expect("a frame")
    }

    #[test]
    fn an_id_delivered_again_with_the_same_content_is_a_duplicate() {
        let hub = hub();
        assert_eq!(hub.offer(frame(1, "a")), Offer::Delivered);
        assert_eq!(hub.offer(frame(1, "a")), Offer::Duplicate);
    }

    #[test]
    fn an_id_delivered_again_with_other_content_is_reused() {
        let hub = hub();
        assert_eq!(hub.offer(frame(1, "a")), Offer::Delivered);
        assert_eq!(hub.offer(frame(2, "b")), Offer::Delivered);
        assert_eq!(hub.offer(frame(2, "c")), Offer::Reused);
    }

    #[test]
    fn a_rewound_hub_delivers_the_reissued_ids_and_tells_its_sockets() {
        let hub = hub();
        let mut socket = hub.sender.subscribe();
        for id in 1..=3 {
            hub.offer(frame(id, "old"));
        }
        hub.rewind_to(1, "test");
        assert_eq!(hub.offer(frame(2, "new")), Offer::Delivered);
        let kinds: Vec<(u64, FrameKind)> = std::iter::from_fn(|| socket.try_recv().ok())
            .map(|f| (f.id, f.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                (1, FrameKind::Other),
                (2, FrameKind::Other),
                (3, FrameKind::Other),
                (1, FrameKind::Rewind),
                (2, FrameKind::Other),
            ]
        );
    }
}
