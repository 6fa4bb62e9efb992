//! A stream as stored, and as the API shows it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgExecutor};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::live::events::StreamHealth;
use crate::state::AppState;
use crate::users::model::PublicUser;

/// A row of `streams` with its streamer's name.
#[derive(Debug, Clone, FromRow)]
pub struct Stream {
    pub id: Uuid,
    pub streamer_id: Uuid,
    pub streamer_username: String,
    pub title: String,
    pub description: String,
    pub is_active: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Stream {
    /// The stream, with its streamer's name.
    pub async fn find(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Self>> {
        super::db::find(db, id).await
    }
}

/// A stream as anyone may see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StreamView {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub streamer: PublicUser,
    /// A publisher is connected and HLS is being written.
    pub is_live: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// The HLS playlist, while live.
    #[schema(
        example = "http://localhost:8000/hls/0190a7c4-1f2e-7c3d-9a5b-2f1e0d9c8b7a/index.m3u8"
    )]
    pub hls_url: Option<String>,
    /// A recent frame (refreshed every ~10 s), while live.
    pub thumbnail_url: Option<String>,
    /// Inbound media health, while live and measured.
    pub health: Option<StreamHealth>,
    /// Open `/ws/stream/{id}/` sockets over all server processes (updated every few seconds).
    pub viewer_count: u64,
}

impl StreamView {
    fn new(stream: Stream, base: &str, health: Option<StreamHealth>, viewer_count: u64) -> Self {
        let live = stream.is_active;
        let url = |file: &str| live.then(|| format!("{base}/hls/{}/{file}", stream.id));
        Self {
            hls_url: url(media::PLAYLIST),
            thumbnail_url: url(media::THUMBNAIL),
            health: health.filter(|_| live),
            viewer_count,
            id: stream.id,
            title: stream.title,
            description: stream.description,
            streamer: PublicUser {
                id: stream.streamer_id,
                username: stream.streamer_username,
            },
            is_live: live,
            started_at: stream.started_at,
            ended_at: stream.ended_at,
            created_at: stream.created_at,
        }
    }

    /// Views of `streams`, with the health and viewer counts of those that are live.
    pub async fn many(state: &AppState, streams: Vec<Stream>) -> Vec<Self> {
        let live: Vec<Uuid> = streams
            .iter()
            .filter(|s| s.is_active)
            .map(|s| s.id)
            .collect();
        let (mut health, viewers) = tokio::join!(
            super::lifecycle::health(state, &live),
            crate::live::viewers::counts(&state.redis, &state.live, &live)
        );
        let base = state.config.public_base();
        streams
            .into_iter()
            .map(|s| {
                let h = health.remove(&s.id);
                let v = viewers.get(&s.id).copied().unwrap_or(0);
                Self::new(s, base, h, v)
            })
            .collect()
    }

    pub async fn one(state: &AppState, stream: Stream) -> Self {
        let (health, viewers) = if stream.is_active {
            let ids = [stream.id];
            let (mut health, viewers) = tokio::join!(
                super::lifecycle::health(state, &ids),
                crate::live::viewers::counts(&state.redis, &state.live, &ids)
            );
            (health.remove(&stream.id), viewers.get(&stream.id).copied())
        } else {
            (None, None)
        };
        Self::new(
            stream,
            state.config.public_base(),
            health,
            viewers.unwrap_or(0),
        )
    }
}

/// Health by stream, as the lifecycle module stored it.
pub(crate) type HealthMap = HashMap<Uuid, StreamHealth>;
