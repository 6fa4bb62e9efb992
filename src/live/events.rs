//! The one module through which anything that happens on a stream is announced: comments,
//! donations, the stream going live or ending, its health, viewer counts.
//!
//! Producers (comments, donations, the media bridge, the viewer counter) call
//! [`Events::publish`], or [`Events::record`] + [`Events::announce`] to publish inside their own
//! transaction. The types below are the server → client half of the WebSocket protocol.
//!
//! # How an event travels, and why this way
//!
//! The rule is "no lost events": a socket that reconnects with the last id it saw gets exactly
//! what it missed, and a donation alert survives a server restart. Redis offers two carriers:
//!
//! - **Pub/sub** delivers to whoever is subscribed at that instant and forgets. A process whose
//!   subscription drops (Redis restarting, a network blip) silently misses what was published
//!   meanwhile, and there is nothing to replay a reconnecting socket from.
//! - **Streams** keep a log with ids that readers can resume from, which is what the rule needs
//!   — but only as long as Redis keeps its data. Siaran's Redis is a cache and a broker that may
//!   restart empty (ARCHITECTURE: anything in Redis can be lost without losing history); a log
//!   and id counter kept there would reset with it, handing out ids that go backwards.
//!
//! So the log lives where history lives, in PostgreSQL, and Redis carries it between processes:
//!
//! 1. [`Events::record`] takes the stream's next id from `live_event_seqs` (a row lock held to
//!    the end of the transaction, so ids are gapless and commit in order) and stores the event in
//!    `live_events`, in the caller's transaction: a comment and its `comment.created` commit or
//!    roll back together, and a donation's alert is as durable as the donation.
//! 2. After the commit, [`Events::announce`] `PUBLISH`es the finished message on the stream's
//!    pub/sub channel. Pub/sub suits this half: it is cheap, and every process subscribes once
//!    per stream with local viewers and fans out in memory (`crate::live::hub`).
//! 3. Because ids are gapless, a process that receives id 9 after id 7 knows it missed 8 and
//!    reads it from the log; after its subscription comes back it reads everything newer than
//!    what it last delivered. A socket resuming with `last_event_id` is served from the same log.
//!
//! Publishing therefore succeeds whenever PostgreSQL does — with Redis down the event is kept and
//! reaches sockets once the subscriptions are back. The log is pruned to the last hour, never
//! below a stream's last 1,000 events ([`Events::prune`]).

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::constraint;
use crate::kv::Redis;
use crate::users::model::PublicUser;

/// Events younger than this are kept whatever their number.
pub const HISTORY_MIN_AGE: std::time::Duration = std::time::Duration::from_secs(60 * 60);
/// The last this many events of a stream are kept whatever their age (up to a day).
pub const HISTORY_MIN_EVENTS: i64 = 1_000;

/// Declares [`EventData`] and [`EventKind`] from one list, so that an event's `type` tag is
/// written once: serde's tag, [`EventKind::as_str`] (the log's `kind` column, the hub, the
/// overlay) and the OpenAPI schema all come from it.
macro_rules! events {
    ($($(#[$doc:meta])* $variant:ident($data:ty) => $tag:tt,)*) => {
        /// Everything that can happen on a stream, as `{"type": ..., "data": ...}`.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
        #[serde(tag = "type", content = "data")]
        pub enum EventData {
            $($(#[$doc])* #[serde(rename = $tag)] $variant($data),)*
        }

        /// What kind of event: [`EventData`]'s `type` without its data.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $($variant,)*
        }

        impl EventKind {
            pub const ALL: &'static [Self] = &[$(Self::$variant,)*];

            /// The `type` tag, e.g. `comment.created`.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $tag,)*
                }
            }

            #[must_use]
            pub fn parse(tag: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|kind| kind.as_str() == tag)
            }
        }

        impl EventData {
            #[must_use]
            pub fn kind(&self) -> EventKind {
                match self {
                    $(Self::$variant(_) => EventKind::$variant,)*
                }
            }

            /// The `data` object as JSON.
            pub fn data_json(&self) -> serde_json::Result<String> {
                match self {
                    $(Self::$variant(d) => serde_json::to_string(d),)*
                }
            }
        }
    };
}

