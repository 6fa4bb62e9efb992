//! What keeps streams true when nobody is watching them: ingest heartbeats, the sweep of streams
//! whose process died, and the retention of ended streams' HLS files.
//!
//! **Heartbeats.** Every serving process touches `stream_ingests` for the streams its RTMP
//! ingest holds, every sixth of `SIARAN_INGEST_STALE_SECS` (at most 5 s). The same statement
//! reports which of them have ended meanwhile, and the process disconnects those publishers. So
//! `POST /api/streams/{id}/stop`, a key rotation or staff ending a stream work whichever process
//! took the request: the process that took it disconnects the publisher at once when it holds
//! it, any other one at its next heartbeat. PostgreSQL is the only channel, so no message can be
//! lost between processes.
//!
//! **Orphans.** A process that crashes cannot end its streams. Each process also sweeps, every
//! third of the stale period (at most 10 s), for live streams whose heartbeat is older than the
//! stale period, and ends them (`stream.ended` is announced as for any end). The update is
//! conditional, so two processes sweeping at once end each stream once.
//!
//! **Retention.** A stream's playlist and segments are only useful while it is live (the
//! playlist is a sliding window, not a recording). Every `SIARAN_HLS_SWEEP_SECS` each process
//! deletes, in its own `SIARAN_HLS_DIR`, the playlist and segments of streams that ended more
//! than `SIARAN_HLS_RETENTION_SECS` ago, keeping the thumbnail that lists of past streams show,
//! and removes the whole directory of a stream that no longer exists once it has not changed for
//! as long. Names that are not stream ids are never touched.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::{Instant, MissedTickBehavior};
use uuid::Uuid;

use crate::state::AppState;

use super::{db, lifecycle};

/// The longest wait between heartbeats, and between orphan sweeps.
const MAX_HEARTBEAT: Duration = Duration::from_secs(5);
const MAX_SWEEP: Duration = Duration::from_secs(10);
const MIN_PERIOD: Duration = Duration::from_millis(200);

fn stale(state: &AppState) -> Duration {
    Duration::from_secs(state.config.ingest_stale_secs.max(1))
}

/// Heartbeats for this process's publishers and the orphan sweep, until shutdown.
pub async fn run_ingest_watch(state: AppState) {
    let stale = stale(&state);
    let beat_every = (stale / 6).clamp(MIN_PERIOD, MAX_HEARTBEAT);
    let sweep_every = (stale / 3).clamp(MIN_PERIOD, MAX_SWEEP);
    let mut ticks = tokio::time::interval(beat_every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_sweep = Instant::now();
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let publishing = state.ingest.publishing();
        match lifecycle::heartbeat(&state, &publishing).await {
            Ok(ended) => {
                for stream_id in ended {
                    tracing::info!(%stream_id, "stream ended elsewhere: disconnecting its publisher");
                    state.ingest.stop(stream_id);
                }
            }
            Err(e) => tracing::warn!(cause = %e, "recording ingest heartbeats failed"),
        }
        if last_sweep.elapsed() >= sweep_every {
            last_sweep = Instant::now();
            if let Err(e) = lifecycle::sweep_orphans(&state, stale).await {
                tracing::warn!(cause = %e, "sweeping orphaned live streams failed");
            }
        }
    }
}

/// Deletes ended streams' HLS files past their retention, until shutdown.
pub async fn run_hls_retention(state: AppState) {
    let period = Duration::from_secs(state.config.hls_sweep_secs.max(1));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match sweep_hls(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(streams = n, "deleted HLS files past their retention"),
            Err(e) => tracing::warn!(cause = %e, "sweeping HLS files failed"),
        }
    }
}

/// One retention pass; returns how many stream directories it cleaned.
pub async fn sweep_hls(state: &AppState) -> anyhow::Result<usize> {
    let root = state.config.hls_dir.clone();
    let dirs = tokio::task::spawn_blocking(move || stream_dirs(&root)).await??;
    if dirs.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = dirs.keys().copied().collect();
    let ended: HashMap<Uuid, Option<DateTime<Utc>>> = db::ended_at_of(&state.db, &ids)
        .await?
        .into_iter()
        .collect();
    let retention = chrono::Duration::seconds(
        i64::try_from(state.config.hls_retention_secs).unwrap_or(i64::MAX / 1000),
    );
    let cutoff = Utc::now() - retention;
    let mut expired = Vec::new();
    for (id, dir) in dirs {
        // Never under a publisher this process still holds, whatever the database says.
        if state.ingest.is_publishing(id) {
            continue;
        }
        match ended.get(&id) {
            // No such stream (deleted, or written by another deployment sharing the directory):
            // left alone until nothing in it has changed for the retention period.
            None if modified_before(&dir, cutoff) => expired.push((dir, false)),
            None => {}
            Some(Some(at)) if *at < cutoff => expired.push((dir, true)),
            Some(_) => {}
        }
    }
    tokio::task::spawn_blocking(move || {
        let mut cleaned = 0;
        for (dir, keep_thumbnail) in expired {
            match clean(&dir, keep_thumbnail) {
                Ok(true) => cleaned += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), cause = %e, "deleting HLS files failed");
                }
            }
        }
        cleaned
    })
    .await
    .map_err(Into::into)
}

fn modified_before(dir: &Path, cutoff: DateTime<Utc>) -> bool {
    std::fs::metadata(dir)
        .and_then(|m| m.modified())
        .is_ok_and(|at| DateTime::<Utc>::from(at) < cutoff)
}

/// The stream directories under `root`, by stream id. A missing root has none.
fn stream_dirs(root: &Path) -> std::io::Result<HashMap<Uuid, PathBuf>> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e),
    };
    let mut dirs = HashMap::new();
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let name = entry.file_name();
        if let Some(id) = name.to_str().and_then(|n| Uuid::try_parse(n).ok()) {
            dirs.insert(id, entry.path());
        }
    }
    Ok(dirs)
}

/// Deletes a stream directory's files (all but the thumbnail when `keep_thumbnail`), and the
/// directory when nothing is left. Whether anything was deleted.
fn clean(dir: &Path, keep_thumbnail: bool) -> std::io::Result<bool> {
    if !keep_thumbnail {
        std::fs::remove_dir_all(dir)?;
        return Ok(true);
    }
    let mut deleted = false;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name() == media::THUMBNAIL || !entry.file_type()?.is_file() {
            continue;
        }
        std::fs::remove_file(entry.path())?;
        deleted = true;
    }
    // Fails, as it should, while the thumbnail is there.
    let _ = std::fs::remove_dir(dir);
    Ok(deleted)
}
