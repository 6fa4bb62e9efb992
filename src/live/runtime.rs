//! The running half of live: this process's hubs and the tasks that feed them, as the
//! [`Live`] handle the application state holds. Knows nothing of HTTP or the state.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::config::LiveConfig;

/// The real-time machinery of one server process: its hubs, its Redis subscription, its socket
/// budget. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Live {
    inner: Arc<super::hub::Hubs>,
}

impl Live {
    /// Builds this process's hubs and starts what keeps them fed — the Redis relay, the viewer
    /// counter and the event-log pruner — on `tasks`; all stop when `shutdown` is cancelled.
    #[must_use]
    pub fn start(
        config: &LiveConfig,
        events: &super::events::Events,
        redis: &crate::kv::Redis,
        shutdown: &tokio_util::sync::CancellationToken,
        tasks: &tokio_util::task::TaskTracker,
    ) -> Self {
        let (hubs, relay_commands) =
            super::hub::Hubs::new(config, events.clone(), shutdown.clone(), tasks.clone());
        let live = Self {
            inner: Arc::new(hubs),
        };
        super::relay::spawn(redis, relay_commands, shutdown, tasks);
        super::viewers::spawn(&live, redis, events, shutdown, tasks);
        spawn_pruner(events, shutdown, tasks);
        live
    }

    pub(crate) fn hubs(&self) -> &super::hub::Hubs {
        &self.inner
    }

    /// Closes the overlay sockets of a streamer whose token no longer holds (replaced, or the
    /// streamer deactivated), in every process: each checks its token and closes if it is not
    /// valid any more. Call it after the change has committed.
    pub async fn close_overlays(&self, streamer_id: Uuid) {
        self.inner
            .overlays
            .notify(streamer_id, super::notices::Notice::Revoked);
        self.inner
            .events
            .announce_overlay_notice(streamer_id, super::notices::Notice::Revoked)
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
    events: &super::events::Events,
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
