//! The one module through which anything that happens on a stream is announced: comments,
//! donations, the stream going live or ending, its health, viewer counts.
//!
//! Producers (comments, donations, the media bridge) call [`Events::publish`]; the real-time
//! layer delivers what is published to every server process and its sockets. The message
//! schema below is the WebSocket protocol's server → client half.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::kv::Redis;
use crate::users::model::PublicUser;

/// Everything that can happen on a stream, as `{"type": ..., "data": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", content = "data")]
pub enum EventData {
    #[serde(rename = "comment.created")]
    CommentCreated(CommentCreated),
    #[serde(rename = "comment.deleted")]
    CommentDeleted(CommentDeleted),
    #[serde(rename = "donation.received")]
    DonationReceived(DonationReceived),
    #[serde(rename = "stream.live")]
    StreamLive(StreamLive),
    #[serde(rename = "stream.ended")]
    StreamEnded(StreamEnded),
    #[serde(rename = "stream.health")]
    StreamHealth(StreamHealth),
    #[serde(rename = "stream.error")]
    StreamError(StreamError),
    #[serde(rename = "viewers.count")]
    ViewersCount(ViewersCount),
}

impl EventData {
    /// The `type` tag, e.g. `comment.created`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::CommentCreated(_) => "comment.created",
            Self::CommentDeleted(_) => "comment.deleted",
            Self::DonationReceived(_) => "donation.received",
            Self::StreamLive(_) => "stream.live",
            Self::StreamEnded(_) => "stream.ended",
            Self::StreamHealth(_) => "stream.health",
            Self::StreamError(_) => "stream.error",
            Self::ViewersCount(_) => "viewers.count",
        }
    }
}

/// A comment was posted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CommentCreated {
    pub id: Uuid,
    pub stream_id: Uuid,
    pub author: PublicUser,
    pub content: String,
    pub created_at: DateTime<Utc>,
}

/// A comment was removed by the streamer or staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CommentDeleted {
    pub id: Uuid,
}

/// A donation was paid (sent exactly once per donation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DonationReceived {
    pub donation_id: Uuid,
    /// Whole rupiah.
    pub amount: i64,
    #[schema(example = "IDR")]
    pub currency: String,
    pub message: String,
    /// The donor's display name, or "Anonymous".
    pub donor_name: String,
    /// `midtrans` or `bank_transfer`.
    pub payment_method: String,
}

/// The publisher started sending; the stream is live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StreamLive {
    pub stream_id: Uuid,
    pub started_at: DateTime<Utc>,
}

/// The stream ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StreamEnded {
    pub stream_id: Uuid,
    pub ended_at: DateTime<Utc>,
}

/// Inbound media health, every few seconds while live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, Default)]
pub struct StreamHealth {
    pub video_bitrate_kbps: Option<f64>,
    pub audio_bitrate_kbps: Option<f64>,
    pub fps: Option<f64>,
    pub keyframe_interval_s: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    /// Media data dropped since the stream went live (bytes the pipeline could not keep up with).
    pub dropped_bytes: u64,
}

/// The media pipeline refused or lost the stream (e.g. an unsupported codec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StreamError {
    pub code: String,
    pub message: String,
}

/// Open sockets on the stream across all server processes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ViewersCount {
    pub count: u64,
}

/// A delivered event: what clients receive, `{"type", "id", "ts", "data"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Envelope {
    /// Grows monotonically per stream; pass the last one seen as `last_event_id` to resume.
    pub id: u64,
    pub ts: DateTime<Utc>,
    #[serde(flatten)]
    pub event: EventData,
}

/// Why an event could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("encoding event: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Publishes stream events to every server process.
#[derive(Debug, Clone)]
pub struct Events {
    redis: Redis,
}

impl Events {
    #[must_use]
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    /// Publishes an event on a stream and returns its id.
    ///
    /// The real-time issue owns how events travel; this first version appends to a capped Redis
    /// stream per stream with an id from a per-stream counter.
    pub async fn publish(
        &self,
        stream_id: Uuid,
        event: EventData,
    ) -> Result<Envelope, PublishError> {
        let mut conn = self.redis.conn().await?;
        let id: u64 = redis::cmd("INCR")
            .arg(self.redis.key(&format!("events:{stream_id}:seq")))
            .query_async(&mut conn)
            .await?;
        let envelope = Envelope {
            id,
            ts: Utc::now(),
            event,
        };
        let json = serde_json::to_string(&envelope)?;
        redis::cmd("XADD")
            .arg(self.redis.key(&format!("events:{stream_id}")))
            .arg("MAXLEN")
            .arg("~")
            .arg(1000)
            .arg("*")
            .arg("e")
            .arg(json)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(envelope)
    }
}