events! {
    CommentCreated(CommentCreated) => "comment.created",
    CommentDeleted(CommentDeleted) => "comment.deleted",
    DonationReceived(DonationReceived) => "donation.received",
    StreamLive(StreamLive) => "stream.live",
    StreamEnded(StreamEnded) => "stream.ended",
    StreamHealth(StreamHealth) => "stream.health",
    StreamError(StreamError) => "stream.error",
    ViewersCount(ViewersCount) => "viewers.count",
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
    pub payment_method: crate::payments::PaymentMethod,
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

/// A delivered event: what clients receive, `{"type", "id", "ts", "stream_id", "data"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "type": "comment.created", "id": 42, "ts": "2025-01-01T12:00:00Z",
    "stream_id": "0190d7a4-5f7e-7c1a-9a52-3f0f7d3a1b2c",
    "data": {"id": "0190d7a4-6a00-7000-8000-000000000001", "stream_id": "0190d7a4-5f7e-7c1a-9a52-3f0f7d3a1b2c",
             "author": {"id": "0190d7a4-6a00-7000-8000-0000000000aa", "username": "rina"},
             "content": "Halo semua!", "created_at": "2025-01-01T12:00:00Z"}
}))]
pub struct Envelope {
    /// Grows by one with every event of the stream; pass the last one seen as `last_event_id`
    /// to resume.
    pub id: u64,
    pub ts: DateTime<Utc>,
    /// The stream the event happened on.
    pub stream_id: Uuid,
    #[serde(flatten)]
    pub event: EventData,
}

/// Why an event could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The event log (PostgreSQL) could not be written.
    #[error("recording the event: {0}")]
    Database(#[from] sqlx::Error),
    /// There is no stream with this id.
    #[error("no stream {0}")]
    UnknownStream(Uuid),
    #[error("encoding event: {0}")]
    Encode(#[from] serde_json::Error),
}

impl From<PublishError> for crate::error::AppError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::Database(e) => e.into(),
            PublishError::UnknownStream(_) => Self::not_found("Stream"),
            PublishError::Encode(e) => Self::Internal(e.into()),
        }
    }
}

/// An event stored in the log but not yet announced to the other processes.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub envelope: Envelope,
    /// The message exactly as sockets receive it.
    wire: String,
}

/// An event read back from the log.
#[derive(Debug, Clone)]
pub(crate) struct LoggedEvent {
    pub(crate) id: u64,
    pub(crate) kind: String,
    /// The message exactly as sockets receive it.
    pub(crate) wire: String,
}

/// The wire form, written from stored parts so that live and replayed messages are identical.
#[derive(Serialize)]
struct Wire<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: u64,
    ts: DateTime<Utc>,
    stream_id: Uuid,
    data: &'a RawValue,
}

fn encode_wire(
    kind: &str,
    id: u64,
    ts: DateTime<Utc>,
    stream_id: Uuid,
    data: &str,
) -> serde_json::Result<String> {
    let data: &RawValue = serde_json::from_str(data)?;
    serde_json::to_string(&Wire {
        kind,
        id,
        ts,
        stream_id,
        data,
    })
}

/// Publishes stream events to every server process, and keeps them for resuming sockets.
#[derive(Debug, Clone)]
pub struct Events {
    db: PgPool,
    redis: Redis,
}

impl Events {
    #[must_use]
    pub fn new(db: PgPool, redis: Redis) -> Self {
        Self { db, redis }
    }

    /// Publishes an event on a stream: stores it in the stream's log under the next id, then
    /// announces it to every server process. Returns once the event is stored, even when Redis
    /// is unreachable (it is delivered when Redis is back).
    pub async fn publish(
        &self,
        stream_id: Uuid,
        event: EventData,
    ) -> Result<Envelope, PublishError> {
        let mut conn = self.db.acquire().await?;
        let recorded = self.record(&mut conn, stream_id, event).await?;
        drop(conn);
        self.announce(&recorded).await;
        Ok(recorded.envelope)
    }

    /// Stores an event in the stream's log inside the caller's transaction. Call it last before
    /// the commit: it locks the stream's id counter until the transaction ends. After the
    /// commit, pass the result to [`Events::announce`]; if the transaction rolls back, the event
    /// and its id vanish with it.
    pub async fn record(
        &self,
        conn: &mut PgConnection,
        stream_id: Uuid,
        event: EventData,
    ) -> Result<Recorded, PublishError> {
        let mut recorded = self.record_many(conn, stream_id, vec![event]).await?;
        recorded.pop().ok_or(PublishError::UnknownStream(stream_id))
    }

