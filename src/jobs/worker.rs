//! Workers: read jobs from the stream, run them, acknowledge, retry or bury them; take over
//! the jobs of dead workers; move due retries back; queue the periodic jobs.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use tokio::time::{Instant, MissedTickBehavior};
use uuid::Uuid;

use super::queue::{Envelope, GROUP, JobQueue, millis};
use super::{Job, handle};
use crate::donations::jobs::DonationJob;
use crate::services::Services;

/// How long one blocking read waits for a job before the loop checks for shutdown and chores.
const BLOCK: Duration = Duration::from_secs(1);
/// How often due retries are moved back into the stream.
const PROMOTE_EVERY: Duration = Duration::from_millis(500);
/// Pause after Redis failed before trying again.
const REDIS_RETRY: Duration = Duration::from_secs(1);

/// Starts `count` workers and the scheduler as background tasks of the server (they stop with
/// `state.shutdown` and are drained through `state.tasks`).
pub fn spawn_workers(state: &Services, count: usize) {
    if count == 0 {
        return;
    }
    let process = consumer_prefix();
    for n in 0..count {
        let state_n = state.clone();
        let consumer = format!("{process}-{n}");
        state
            .tasks
            .spawn(async move { worker(state_n, consumer).await });
    }
    let scheduler_state = state.clone();
    state
        .tasks
        .spawn(async move { scheduler(scheduler_state).await });
    tracing::info!(count, "job workers started");
}

/// Runs `count` workers and the scheduler until `state.shutdown` is cancelled (`siaran worker`).
pub async fn run_workers(state: Services, count: usize) {
    spawn_workers(&state, count.max(1));
    state.shutdown.cancelled().await;
    state.tasks.close();
    state.tasks.wait().await;
}

/// Unique per process: a restarted worker never inherits a dead one's pending jobs by name; it
/// takes them over by idle time like any other.
fn consumer_prefix() -> String {
    let host = hostname();
    format!(
        "{host}-{}-{}",
        std::process::id(),
        &Uuid::new_v4().simple().to_string()[..8]
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned())
}

/// Queues the periodic sweep once per interval across all processes (the first one a period
/// after start: a process that restarts in a loop does not flood the queue).
async fn scheduler(state: Services) {
    let period = Duration::from_secs(state.config.jobs.schedule_interval_secs.max(1));
    let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        // Slightly shorter than the period so the next tick is never refused by this one's marker.
        let marker = period.mul_f64(0.9);
        if let Err(e) = state
            .jobs
            .enqueue_once_per("reconcile", marker, DonationJob::Reconcile)
            .await
        {
            tracing::warn!(cause = %e, "could not queue reconciliation; trying next period");
        }
    }
}

async fn worker(state: Services, consumer: String) {
    let queue = state.jobs.clone();
    let claim_idle = Duration::from_secs(queue.config().claim_idle_secs.max(1));
    let mut conn: Option<MultiplexedConnection> = None;
    let mut last_promote = Instant::now() - PROMOTE_EVERY;
    let mut last_claim = Instant::now() - claim_idle;
    tracing::debug!(consumer, "worker started");
    while !state.shutdown.is_cancelled() {
        let c = match conn.take() {
            Some(c) => c,
            None => match reader(&queue).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(consumer, cause = %e, "job worker cannot reach Redis; retrying");
                    pause(&state).await;
                    continue;
                }
            },
        };
        if last_promote.elapsed() >= PROMOTE_EVERY {
            last_promote = Instant::now();
            if let Err(e) = queue.promote_due().await {
                tracing::warn!(consumer, cause = %e, "moving due retries failed");
            }
        }
        if last_claim.elapsed() >= claim_idle / 2 {
            last_claim = Instant::now();
            match take_over(&queue, &c, &consumer, claim_idle).await {
                Ok(entries) => {
                    for (entry, deliveries) in entries {
                        run_entry(&state, &queue, &consumer, &entry, deliveries).await;
                    }
                }
                Err(e) => tracing::warn!(consumer, cause = %e, "taking over stale jobs failed"),
            }
        }
        let mut reading = c.clone();
        let mut command = redis::cmd("XREADGROUP");
        command
            .arg("GROUP")
            .arg(GROUP)
            .arg(&consumer)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(millis(BLOCK))
            .arg("STREAMS")
            .arg(queue.stream_key())
            .arg(">");
        let read: redis::RedisResult<Option<StreamReadReply>> = tokio::select! {
            () = state.shutdown.cancelled() => break,
            r = command.query_async(&mut reading) => r,
        };
        match read {
            Ok(reply) => {
                conn = Some(c);
                for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                    run_entry(&state, &queue, &consumer, &entry, 1).await;
                }
            }
            Err(e) if e.code() == Some("NOGROUP") => {
                conn = Some(c);
                match queue.ensure_group().await {
                    Ok(true) => {}
                    // Nothing was ever queued: look again in a moment.
                    Ok(false) => pause(&state).await,
                    Err(e) => {
                        tracing::warn!(consumer, cause = %e, "creating the job group failed");
                        pause(&state).await;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(consumer, cause = %e, "reading jobs failed; reconnecting");
                pause(&state).await;
            }
        }
    }
    tracing::debug!(consumer, "worker stopped");
}

