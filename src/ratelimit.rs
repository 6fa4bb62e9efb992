//! Fixed-window counters in Redis, shared by every server process: login failures, comment
//! spam, and whatever else needs "at most N per window".
//!
//! Limits protect the service but must not take it down: when Redis is unreachable the limiter
//! lets requests through and logs it, rather than refusing every login.

use std::time::Duration;

use redis::AsyncCommands;

use crate::kv::Redis;

/// A limit: at most `max` events per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u64,
    pub window: Duration,
}

impl Limit {
    #[must_use]
    pub const fn new(max: u64, window: Duration) -> Self {
        Self { max, window }
    }
}

/// Counts events per key.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    redis: Redis,
}

impl RateLimiter {
    #[must_use]
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    /// Counts one event; `Err(retry_after)` if this event went over the limit.
    pub async fn hit(&self, key: &str, limit: Limit) -> Result<(), Duration> {
        match self.incr(key, limit.window).await {
            Ok((count, _)) if count <= limit.max => Ok(()),
            Ok((_, ttl)) => Err(ttl),
            Err(e) => {
                tracing::warn!(cause = %e, "rate limiter unavailable; letting the request through");
                Ok(())
            }
        }
    }

    /// `Err(retry_after)` if the key has already reached the limit; counts nothing.
    pub async fn check(&self, key: &str, limit: Limit) -> Result<(), Duration> {
        let full_key = self.redis.key(key);
        let result: redis::RedisResult<(Option<u64>, i64)> = async {
            let mut conn = self.redis.conn().await?;
            redis::pipe()
                .get(&full_key)
                .pttl(&full_key)
                .query_async(&mut conn)
                .await
        }
        .await;
        match result {
            Ok((Some(count), ttl)) if count >= limit.max => Err(ttl_to_duration(ttl, limit.window)),
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(cause = %e, "rate limiter unavailable; letting the request through");
                Ok(())
            }
        }
    }

    /// Counts one event without judging it (e.g. a failed login).
    pub async fn record(&self, key: &str, window: Duration) {
        if let Err(e) = self.incr(key, window).await {
            tracing::warn!(cause = %e, "rate limiter unavailable; event not counted");
        }
    }

    /// Forgets a key (e.g. after a successful login).
    pub async fn clear(&self, key: &str) {
        let full_key = self.redis.key(key);
        let result: redis::RedisResult<()> = async {
            let mut conn = self.redis.conn().await?;
            conn.del(&full_key).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(cause = %e, "rate limiter unavailable; key not cleared");
        }
    }

    /// Increments the counter, starting its window on the first event. Returns the count and the
    /// time left in the window.
    async fn incr(&self, key: &str, window: Duration) -> redis::RedisResult<(u64, Duration)> {
        let full_key = self.redis.key(key);
        let mut conn = self.redis.conn().await?;
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let (count, ttl): (u64, i64) = redis::pipe()
            .incr(&full_key, 1)
            .cmd("PEXPIRE")
            .arg(&full_key)
            .arg(window_ms)
            .arg("NX")
            .ignore()
            .pttl(&full_key)
            .query_async(&mut conn)
            .await?;
        Ok((count, ttl_to_duration(ttl, window)))
    }
}

fn ttl_to_duration(ttl_ms: i64, fallback: Duration) -> Duration {
    u64::try_from(ttl_ms).map_or(fallback, Duration::from_millis)
}
