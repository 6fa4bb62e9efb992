//! Viewer counts: open `/ws/stream/{id}/` sockets per stream, summed over every server process,
//! published on the stream as `viewers.count` and read by the stream JSON through [`counts`].
//!
//! Every `viewers_interval`, each process writes its local count into a Redis hash per stream
//! (`viewers:{stream_id}`, one field per process), with the time the entry expires written into
//! the value: six intervals later. A process that crashes stops refreshing, so its viewers stop
//! counting within six intervals (30 s by default). Of the processes with viewers on a stream,
//! the one with the smallest instance id publishes the total — when it changed, and every
//! [`KEEPALIVE_TICKS`] intervals anyway — so the count is not published once per process.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use super::events::{EventData, ViewersCount};
use crate::kv::Redis;

/// A process's entry lives this many intervals after it was written.
const TTL_INTERVALS: u32 = 6;
/// An unchanged count is published again after this many intervals.
const KEEPALIVE_TICKS: u32 = 6;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn key(redis: &Redis, stream_id: Uuid) -> String {
    redis.key(&format!("viewers:{stream_id}"))
}

/// One process's entry: `<count>:<expires at, ms since the epoch>`.
fn entry(count: u64, expires_ms: u64) -> String {
    format!("{count}:{expires_ms}")
}

/// Sums the entries that have not expired; returns the total and the smallest live instance.
fn total(fields: &HashMap<String, String>, now_ms: u64) -> (u64, Option<&str>) {
    let mut sum = 0;
    let mut leader: Option<&str> = None;
    for (instance, value) in fields {
        let Some((count, expires)) = value.split_once(':') else {
            continue;
        };
        let (Ok(count), Ok(expires)) = (count.parse::<u64>(), expires.parse::<u64>()) else {
            continue;
        };
        if expires <= now_ms {
            continue;
        }
        sum += count;
        if leader.is_none_or(|l| instance.as_str() < l) {
            leader = Some(instance.as_str());
        }
    }
    (sum, leader)
}

/// Open stream sockets per stream across all server processes. Streams without viewers are
/// absent from the map (read them as 0). When Redis is unreachable, this process's own counts
/// are returned instead (and a warning logged).
pub async fn counts(
    redis: &Redis,
    live: &super::runtime::Live,
    stream_ids: &[Uuid],
) -> HashMap<Uuid, u64> {
    if stream_ids.is_empty() {
        return HashMap::new();
    }
    let result: redis::RedisResult<Vec<HashMap<String, String>>> = async {
        let mut conn = redis.conn().await?;
        let mut pipe = redis::pipe();
        for id in stream_ids {
            pipe.hgetall(key(redis, *id));
        }
        pipe.query_async(&mut conn).await
    }
    .await;
    match result {
        Ok(all) => {
            let now = now_ms();
            stream_ids
                .iter()
                .zip(all)
                .filter_map(|(id, fields)| {
                    let (sum, _) = total(&fields, now);
                    (sum > 0).then_some((*id, sum))
                })
                .collect()
        }
        Err(e) => {
            tracing::warn!(cause = %e, "viewer counts unavailable from Redis; showing this server's own");
            let wanted: HashSet<&Uuid> = stream_ids.iter().collect();
            live.hubs()
                .local_viewers()
                .into_iter()
                .filter(|(id, _)| wanted.contains(id))
                .collect()
        }
    }
}

/// Starts the counter task on `tasks`; it stops when `shutdown` is cancelled.
pub(crate) fn spawn(
    live: &super::runtime::Live,
    redis: &Redis,
    events: &super::events::Events,
    shutdown: &tokio_util::sync::CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) {
    let counter = Counter {
        live: live.clone(),
        redis: redis.clone(),
        events: events.clone(),
        shutdown: shutdown.clone(),
        reported: HashSet::new(),
        published: HashMap::new(),
        failing: false,
    };
    tasks.spawn(counter.run());
}

struct Counter {
    live: super::runtime::Live,
    redis: Redis,
    events: super::events::Events,
    shutdown: tokio_util::sync::CancellationToken,
    /// Streams this process wrote an entry for last time (to remove when they reach zero).
    reported: HashSet<Uuid>,
    /// Per stream this process published the count of: the count and ticks since.
    published: HashMap<Uuid, (u64, u32)>,
    failing: bool,
}

