//! A stream's live state: going live, ending, its health — in PostgreSQL (the truth), in Redis
//! (health, shared by every server process) and announced through [`Events`](crate::live::events).
//!
//! Each transition is a conditional update, so that whichever path ends a stream first (the
//! publisher leaving, the owner's stop, a key rotation, staff) announces it, and only once.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use uuid::Uuid;

use crate::live::events::{EventData, StreamEnded, StreamError, StreamHealth, StreamLive};
use crate::state::AppState;

use super::db;
use super::model::HealthMap;

/// Health outlives its reporting interval a little; a stream that stops reporting loses it.
const HEALTH_TTL: Duration = Duration::from_secs(10);

fn health_key(state: &AppState, stream_id: Uuid) -> String {
    state.redis.key(&format!("stream:{stream_id}:health"))
}

async fn announce(state: &AppState, stream_id: Uuid, event: EventData) {
    let kind = event.kind().as_str();
    if let Err(e) = state.events.publish(stream_id, event).await {
        tracing::warn!(%stream_id, kind, cause = %e, "publishing a stream event failed");
    }
}

/// The publisher's media is flowing: the stream is live.
pub async fn went_live(state: &AppState, stream_id: Uuid) -> sqlx::Result<()> {
    let Some(started_at) = db::set_live(&state.db, stream_id).await? else {
        // Stopped (or deleted) between the publish and its first frame: it stays ended.
        state.ingest.stop(stream_id);
        return Ok(());
    };
    // The first heartbeat, so that the stream is never swept as orphaned before the next.
    if let Err(e) = heartbeat(state, &[stream_id]).await {
        tracing::warn!(%stream_id, cause = %e, "recording the ingest heartbeat failed");
    }
    {
        tracing::info!(%stream_id, "stream live");
        announce(
            state,
            stream_id,
            EventData::StreamLive(StreamLive {
                stream_id,
                started_at,
            }),
        )
        .await;
    }
    Ok(())
}

/// Marks the stream ended (if it was live) and announces it. `None` if it was not live.
pub async fn mark_ended(state: &AppState, stream_id: Uuid) -> sqlx::Result<Option<DateTime<Utc>>> {
    let Some(ended_at) = db::set_ended(&state.db, stream_id).await? else {
        return Ok(None);
    };
    tracing::info!(%stream_id, "stream ended");
    announce_ended(state, stream_id, ended_at).await;
    if let Err(e) = db::clear_heartbeat(&state.db, stream_id).await {
        tracing::debug!(%stream_id, cause = %e, "clearing the ingest heartbeat failed");
    }
    Ok(Some(ended_at))
}

async fn announce_ended(state: &AppState, stream_id: Uuid, ended_at: DateTime<Utc>) {
    clear_health(state, stream_id).await;
    announce(
        state,
        stream_id,
        EventData::StreamEnded(StreamEnded {
            stream_id,
            ended_at,
        }),
    )
    .await;
}

/// Records that this process still feeds `publishing` (the streams its ingest holds) and returns
/// those of them that have ended meanwhile — stopped through another process, or swept — whose
/// publishers this process must now disconnect.
///
/// A stream that is not live yet (published, first frame still on its way) is left alone: its
/// `went_live` will come.
pub async fn heartbeat(state: &AppState, publishing: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    if publishing.is_empty() {
        return Ok(Vec::new());
    }
    db::heartbeat(&state.db, publishing).await
}

/// Ends the live streams no process has fed for `stale` (their process died without ending
/// them) and announces each. Safe to run in every process at once: each stream is ended by one.
pub async fn sweep_orphans(state: &AppState, stale: Duration) -> sqlx::Result<Vec<Uuid>> {
    let ended = db::end_orphans(&state.db, stale.as_secs_f64()).await?;
    for &(stream_id, ended_at) in &ended {
        tracing::warn!(%stream_id, "stream ended: its ingesting process stopped sending heartbeats");
        announce_ended(state, stream_id, ended_at).await;
    }
    Ok(ended.into_iter().map(|(id, _)| id).collect())
}

/// Ends a live stream: marks it ended, then disconnects its publisher (when this process
/// ingests it). The one way to end a stream, for its owner's stop, key rotation and staff.
///
/// In that order: the disconnect ends the stream too (the media core reports the publisher
/// gone), and if it came first that report could mark the stream ended before this call does,
/// which would then find it no longer live and answer `None` for a stream it did end.
pub async fn end_stream(state: &AppState, stream_id: Uuid) -> sqlx::Result<Option<DateTime<Utc>>> {
    let ended = mark_ended(state, stream_id).await;
    state.ingest.stop(stream_id);
    ended
}

/// Ends every live stream of a user (their key was rotated).
pub async fn end_streams_of(state: &AppState, user_id: Uuid) -> sqlx::Result<()> {
    let live = db::live_streams_of(&state.db, user_id).await?;
    for stream_id in live {
        end_stream(state, stream_id).await?;
    }
    Ok(())
}

/// Keeps the latest health for the stream JSON and announces it.
pub async fn report_health(state: &AppState, stream_id: Uuid, health: StreamHealth) {
    if let Ok(json) = serde_json::to_string(&health) {
        let stored: redis::RedisResult<()> = async {
            let mut conn = state.redis.conn().await?;
            conn.set_ex(health_key(state, stream_id), json, HEALTH_TTL.as_secs())
                .await
        }
        .await;
        if let Err(e) = stored {
            tracing::debug!(%stream_id, cause = %e, "storing stream health failed");
        }
    }
    announce(state, stream_id, EventData::StreamHealth(health)).await;
}

/// Announces that the media core refused or lost the stream.
pub async fn report_error(state: &AppState, stream_id: Uuid, code: &str, message: String) {
    announce(
        state,
        stream_id,
        EventData::StreamError(StreamError {
            code: code.to_owned(),
            message,
        }),
    )
    .await;
}

async fn clear_health(state: &AppState, stream_id: Uuid) {
    let result: redis::RedisResult<()> = async {
        let mut conn = state.redis.conn().await?;
        conn.del(health_key(state, stream_id)).await
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(%stream_id, cause = %e, "clearing stream health failed");
    }
}

/// The latest health of each stream that has one. Empty when Redis is unavailable: health is a
/// nicety, never a reason to fail a request.
pub async fn health(state: &AppState, stream_ids: &[Uuid]) -> HealthMap {
    if stream_ids.is_empty() {
        return HashMap::new();
    }
    let keys: Vec<String> = stream_ids.iter().map(|id| health_key(state, *id)).collect();
    let values: redis::RedisResult<Vec<Option<String>>> = async {
        let mut conn = state.redis.conn().await?;
        redis::cmd("MGET").arg(&keys).query_async(&mut conn).await
    }
    .await;
    match values {
        Ok(values) => stream_ids
            .iter()
            .zip(values)
            .filter_map(|(id, v)| Some((*id, serde_json::from_str(&v?).ok()?)))
            .collect(),
        Err(e) => {
            tracing::debug!(cause = %e, "reading stream health failed");
            HashMap::new()
        }
    }
}