/// A connection of the worker's own: blocking reads would stall the shared one.
async fn reader(queue: &JobQueue) -> redis::RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(BLOCK + Duration::from_secs(5)));
    let conn = queue
        .redis()
        .client()
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    queue.ensure_group().await?;
    Ok(conn)
}

async fn pause(state: &Services) {
    tokio::select! {
        () = state.shutdown.cancelled() => {}
        () = tokio::time::sleep(REDIS_RETRY) => {}
    }
}

/// Claims jobs other workers left pending longer than `claim_idle` (they died), with how many
/// times each has been delivered so far.
async fn take_over(
    queue: &JobQueue,
    conn: &MultiplexedConnection,
    consumer: &str,
    claim_idle: Duration,
) -> redis::RedisResult<Vec<(StreamId, usize)>> {
    let mut conn = conn.clone();
    let reply: redis::RedisResult<StreamAutoClaimReply> = redis::cmd("XAUTOCLAIM")
        .arg(queue.stream_key())
        .arg(GROUP)
        .arg(consumer)
        .arg(millis(claim_idle))
        .arg("0-0")
        .arg("COUNT")
        .arg(10)
        .query_async(&mut conn)
        .await;
    let reply = match reply {
        Err(e) if e.code() == Some("NOGROUP") => return Ok(Vec::new()),
        other => other?,
    };
    let mut claimed = Vec::with_capacity(reply.claimed.len());
    for entry in reply.claimed {
        // XAUTOCLAIM counted this delivery too.
        let pending: Vec<(String, String, u64, usize)> = redis::cmd("XPENDING")
            .arg(queue.stream_key())
            .arg(GROUP)
            .arg(&entry.id)
            .arg(&entry.id)
            .arg(1)
            .query_async(&mut conn)
            .await?;
        let deliveries = pending.first().map_or(2, |p| p.3);
        tracing::warn!(entry = %entry.id, deliveries, "taking over a job whose worker stopped answering");
        claimed.push((entry, deliveries));
    }
    Ok(claimed)
}

/// Runs one delivered stream entry to an outcome: done, retried later, or dead.
async fn run_entry(
    state: &Services,
    queue: &JobQueue,
    consumer: &str,
    entry: &StreamId,
    deliveries: usize,
) {
    let raw: String = entry.get("job").unwrap_or_default();
    let envelope = match serde_json::from_str::<Envelope<Job>>(&raw) {
        Ok(mut envelope) => {
            // Deliveries beyond the first were attempts that died with their worker.
            let crashed = u32::try_from(deliveries.saturating_sub(1)).unwrap_or(u32::MAX);
            envelope.attempt = envelope.attempt.saturating_add(crashed);
            envelope
        }
        Err(e) => {
            tracing::error!(entry = %entry.id, cause = %e, "undecodable job; moving it to the dead letters");
            settle(
                queue
                    .fail::<Job>(&entry.id, None, &raw, &format!("undecodable: {e}"))
                    .await,
            );
            return;
        }
    };
    let kind = envelope.job.kind();
    if envelope.attempt >= queue.config().max_attempts.max(1) {
        tracing::error!(job_id = %envelope.id, kind, "job keeps killing its workers; moving it to the dead letters");
        settle(
            queue
                .fail::<Job>(&entry.id, None, &raw, "its worker died on every attempt")
                .await,
        );
        metrics::counter!("jobs_total", "kind" => kind, "outcome" => "dead").increment(1);
        return;
    }
    let budget = Duration::from_secs(queue.config().claim_idle_secs.max(1)) / 2;
    let run = AssertUnwindSafe(handle(state, &envelope.job)).catch_unwind();
    let outcome = match tokio::time::timeout(budget, run).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(format!("{e:#}")),
        Ok(Err(_panic)) => Err("the job panicked".to_owned()),
        Err(_) => Err(format!("did not finish within {budget:?}")),
    };
    match outcome {
        Ok(()) => {
            tracing::debug!(consumer, job_id = %envelope.id, kind, "job done");
            metrics::counter!("jobs_total", "kind" => kind, "outcome" => "done").increment(1);
            settle(queue.complete(&entry.id).await);
        }
        Err(error) => match queue.fail(&entry.id, Some(&envelope), &raw, &error).await {
            Ok(Some(delay)) => {
                tracing::warn!(job_id = %envelope.id, kind, attempt = envelope.attempt + 1, retry_in = ?delay, error, "job failed; will retry");
                metrics::counter!("jobs_total", "kind" => kind, "outcome" => "retry").increment(1);
            }
            Ok(None) => {
                tracing::error!(job_id = %envelope.id, kind, attempts = envelope.attempt + 1, error, "job failed for good; moved to the dead letters");
                metrics::counter!("jobs_total", "kind" => kind, "outcome" => "dead").increment(1);
            }
            Err(e) => {
                tracing::warn!(job_id = %envelope.id, cause = %e, "could not record the failure; the job will be taken over later");
            }
        },
    }
}

/// A failed acknowledgement leaves the job pending: it will be taken over and run again, which
/// idempotent handlers tolerate. Log it and move on.
fn settle(result: redis::RedisResult<impl Sized>) {
    if let Err(e) = result {
        tracing::warn!(cause = %e, "acknowledging a job failed; it will run again");
    }
}
