//! Fixed-window counters in Redis, shared by every server process: registrations, logins,
//! refreshes, donations, comment spam — whatever needs "at most N per window".
//!
//! A request is counted *before* it is judged, in one atomic step: [`RateLimiter::acquire`]
//! runs one Lua script that checks every key the request is limited by and, only if none is
//! full, counts it against all of them. N parallel requests therefore get exactly the limit,
//! never "the limit plus whatever was in flight" as a check-then-record pair does. Outcomes
//! that should not count (a successful login) are given back with [`RateLimiter::refund`].
//!
//! Limits protect the service but must not take it down: when Redis is unreachable the limiter
//! lets requests through and logs it (fails open), rather than refusing every login. Password
//! hashing has its own process-wide bound that does not depend on Redis
//! ([`crate::auth::password::Hasher`]).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::LazyLock;
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

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.max, self.window.as_secs())
    }
}

/// `COUNT/WINDOW` with the window in seconds (`30s` or `30`), minutes (`15m`), hours (`1h`) or
/// days (`1d`).
impl FromStr for Limit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("`{s}` is not a limit: write COUNT/WINDOW, like 5/15m or 20/1h");
        let (count, window) = s.trim().split_once('/').ok_or_else(invalid)?;
        let max: u64 = count.trim().parse().map_err(|_| invalid())?;
        let window = window.trim();
        let (number, unit) = window.split_at(
            window
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(window.len()),
        );
        let number: u64 = number.parse().map_err(|_| invalid())?;
        let seconds = match unit {
            "" | "s" => number,
            "m" => number.saturating_mul(60),
            "h" => number.saturating_mul(3600),
            "d" => number.saturating_mul(86_400),
            _ => return Err(invalid()),
        };
        if seconds == 0 {
            return Err(format!("`{s}`: the window must be at least one second"));
        }
        Ok(Self::new(max, Duration::from_secs(seconds)))
    }
}

/// The part of a client address a per-address limit counts: an IPv4 address, or the /64 an
/// IPv6 address is in (one subscriber usually gets a whole /64, so counting per /128 would let
/// one client take 2^64 turns).
#[must_use]
pub fn address_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// Which limit refused a request, and when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Index of the refusing key in what was passed to [`RateLimiter::acquire`].
    pub index: usize,
    pub retry_after: Duration,
}

/// Checks every key and, if none is at its limit, counts one event against each — atomically.
/// Returns `{0, 0}` when counted, or `{i, pttl}` for the first full key `i` (1-based; nothing
/// counted).
const ACQUIRE: &str = r"
for i, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if count >= tonumber(ARGV[2 * i - 1]) then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then
      redis.call('PEXPIRE', key, ARGV[2 * i])
      ttl = tonumber(ARGV[2 * i])
    end
    return {i, ttl}
  end
end
for i, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then
    redis.call('PEXPIRE', key, ARGV[2 * i])
  end
end
return {0, 0}
";

/// Gives one counted event back, never below zero.
const REFUND: &str = r"
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then redis.call('DECR', KEYS[1]) end
return 0
";

static ACQUIRE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(ACQUIRE));
static REFUND_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(REFUND));

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

    /// Counts one event against every `(key, limit)`, unless one of the keys has already reached
    /// its limit: then nothing is counted and the first such key is named. Atomic over all
    /// server processes. Fails open (counts nothing, refuses nothing) when Redis is down.
    pub async fn acquire(&self, charges: &[(&str, Limit)]) -> Result<(), Refused> {
        if charges.is_empty() {
            return Ok(());
        }
        let result: redis::RedisResult<(usize, i64)> = async {
            let mut conn = self.redis.conn().await?;
            let mut invocation = ACQUIRE_SCRIPT.prepare_invoke();
            for (key, limit) in charges {
                invocation
                    .key(self.redis.key(key))
                    .arg(limit.max)
                    .arg(window_ms(limit.window));
            }
            invocation.invoke_async(&mut conn).await
        }
        .await;
        match result {
            Ok((0, _)) => Ok(()),
            Ok((index, ttl)) => {
                let index = index.saturating_sub(1).min(charges.len() - 1);
                Err(Refused {
                    index,
                    retry_after: ttl_to_duration(ttl, charges[index].1.window),
                })
            }
            Err(e) => {
                tracing::warn!(cause = %e, "rate limiter unavailable; letting the request through");
                Ok(())
            }
        }
    }

    /// Gives back one event counted by [`acquire`](Self::acquire) (an outcome that should not
    /// count, such as a successful login).
    pub async fn refund(&self, key: &str) {
        let full_key = self.redis.key(key);
        let result: redis::RedisResult<i64> = async {
            let mut conn = self.redis.conn().await?;
            REFUND_SCRIPT.key(full_key).invoke_async(&mut conn).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(cause = %e, "rate limiter unavailable; event not given back");
        }
    }

    /// Counts one event; `Err(retry_after)` if this event went over the limit (it stays
    /// counted). One key only; for several, use [`acquire`](Self::acquire).
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

    /// Forgets a key (e.g. an account's failed logins after a successful one).
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
        let (count, ttl): (u64, i64) = redis::pipe()
            .incr(&full_key, 1)
            .cmd("PEXPIRE")
            .arg(&full_key)
            .arg(window_ms(window))
            .arg("NX")
            .ignore()
            .pttl(&full_key)
            .query_async(&mut conn)
            .await?;
        Ok((count, ttl_to_duration(ttl, window)))
    }
}

fn window_ms(window: Duration) -> i64 {
    i64::try_from(window.as_millis()).unwrap_or(i64::MAX)
}

fn ttl_to_duration(ttl_ms: i64, fallback: Duration) -> Duration {
    u64::try_from(ttl_ms).map_or(fallback, Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_with_units() {
        assert_eq!(
            "5/15m".parse::<Limit>(),
            Ok(Limit::new(5, Duration::from_secs(900)))
        );
        assert_eq!(
            " 20 / 1h ".parse::<Limit>(),
            Ok(Limit::new(20, Duration::from_secs(3600)))
        );
        assert_eq!(
            "10/30".parse::<Limit>(),
            Ok(Limit::new(10, Duration::from_secs(30)))
        );
        assert_eq!(
            "1/2d".parse::<Limit>(),
            Ok(Limit::new(1, Duration::from_secs(172_800)))
        );
        for bad in ["5", "x/1m", "5/", "5/0s", "5/1w", "-1/1m"] {
            assert!(bad.parse::<Limit>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv6_addresses_count_per_64_and_ipv4_per_address() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        assert_eq!(address_key(a), "2001:db8:1:2::/64");
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(address_key(v4), "203.0.113.7");
        assert_eq!(address_key(mapped), "203.0.113.7");
    }
}
