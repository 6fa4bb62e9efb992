//! The queue's Redis layout and the operations on it. Every key goes through [`Redis::key`]:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `jobs:stream` | stream, group `workers` | jobs ready to run; pending ones are being run |
//! | `jobs:delayed` | sorted set | failed jobs waiting for their retry, scored by due time (ms) |
//! | `jobs:dead` | list | jobs that failed `max_attempts` times, newest first, with the error |
//! | `jobs:schedule:*` | string with TTL | "this period's periodic job was queued" marker |

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use redis::RedisResult;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::JobsConfig;
use crate::kv::Redis;

pub(super) const GROUP: &str = "workers";
/// No retry waits longer than this, whatever the attempt.
const MAX_BACKOFF: Duration = Duration::from_secs(10 * 60);
/// The dead-letter list keeps this many jobs.
const DEAD_LETTERS_KEPT: isize = 10_000;

/// A job as stored: the job plus its bookkeeping. The queue stores any serialisable job (each
/// feature enqueues its own type); the worker reads them back as [`super::Job`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Envelope<J> {
    pub id: Uuid,
    /// Attempts already failed (0 for a fresh job).
    pub attempt: u32,
    pub enqueued_at: DateTime<Utc>,
    #[serde(flatten)]
    pub job: J,
}

/// A job that gave up, as kept on the dead-letter list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The job as it was queued (JSON), kept verbatim even if it no longer decodes.
    pub job: serde_json::Value,
    pub error: String,
    pub attempts: u32,
    pub failed_at: DateTime<Utc>,
}

/// Queue handle: enqueue jobs, inspect the dead letters. Cheap to clone.
#[derive(Debug, Clone)]
pub struct JobQueue {
    redis: Redis,
    config: JobsConfig,
}

/// Moves due jobs from the delayed set into the stream, atomically.
const PROMOTE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, job in ipairs(due) do
  redis.call('ZREM', KEYS[1], job)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'job', job)
end
return #due
";

impl JobQueue {
    #[must_use]
    pub fn new(redis: Redis, config: JobsConfig) -> Self {
        Self { redis, config }
    }

    pub(super) fn redis(&self) -> &Redis {
        &self.redis
    }

    pub(super) fn config(&self) -> &JobsConfig {
        &self.config
    }

    pub(super) fn stream_key(&self) -> String {
        self.redis.key("jobs:stream")
    }

    fn delayed_key(&self) -> String {
        self.redis.key("jobs:delayed")
    }

    fn dead_key(&self) -> String {
        self.redis.key("jobs:dead")
    }

    /// Queues a job to run as soon as a worker is free.
    pub async fn enqueue<J: Serialize>(&self, job: J) -> RedisResult<()> {
        let envelope = Envelope {
            id: Uuid::now_v7(),
            attempt: 0,
            enqueued_at: Utc::now(),
            job,
        };
        let mut conn = self.redis.conn().await?;
        redis::cmd("XADD")
            .arg(self.stream_key())
            .arg("MAXLEN")
            .arg("~")
            .arg(self.config.queue_max.max(1))
            .arg("*")
            .arg("job")
            .arg(encode(&envelope))
            .query_async::<()>(&mut conn)
            .await
    }

    /// Queues a job unless one was already queued by any process in this `period` under `name`
    /// (the periodic jobs: every worker process ticks, one of them wins).
    pub async fn enqueue_once_per<J: Serialize>(
        &self,
        name: &str,
        period: Duration,
        job: J,
    ) -> RedisResult<bool> {
        let mut conn = self.redis.conn().await?;
        let won: Option<String> = redis::cmd("SET")
            .arg(self.redis.key(&format!("jobs:schedule:{name}")))
            .arg(Utc::now().to_rfc3339())
            .arg("NX")
            .arg("PX")
            .arg(millis(period).max(1))
            .query_async(&mut conn)
            .await?;
        if won.is_some() {
            self.enqueue(job).await?;
        }
        Ok(won.is_some())
    }

    /// The dead-letter list, newest first.
    pub async fn dead_letters(&self) -> RedisResult<Vec<DeadLetter>> {
        let mut conn = self.redis.conn().await?;
        let raw: Vec<String> = redis::cmd("LRANGE")
            .arg(self.dead_key())
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        Ok(raw
            .iter()
            .filter_map(|r| serde_json::from_str(r).ok())
            .collect())
    }

    /// Jobs waiting in the stream or being run, plus those waiting for a retry.
    pub async fn backlog(&self) -> RedisResult<u64> {
        let mut conn = self.redis.conn().await?;
        let (stream, delayed): (u64, u64) = redis::pipe()
            .cmd("XLEN")
            .arg(self.stream_key())
            .cmd("ZCARD")
            .arg(self.delayed_key())
            .query_async(&mut conn)
            .await?;
        Ok(stream + delayed)
    }

