//! Thumbnails: now and then a stream thread hands over one keyframe, and a single thread shared
//! by all streams decodes it into `thumbnail.jpg` next to the playlist.
//!
//! Only keyframes are decoded (a few per minute per stream), so one thread and a short-lived
//! pipeline per picture cost far less than a decoder kept running per stream. When the thread is
//! busy, a stream's offer is simply skipped: the next keyframe will do.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio_util::task::task_tracker::TaskTrackerToken;

use crate::hls::THUMBNAIL;

/// Keyframes waiting to be decoded.
const QUEUE_DEPTH: usize = 4;
/// Thumbnails are scaled to this width (height keeps the aspect ratio).
const WIDTH: u32 = 480;
/// Longest a single picture may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// One picture to make.
#[derive(Debug)]
pub(crate) struct ThumbnailJob {
    pub(crate) dir: PathBuf,
    /// A keyframe in H.264 byte-stream form, with its parameter sets.
    pub(crate) access_unit: Vec<u8>,
    pub(crate) width: Option<u32>,
    pub(crate) height: Option<u32>,
}

/// Where stream threads send keyframes.
#[derive(Debug, Clone)]
pub(crate) struct Thumbnailer {
    tx: SyncSender<ThumbnailJob>,
}

impl Thumbnailer {
    /// Starts the thread; it exits when every sender is gone.
    pub(crate) fn spawn(token: TaskTrackerToken) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("thumbnails".to_owned())
            .spawn(move || {
                run(&rx);
                drop(token);
            })?;
        Ok(Self { tx })
    }

    /// Queues a keyframe unless the thread is busy.
    pub(crate) fn offer(&self, job: ThumbnailJob) {
        let _ = self.tx.try_send(job);
    }
}

fn run(rx: &Receiver<ThumbnailJob>) {
    while let Ok(job) = rx.recv() {
        match render(&job) {
            Ok(jpeg) => {
                // Readers must never see half a picture: write aside, then rename over.
                let tmp = job.dir.join("thumbnail.jpg.tmp");
                let result = std::fs::write(&tmp, jpeg)
                    .and_then(|()| std::fs::rename(&tmp, job.dir.join(THUMBNAIL)));
                if let Err(e) = result {
                    tracing::warn!(cause = %e, dir = %job.dir.display(), "writing a thumbnail failed");
                }
            }
            Err(e) => tracing::warn!(cause = %e, "decoding a thumbnail failed"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ThumbnailError {
    #[error("GStreamer: {0}")]
    Glib(#[from] gstreamer::glib::Error),
    #[error("GStreamer: {0}")]
    Bool(#[from] gstreamer::glib::BoolError),
    #[error("GStreamer state change failed")]
    State(#[from] gst::StateChangeError),
    #[error("no picture came out")]
    NoPicture,
}

/// Decodes one keyframe into a JPEG.
fn render(job: &ThumbnailJob) -> Result<Vec<u8>, ThumbnailError> {
    let scale = match (job.width, job.height) {
        (Some(w), Some(h)) if w > WIDTH => {
            let height = ((u64::from(h) * u64::from(WIDTH) / u64::from(w)) & !1).max(2);
            format!(" ! videoscale ! video/x-raw,width={WIDTH},height={height}")
        }
        _ => String::new(),
    };
    let description = format!(
        "appsrc name=src format=time caps=video/x-h264,stream-format=byte-stream,alignment=au \
         ! avdec_h264 max-threads=1 ! videoconvert{scale} ! jpegenc quality=80 \
         ! appsink name=sink sync=false"
    );
    let pipeline = gst::parse::launch(&description)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| ThumbnailError::NoPicture)?;
    let result = decode(&pipeline, job);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn decode(pipeline: &gst::Pipeline, job: &ThumbnailJob) -> Result<Vec<u8>, ThumbnailError> {
    let src = pipeline
        .by_name("src")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or(ThumbnailError::NoPicture)?;
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or(ThumbnailError::NoPicture)?;
    pipeline.set_state(gst::State::Playing)?;
    let mut buffer = gst::Buffer::from_slice(job.access_unit.clone());
    if let Some(b) = buffer.get_mut() {
        b.set_pts(gst::ClockTime::ZERO);
    }
    src.push_buffer(buffer)
        .map_err(|_| ThumbnailError::NoPicture)?;
    src.end_of_stream().map_err(|_| ThumbnailError::NoPicture)?;
    let sample = sink
        .try_pull_sample(gst::ClockTime::from_nseconds(TIMEOUT.as_nanos() as u64))
        .ok_or(ThumbnailError::NoPicture)?;
    let buffer = sample.buffer().ok_or(ThumbnailError::NoPicture)?;
    let map = buffer
        .map_readable()
        .map_err(|_| ThumbnailError::NoPicture)?;
    Ok(map.as_slice().to_vec())
}
