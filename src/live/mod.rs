//! Real time: the live events of a stream, carried between server processes by Redis and
//! delivered to viewers over `/ws/stream/{id}/`, the OBS overlay socket, and viewer counts.
//!
//! - [`events`]: publishing (the log in PostgreSQL, the announcement on Redis) — read its header
//!   for why events travel the way they do.
//! - [`relay`]: this process's one Redis subscription, shared by every stream it serves.
//! - [`hub`]: per stream with local sockets, puts events in id order (repairing gaps from the log)
//!   and fans them out in memory.
//! - [`socket`]: the `/ws/stream/{id}/` protocol; [`overlay`]: overlay tokens and
//!   `/ws/overlay/{token}`; [`connection`]: what both sockets share (heartbeats, slow clients).
//! - [`notices`]: what overlays learn about their streamer (live, ended, token replaced), pushed.
//! - [`viewers`]: open sockets per stream across processes, published as `viewers.count`.

pub mod connection;
pub mod events;
pub mod hub;
pub mod notices;
pub mod overlay;
pub mod protocol;
pub mod relay;
mod reorder;
pub mod socket;
pub mod viewers;

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::state::AppState;

/// Tuning of sockets and viewer counts. The defaults suit production; tests shorten the timers.
#[derive(Debug, Clone, Args)]
pub struct LiveConfig {
    /// Seconds between the WebSocket pings the server sends to every socket.
    #[arg(
        long = "ws-ping-interval",
        env = "SIARAN_WS_PING_INTERVAL",
        default_value_t = 10
    )]
    pub ws_ping_interval_secs: u64,

    /// A socket that sends nothing (not even a pong) for this many seconds is closed as dead.
    #[arg(
        long = "ws-idle-timeout",
        env = "SIARAN_WS_IDLE_TIMEOUT",
        default_value_t = 40
    )]
    pub ws_idle_timeout_secs: u64,

    /// Events a socket may fall behind before it is told it is too slow and disconnected.
    #[arg(long = "ws-max-lag", env = "SIARAN_WS_MAX_LAG", default_value_t = 1024)]
    pub ws_max_lag: usize,

    /// Most sockets (stream and overlay) this process keeps open; more are refused with 503.
    #[arg(
        long = "ws-max-connections",
        env = "SIARAN_WS_MAX_CONNECTIONS",
        default_value_t = 50_000
    )]
    pub ws_max_connections: usize,

    /// Seconds between viewer count updates. A process that stops updating (it crashed) stops
    /// counting after six of them.
    #[arg(
        long = "viewers-interval",
        env = "SIARAN_VIEWERS_INTERVAL",
        default_value_t = 5
    )]
    pub viewers_interval_secs: u64,

    /// Most overlay sockets one overlay token may have open in this process; more get 429
    /// `too_many_overlays`.
    #[arg(
        long = "overlay-max-per-token",
        env = "SIARAN_OVERLAY_MAX_PER_TOKEN",
        default_value_t = 16
    )]
    pub overlay_max_per_token: usize,

    /// Most overlay sockets one client address may have open in this process; more get 429
    /// `too_many_overlays`.
    #[arg(
        long = "overlay-max-per-address",
        env = "SIARAN_OVERLAY_MAX_PER_ADDRESS",
        default_value_t = 64
    )]
    pub overlay_max_per_address: usize,
}

impl LiveConfig {
    #[must_use]
    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ws_ping_interval_secs.max(1))
    }

    #[must_use]
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.ws_idle_timeout_secs.max(2))
    }

    #[must_use]
    pub fn viewers_interval(&self) -> Duration {
        Duration::from_secs(self.viewers_interval_secs.max(1))
    }
}

/// The real-time machinery of one server process: its hubs, its Redis subscription, its socket
/// budget. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Live {
    inner: Arc<hub::Hubs>,
}

impl Live {
    /// Starts the relay, the viewer counter and the log pruner on `state.tasks`; they stop when
    /// `state.shutdown` is cancelled.
    pub fn start(state: &AppState) {
        relay::spawn(state);
        viewers::spawn(state);
        spawn_pruner(state);
    }

    /// Builds the handle; [`Live::start`] sets it running once the state exists.
    #[must_use]
    pub fn new(
        config: &LiveConfig,
        events: events::Events,
        shutdown: tokio_util::sync::CancellationToken,
        tasks: tokio_util::task::TaskTracker,
    ) -> Self {
        Self {
            inner: Arc::new(hub::Hubs::new(config, events, shutdown, tasks)),
        }
    }

    pub(crate) fn hubs(&self) -> &hub::Hubs {
        &self.inner
    }

    /// Closes the overlay sockets of a streamer whose token no longer holds (replaced, or the
    /// streamer deactivated), in every process: each checks its token and closes if it is not
    /// valid any more. Call it after the change has committed.
    pub async fn close_overlays(&self, streamer_id: Uuid) {
        self.inner
            .overlays
            .notify(streamer_id, notices::Notice::Revoked);
        self.inner
            .events
            .announce_overlay_notice(streamer_id, notices::Notice::Revoked)
            .await;
    }

    /// This process's identity in shared viewer counts.
    #[must_use]
    pub fn instance(&self) -> Uuid {
        self.inner.instance()
    }
}

/// Removes old events from the log every few minutes (every process does; it is idempotent).
fn spawn_pruner(state: &AppState) {
    const EVERY: Duration = Duration::from_secs(5 * 60);
    let events = state.events.clone();
    let shutdown = state.shutdown.clone();
    state.tasks.spawn(async move {
        // Start at a random point so that processes started together do not prune together.
        let offset = Duration::from_millis(rand::random_range(0..EVERY.as_millis() as u64));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, EVERY);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => match events.prune().await {
                    Ok(0) => {}
                    Ok(removed) => tracing::debug!(removed, "pruned the event log"),
                    Err(e) => tracing::warn!(cause = %e, "could not prune the event log"),
                },
            }
        }
    });
}

#[derive(OpenApi)]
#[openapi(components(schemas(
    events::Envelope,
    events::EventData,
    protocol::ClientMessage,
    protocol::Control,
)))]
struct LiveDoc;

/// The sockets and the overlay token endpoints.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(LiveDoc::openapi())
        .routes(routes!(socket::stream_socket))
        .routes(routes!(overlay::overlay_socket))
        .routes(routes!(overlay::create_token))
        .routes(routes!(overlay::token_status))
}
