//! Siaran's media core: RTMP ingest, GStreamer pipelines, HLS output and per-stream stats.
//!
//! This crate knows nothing of HTTP, SQL or Redis. The application starts an ingest server with
//! an authorizer, receives typed events, asks a stream to stop and reads where its HLS lives.
//! The media issue fills it in; until then it only fixes where that HLS lives.

use std::path::{Path, PathBuf};

/// Where one stream's HLS output (playlist, segments, thumbnail) is written.
#[must_use]
pub fn stream_dir(hls_root: &Path, stream_id: &str) -> PathBuf {
    hls_root.join(stream_id)
}
