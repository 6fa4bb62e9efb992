//! The application's side of the media core: who may publish (stream keys in PostgreSQL), and
//! what the core's events mean for the database and for viewers.

use std::net::SocketAddr;

use sqlx::PgPool;
use tokio::sync::mpsc::Receiver;
use uuid::Uuid;

use crate::live::events::StreamHealth;
use crate::state::AppState;
use crate::streams::{DEFAULT_TITLE, db, keys, lifecycle};

/// Decides publishes by stream key: the key's owner publishes to their newest stream that has
/// not ended, or to a new one.
#[derive(Debug, Clone)]
pub struct KeyAuthorizer {
    db: PgPool,
}

impl KeyAuthorizer {
    #[must_use]
    pub fn new(db: PgPool) -> Self {
        Self { db }
    }

    async fn stream_for(&self, key: &str) -> Result<Option<Uuid>, sqlx::Error> {
        let Some(user_id) = keys::owner(&self.db, key).await? else {
            return Ok(None);
        };
        let mut tx = self.db.begin().await?;
        // Locking the user serialises two publishes racing to create the stream.
        if db::lock_user_active(&mut *tx, user_id).await? != Some(true) {
            return Ok(None);
        }
        let stream_id = match db::open_stream_of(&mut *tx, user_id).await? {
            Some(id) => id,
            None => db::insert_titled(&mut *tx, user_id, DEFAULT_TITLE).await?,
        };
        tx.commit().await?;
        Ok(Some(stream_id))
    }
}

impl media::Authorizer for KeyAuthorizer {
    async fn authorize(
        &self,
        stream_key: &str,
        peer: SocketAddr,
    ) -> Result<Uuid, media::AuthError> {
        match self.stream_for(stream_key).await {
            Ok(Some(stream_id)) => Ok(stream_id),
            Ok(None) => Err(media::AuthError::UnknownKey),
            Err(e) => {
                tracing::error!(%peer, cause = %e, "cannot check a stream key");
                Err(media::AuthError::Unavailable(
                    "database unavailable".to_owned(),
                ))
            }
        }
    }
}

/// Applies the media core's events until it stops: live/ended in PostgreSQL, health in Redis,
/// every change announced on the stream's events.
pub async fn bridge(state: AppState, mut events: Receiver<media::MediaEvent>) {
    while let Some(event) = events.recv().await {
        match event {
            media::MediaEvent::Live { stream_id } => {
                if let Err(e) = lifecycle::went_live(&state, stream_id).await {
                    tracing::error!(%stream_id, cause = %e, "recording a stream as live failed");
                }
            }
            media::MediaEvent::Ended { stream_id } => {
                if let Err(e) = lifecycle::mark_ended(&state, stream_id).await {
                    tracing::error!(%stream_id, cause = %e, "recording a stream as ended failed");
                }
            }
            media::MediaEvent::Health { stream_id, health } => {
                lifecycle::report_health(&state, stream_id, health_payload(health)).await;
            }
            media::MediaEvent::Error {
                stream_id,
                code,
                message,
            } => {
                tracing::warn!(%stream_id, code = code.as_str(), message, "stream refused by the media core");
                lifecycle::report_error(&state, stream_id, code.as_str(), message).await;
            }
        }
    }
}

fn health_payload(h: media::Health) -> StreamHealth {
    StreamHealth {
        video_bitrate_kbps: h.video_bitrate_kbps,
        audio_bitrate_kbps: h.audio_bitrate_kbps,
        fps: h.fps,
        keyframe_interval_s: h.keyframe_interval_s,
        width: h.width,
        height: h.height,
        video_codec: h.video_codec,
        audio_codec: h.audio_codec,
        dropped_bytes: h.dropped_bytes,
    }
}