    /// Creates the consumer group once the stream exists. `false` while no job was ever queued:
    /// the stream is not created for nothing (an idle deployment, or a test, leaves no keys).
    pub(super) async fn ensure_group(&self) -> RedisResult<bool> {
        let mut conn = self.redis.conn().await?;
        let created: RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.stream_key())
            .arg(GROUP)
            // From the start: jobs queued before any worker ever ran are not skipped.
            .arg("0")
            .query_async(&mut conn)
            .await;
        match created {
            Ok(()) => Ok(true),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(true),
            Err(e) if e.to_string().contains("requires the key to exist") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Moves retries that are due back into the stream.
    pub(super) async fn promote_due(&self) -> RedisResult<u64> {
        let mut conn = self.redis.conn().await?;
        redis::Script::new(PROMOTE)
            .key(self.delayed_key())
            .key(self.stream_key())
            .arg(Utc::now().timestamp_millis())
            .arg(self.config.queue_max.max(1))
            .invoke_async(&mut conn)
            .await
    }

    /// The job is done: forget it.
    pub(super) async fn complete(&self, entry_id: &str) -> RedisResult<()> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.remove(&mut pipe, entry_id);
        let mut conn = self.redis.conn().await?;
        pipe.query_async(&mut conn).await
    }

    /// Acknowledges an entry and deletes it from the stream (as part of `pipe`).
    fn remove(&self, pipe: &mut redis::Pipeline, entry_id: &str) {
        pipe.cmd("XACK")
            .arg(self.stream_key())
            .arg(GROUP)
            .arg(entry_id)
            .ignore()
            .cmd("XDEL")
            .arg(self.stream_key())
            .arg(entry_id)
            .ignore();
    }

    /// The job failed: schedule its next attempt after the backoff, or bury it when it has had
    /// all its attempts. Returns the delay when retried.
    pub(super) async fn fail<J: Serialize + Clone>(
        &self,
        entry_id: &str,
        envelope: Option<&Envelope<J>>,
        raw: &str,
        error: &str,
    ) -> RedisResult<Option<Duration>> {
        let attempts = envelope.map_or(u32::MAX, |e| e.attempt.saturating_add(1));
        let mut pipe = redis::pipe();
        pipe.atomic();
        let retry = match envelope {
            Some(envelope) if attempts < self.config.max_attempts.max(1) => {
                let delay = self.backoff(envelope.attempt);
                let next = Envelope {
                    attempt: attempts,
                    ..envelope.clone()
                };
                let due = Utc::now().timestamp_millis() + i64::try_from(millis(delay)).unwrap_or(0);
                pipe.cmd("ZADD")
                    .arg(self.delayed_key())
                    .arg(due)
                    .arg(encode(&next))
                    .ignore();
                Some(delay)
            }
            _ => {
                let dead = DeadLetter {
                    job: serde_json::from_str(raw).unwrap_or(serde_json::Value::String(raw.into())),
                    error: error.to_owned(),
                    attempts: envelope.map_or(0, |_| attempts),
                    failed_at: Utc::now(),
                };
                pipe.cmd("LPUSH")
                    .arg(self.dead_key())
                    .arg(serde_json::to_string(&dead).unwrap_or_default())
                    .ignore()
                    .cmd("LTRIM")
                    .arg(self.dead_key())
                    .arg(0)
                    .arg(DEAD_LETTERS_KEPT - 1)
                    .ignore();
                None
            }
        };
        self.remove(&mut pipe, entry_id);
        let mut conn = self.redis.conn().await?;
        pipe.query_async::<()>(&mut conn).await?;
        Ok(retry)
    }

    /// `backoff × 2^attempt`, capped, with ±20 % jitter so that retries of many jobs that
    /// failed together (Midtrans down) do not all come back at once.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = Duration::from_millis(self.config.backoff_ms.max(1));
        let exp = base.saturating_mul(2u32.saturating_pow(attempt.min(20)));
        let capped = exp.min(MAX_BACKOFF);
        capped.mul_f64(rand::rng().random_range(0.8..1.2))
    }
}

pub(super) fn encode<J: Serialize>(envelope: &Envelope<J>) -> String {
    // A struct of plain fields always serialises.
    serde_json::to_string(envelope).unwrap_or_default()
}

pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::donations::jobs::DonationJob;

    fn queue(backoff_ms: u64) -> JobQueue {
        let config = crate::config::Config::from_args(["siaran"]).expect("defaults");
        let mut jobs = config.jobs;
        jobs.backoff_ms = backoff_ms;
        JobQueue::new(
            Redis::new("redis://127.0.0.1:1", "unit").expect("url"),
            jobs,
        )
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let q = queue(1000);
        for attempt in 0..5 {
            let expected = 1000.0 * f64::from(2u32.pow(attempt));
            let got = q.backoff(attempt).as_millis() as f64;
            assert!(
                (expected * 0.8..=expected * 1.2).contains(&got),
                "attempt {attempt}: {got} ms"
            );
        }
        assert!(q.backoff(40) <= MAX_BACKOFF.mul_f64(1.2));
    }

    #[test]
    fn envelopes_round_trip_with_a_flat_kind() {
        let envelope = Envelope {
            id: Uuid::now_v7(),
            attempt: 2,
            enqueued_at: Utc::now(),
            job: DonationJob::DeliverOutbox {
                outbox_id: Uuid::nil(),
            }
            .into(),
        };
        let json = encode(&envelope);
        assert!(json.contains(r#""kind":"deliver_outbox""#), "{json}");
        let back: Envelope<super::super::Job> = serde_json::from_str(&json).expect("decodes");
        assert_eq!(back.job, envelope.job);
        assert_eq!(back.attempt, 2);
    }
}