impl Counter {
    async fn run(mut self) {
        let interval = self.live.hubs().config.viewers_interval();
        let shutdown = self.shutdown.clone();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => self.tick(interval).await,
            }
        }
        self.withdraw().await;
    }

    async fn tick(&mut self, interval: Duration) {
        let local = self.live.hubs().local_viewers();
        if local.is_empty() && self.reported.is_empty() {
            return;
        }
        match self.report(&local, interval).await {
            Ok(totals) => {
                if self.failing {
                    tracing::info!("viewer counts are being shared through Redis again");
                    self.failing = false;
                }
                self.publish(totals).await;
            }
            Err(e) => {
                if !self.failing {
                    tracing::warn!(cause = %e, "cannot share viewer counts through Redis; retrying every interval");
                    self.failing = true;
                }
            }
        }
    }

    /// Writes this process's counts and reads the totals of the streams it has viewers on, in
    /// one round trip. Returns the totals of the streams this process should publish.
    async fn report(
        &mut self,
        local: &[(Uuid, u64)],
        interval: Duration,
    ) -> redis::RedisResult<Vec<(Uuid, u64)>> {
        let redis = &self.redis;
        let instance = self.live.instance().simple().to_string();
        let ttl = interval * TTL_INTERVALS;
        let now = now_ms();
        let expires = now + ttl.as_millis() as u64;
        let current: HashSet<Uuid> = local.iter().map(|(id, _)| *id).collect();
        let mut pipe = redis::pipe();
        for (stream_id, count) in local {
            let key = key(redis, *stream_id);
            pipe.hset(&key, &instance, entry(*count, expires))
                .ignore()
                .pexpire(&key, (ttl * 2).as_millis() as i64)
                .ignore()
                .hgetall(&key);
        }
        for gone in self.reported.difference(&current) {
            pipe.hdel(key(redis, *gone), &instance).ignore();
        }
        let mut conn = redis.conn().await?;
        let all: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        for gone in self.reported.difference(&current) {
            self.published.remove(gone);
        }
        self.reported = current;
        Ok(local
            .iter()
            .zip(all)
            .filter_map(|((stream_id, _), fields)| {
                let (sum, leader) = total(&fields, now);
                (leader == Some(instance.as_str())).then_some((*stream_id, sum))
            })
            .collect())
    }

    async fn publish(&mut self, totals: Vec<(Uuid, u64)>) {
        for (stream_id, count) in totals {
            let due = match self.published.get_mut(&stream_id) {
                Some((last, ticks)) if *last == count && *ticks + 1 < KEEPALIVE_TICKS => {
                    *ticks += 1;
                    false
                }
                _ => true,
            };
            if !due {
                continue;
            }
            let event = EventData::ViewersCount(ViewersCount { count });
            match self.events.publish(stream_id, event).await {
                Ok(_) => {
                    self.published.insert(stream_id, (count, 0));
                }
                Err(e) => tracing::warn!(%stream_id, cause = %e, "cannot publish the viewer count"),
            }
        }
    }

    /// Removes this process's entries on shutdown, so its viewers stop counting at once.
    async fn withdraw(&self) {
        if self.reported.is_empty() {
            return;
        }
        let redis = &self.redis;
        let instance = self.live.instance().simple().to_string();
        let result: redis::RedisResult<()> = async {
            let mut conn = redis.conn().await?;
            let mut pipe = redis::pipe();
            for stream_id in &self.reported {
                pipe.hdel(key(redis, *stream_id), &instance).ignore();
            }
            pipe.query_async(&mut conn).await
        }
        .await;
        if let Err(e) = result {
            tracing::debug!(cause = %e, "could not withdraw viewer counts on shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_entries_do_not_count_or_lead() {
        let fields = HashMap::from([
            ("b".to_owned(), entry(3, 2_000)),
            ("a".to_owned(), entry(10, 999)),
            ("c".to_owned(), entry(4, 5_000)),
            ("d".to_owned(), "garbage".to_owned()),
        ]);
        assert_eq!(total(&fields, 1_000), (7, Some("b")));
        assert_eq!(total(&fields, 3_000), (4, Some("c")));
        assert_eq!(total(&HashMap::new(), 0), (0, None));
    }
}