    /// Stores several events of one stream under consecutive ids, in one statement; the rules of
    /// [`Events::record`] apply. Batching writers (comments under load) use it so that one
    /// commit, and one hold of the stream's id counter, serves many events.
    pub async fn record_many(
        &self,
        conn: &mut PgConnection,
        stream_id: Uuid,
        events: Vec<EventData>,
    ) -> Result<Vec<Recorded>, PublishError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let kinds: Vec<&str> = events.iter().map(|e| e.kind().as_str()).collect();
        let data = events
            .iter()
            .map(EventData::data_json)
            .collect::<Result<Vec<_>, _>>()?;
        let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
        // PostgreSQL keeps microseconds: an announced message must read exactly as the same
        // event replayed from the log (hubs compare them to tell a duplicate from a reused id).
        let ts = Utc::now().trunc_subsecs(6);
        let before = super::db::append_events(conn, stream_id, count, &kinds, &data, ts)
            .await
            .map_err(|e| match constraint(&e) {
                Some(c) if c.ends_with("stream_id_fkey") => PublishError::UnknownStream(stream_id),
                _ => PublishError::Database(e),
            })?;
        let before = u64::try_from(before).unwrap_or_default();
        let mut recorded = Vec::with_capacity(events.len());
        for (offset, (event, data)) in events.into_iter().zip(&data).enumerate() {
            let id = before + offset as u64 + 1;
            let wire = encode_wire(event.kind().as_str(), id, ts, stream_id, data)?;
            recorded.push(Recorded {
                envelope: Envelope {
                    id,
                    ts,
                    stream_id,
                    event,
                },
                wire,
            });
        }
        Ok(recorded)
    }

    /// Sends a recorded (and committed) event to every server process. Never fails: when Redis
    /// is unreachable the event waits in the log, and each process reads it from there once its
    /// subscription is back.
    pub async fn announce(&self, recorded: &Recorded) {
        self.announce_many(std::slice::from_ref(recorded)).await;
    }

    /// [`Events::announce`] for several events, in one round trip to Redis.
    pub async fn announce_many(&self, recorded: &[Recorded]) {
        let Some(first) = recorded.first() else {
            return;
        };
        let result: redis::RedisResult<()> = async {
            let mut conn = self.redis.conn().await?;
            let mut pipe = redis::pipe();
            for event in recorded {
                pipe.publish(self.channel(event.envelope.stream_id), &event.wire)
                    .ignore();
            }
            pipe.query_async(&mut conn).await
        }
        .await;
        self.notify_overlays(recorded).await;
        for event in recorded {
            metrics::counter!("live_events_published_total", "type" => event.envelope.event.kind().as_str())
                .increment(1);
        }
        if let Err(e) = result {
            tracing::warn!(
                stream_id = %first.envelope.stream_id,
                first_event_id = first.envelope.id,
                events = recorded.len(),
                cause = %e,
                "could not announce events on Redis; processes will read them from the log when Redis is back"
            );
        }
    }

    /// Tells the streamer's overlays (in every process) that a stream went live or ended, so
    /// that none of them has to poll for it ([`super::notices`]).
    async fn notify_overlays(&self, recorded: &[Recorded]) {
        for event in recorded {
            let stream_id = event.envelope.stream_id;
            let notice = match event.envelope.event {
                EventData::StreamLive(_) => super::notices::Notice::Live(stream_id),
                EventData::StreamEnded(_) => super::notices::Notice::Ended(stream_id),
                _ => continue,
            };
            match super::db::streamer_of(&self.db, stream_id).await {
                Ok(Some(streamer_id)) => self.announce_overlay_notice(streamer_id, notice).await,
                Ok(None) => {}
                Err(e) => tracing::warn!(%stream_id, cause = %e,
                    "cannot tell overlays of the stream's change; they learn it on their next check"),
            }
        }
    }

    /// Publishes a notice to a streamer's overlays in every process.
    pub(crate) async fn announce_overlay_notice(
        &self,
        streamer_id: Uuid,
        notice: super::notices::Notice,
    ) {
        let text = super::notices::Wire::encode(streamer_id, notice);
        let result: redis::RedisResult<()> = async {
            let mut conn = self.redis.conn().await?;
            redis::cmd("PUBLISH")
                .arg(self.overlay_channel())
                .arg(text)
                .query_async(&mut conn)
                .await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(%streamer_id, cause = %e,
                "could not announce an overlay notice; overlays check when Redis is back");
        }
    }

    /// The Redis pub/sub channel of overlay notices (one for all streamers).
    pub(crate) fn overlay_channel(&self) -> String {
        self.redis.key("overlay-notices")
    }

    /// The Redis pub/sub channel of a stream's events.
    pub(crate) fn channel(&self, stream_id: Uuid) -> String {
        self.redis.key(&format!("live:{stream_id}"))
    }

    /// The id of the stream's latest event (0 when it has none).
    pub(crate) async fn last_id(&self, stream_id: Uuid) -> sqlx::Result<u64> {
        let last = super::db::last_event_id(&self.db, stream_id).await?;
        Ok(last.and_then(|id| u64::try_from(id).ok()).unwrap_or(0))
    }

    /// Up to `limit` logged events with ids in `(after, up_to]`, oldest first, optionally of one
    /// kind only.
    pub(crate) async fn history(
        &self,
        stream_id: Uuid,
        after: u64,
        up_to: Option<u64>,
        kind: Option<&str>,
        limit: u32,
    ) -> sqlx::Result<Vec<LoggedEvent>> {
        let rows = super::db::events_after(
            &self.db,
            stream_id,
            i64::try_from(after).unwrap_or(i64::MAX),
            up_to.map(|id| i64::try_from(id).unwrap_or(i64::MAX)),
            kind,
            i64::from(limit),
        )
        .await?;
        let mut events = Vec::with_capacity(rows.len());
        for super::db::StoredEvent { id, kind, data, ts } in rows {
            let id = u64::try_from(id).unwrap_or_default();
            match encode_wire(&kind, id, ts, stream_id, &data) {
                Ok(wire) => events.push(LoggedEvent { id, kind, wire }),
                // Stored data is written by `record` from valid JSON; a row that is not is
                // skipped rather than allowed to stop every socket's replay.
                Err(e) => {
                    tracing::error!(%stream_id, event_id = id, cause = %e, "unreadable event in the log");
                }
            }
        }
        Ok(events)
    }

    /// The id of the oldest event still in the stream's log, if any.
    pub(crate) async fn oldest_id(&self, stream_id: Uuid) -> sqlx::Result<Option<u64>> {
        let oldest = super::db::oldest_event_id(&self.db, stream_id).await?;
        Ok(oldest.and_then(|id| u64::try_from(id).ok()))
    }

    /// Drops events older than [`HISTORY_MIN_AGE`] beyond each stream's last
    /// [`HISTORY_MIN_EVENTS`], and anything older than a day. Returns how many were removed.
    pub async fn prune(&self) -> sqlx::Result<u64> {
        super::db::prune_events(&self.db, HISTORY_MIN_AGE.as_secs_f64(), HISTORY_MIN_EVENTS).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_tag_and_serde_writes_the_same_tag() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(*kind));
        }
        assert_eq!(EventKind::parse("comment.updated"), None);
        let event = EventData::ViewersCount(ViewersCount { count: 3 });
        let json = serde_json::to_value(&event).expect("an event serialises");
        assert_eq!(json["type"], event.kind().as_str());
        assert_eq!(event.kind(), EventKind::ViewersCount);
    }

    /// The OpenAPI schema's `type` values are the wire's: a tag passed through the `events!`
    /// macro as a `literal` fragment once reached serde but not utoipa, and the document said
    /// `CommentCreated` where the socket sends `comment.created`.
    #[test]
    fn the_openapi_schema_names_the_tags_the_wire_uses() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(EventData::schema()).expect("the schema serialises");
        let mut documented: Vec<String> = schema["oneOf"]
            .as_array()
            .expect("one schema per kind")
            .iter()
            .map(|variant| {
                variant["properties"]["type"]["enum"][0]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        let mut wire: Vec<String> = EventKind::ALL
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect();
        documented.sort();
        wire.sort();
        assert_eq!(documented, wire);
    }
}
