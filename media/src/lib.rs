//! Siaran's media core: RTMP ingest, GStreamer pipelines, HLS output and per-stream stats.
//!
//! This crate knows nothing of HTTP, SQL or Redis. The application binds an [`Ingest`] with an
//! [`Authorizer`] (stream key → stream id), runs it, receives [`MediaEvent`]s, asks a stream to
//! stop through an [`IngestHandle`], waits on a live stream's LL-HLS edge in memory through
//! [`IngestHandle::live_hls`], and finds the rest of the HLS output with [`stream_dir`] and
//! [`HlsFile`].
//!
//! ```text
//!  OBS ─RTMP─▶ connection task (tokio, rml_rtmp) ─bounded─▶ stream thread ─▶ isofmp4mux ─▶ LL-HLS
//!                   │ authorize(key)                          │ health, live, ended, error
//!                   ▼                                         ▼
//!              Authorizer (app)                         MediaEvent channel (app)
//! ```
//!
//! Threads: one for all RTMP connections (a current-thread runtime of its own), one per live
//! stream (parsing FLV, feeding the muxer, health), the muxer's own per stream, and one shared
//! thumbnailer. The async code only moves bytes and never blocks on GStreamer.

mod admission;
mod amf0;
mod avc;
mod beat;
mod chunk;
pub mod flv;
#[doc(hidden)]
pub mod fuzzing;
mod hls;
mod ingest;
mod pipeline;
mod protocol;
mod registry;
mod session;
mod thumbnail;
mod timeline;
mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use uuid::Uuid;

pub use admission::ConnectionStats;
pub use hls::{Blocked, HlsFile, LiveHls, PLAYLIST, PlaylistRequest, THUMBNAIL};
pub use ingest::{Ingest, IngestHandle};

/// The RTMP application name publishers use: `rtmp://host:1935/live`.
pub const APP_NAME: &str = "live";

/// Where one stream's HLS output (playlist, segments, thumbnail) is written.
#[must_use]
pub fn stream_dir(hls_root: &Path, stream_id: &str) -> PathBuf {
    hls_root.join(stream_id)
}

/// How the ingest server behaves.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Where RTMP is accepted (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Root of the HLS output; each stream writes under `<root>/<stream id>/`.
    pub hls_root: PathBuf,
    /// Connections publishing at once; beyond this a publish is refused. Publishing
    /// connections are never closed to make room for others.
    pub max_publishers: usize,
    /// Connections that have not been authorized to publish (yet), from all addresses. When
    /// full, a newcomer is admitted and a pending connection is closed: of the address with
    /// the most pending slots, then of the one that opened the most connections lately, then
    /// the one that has got least far in its setup, the oldest among equals (see `admission`).
    pub max_pending: usize,
    /// Pending connections from one address (IPv6: one /64), with the same eviction.
    pub max_pending_per_address: usize,
    /// Segments listed in the live playlist.
    pub playlist_window: usize,
    /// A publisher that sends nothing for this long is considered gone.
    pub idle_timeout: Duration,
    /// Refused stream keys from one address within [`Self::bad_key_window`] before that address
    /// is refused outright until the window ends.
    pub bad_key_limit: u32,
    pub bad_key_window: Duration,
}

impl IngestConfig {
    /// Defaults for everything but where to listen and write.
    #[must_use]
    pub fn new(listen: SocketAddr, hls_root: PathBuf) -> Self {
        Self {
            listen,
            hls_root,
            max_publishers: 256,
            max_pending: 128,
            max_pending_per_address: 16,
            playlist_window: hls::DEFAULT_WINDOW,
            idle_timeout: Duration::from_secs(5),
            bad_key_limit: 10,
            bad_key_window: Duration::from_secs(60),
        }
    }
}

/// Why a publish was not authorized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The key is unknown (counts towards the address's bad-key throttle).
    #[error("unknown stream key")]
    UnknownKey,
    /// The key is fine but the stream may not go live now (e.g. the account is disabled).
    #[error("{0}")]
    Refused(String),
    /// The application could not decide (its database is down); the publisher may retry.
    #[error("authorization unavailable: {0}")]
    Unavailable(String),
}

/// Supplied by the application: decides which stream a stream key publishes to.
///
/// Called once per publish request; it must not log the key.
pub trait Authorizer: Send + Sync + 'static {
    fn authorize(
        &self,
        stream_key: &str,
        peer: SocketAddr,
    ) -> impl Future<Output = Result<Uuid, AuthError>> + Send;
}

/// What happens to streams, in order per stream: `Live`, any `Health`, then `Ended`. `Error`
/// may come at any point (before `Live` when a publish is refused for its codecs). A stream thread
/// that panics sends `Error` then `Ended`, even when the stream had not gone live yet.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// Media is flowing and HLS is being written.
    Live { stream_id: Uuid },
    /// Inbound health, every couple of seconds while live.
    Health { stream_id: Uuid, health: Health },
    /// The stream was refused or lost (the publisher is disconnected).
    Error {
        stream_id: Uuid,
        code: ErrorCode,
        message: String,
    },
    /// The publisher left (or was stopped) and no other took over; the playlist is final.
    Ended { stream_id: Uuid },
}

/// Machine-readable reasons for [`MediaEvent::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The publisher sent a codec other than H.264 video / AAC audio.
    UnsupportedCodec,
    /// The publisher sent data that does not parse.
    MalformedMedia,
    /// The media pipeline failed (logged with details).
    PipelineFailed,
}

impl ErrorCode {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnsupportedCodec => "unsupported_codec",
            Self::MalformedMedia => "malformed_media",
            Self::PipelineFailed => "pipeline_failed",
        }
    }
}

/// Inbound media health over the last couple of seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    pub video_bitrate_kbps: Option<f64>,
    pub audio_bitrate_kbps: Option<f64>,
    pub fps: Option<f64>,
    /// Seconds between the last two keyframes.
    pub keyframe_interval_s: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub video_codec: Option<String>,
    /// RFC 6381 codec string, e.g. `mp4a.40.2`.
    pub audio_codec: Option<String>,
    /// Media bytes dropped since the stream went live because the pipeline fell behind.
    pub dropped_bytes: u64,
}
