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

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::state::AppState;

pub use crate::config::LiveConfig;

/// The real-time machinery of one server process: its hubs, its Redis subscription, its socket
/// budget. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Live {
    inner: Arc<hub::Hubs>,
}

impl Live {
    /// Builds this process's hubs and starts what keeps them fed — the Redis relay, the viewer
    /// counter and the event-log pruner — on `tasks`; all stop when `shutdown` is cancelled.
    #[must_use]
    pub fn start(
        config: &LiveConfig,
        events: &events::Events,
        redis: &crate::kv::Redis,
        shutdown: &tokio_util::sync::CancellationToken,
        tasks: &tokio_util::task::TaskTracker,
    ) -> Self {
        let (hubs, relay_commands) =
            hub::Hubs::new(config, events.clone(), shutdown.clone(), tasks.clone());
        let live = Self {
            inner: Arc::new(hubs),
        };
        relay::spawn(redis, relay_commands, shutdown, tasks);
        viewers::spawn(&live, redis, events, shutdown, tasks);
        spawn_pruner(events, shutdown, tasks);
        live
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
fn spawn_pruner(
    events: &events::Events,
    shutdown: &tokio_util::sync::CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) {
    const EVERY: Duration = Duration::from_secs(5 * 60);
    let events = events.clone();
    let shutdown = shutdown.clone();
    tasks.spawn(async move {
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
