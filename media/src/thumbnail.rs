//! Thumbnails: now and then a stream thread hands over one keyframe, and a single thread shared
//! by all streams decodes it into `thumbnail.jpg` next to the playlist.
//!
//! Only keyframes are decoded (a few per minute per stream). The thread keeps one decoding
//! pipeline for all streams and pushes each keyframe into it through a pad of its own, so a
//! picture costs the decode, scale and JPEG encode and nothing else: building a pipeline per
//! picture (parsing its description, creating elements, negotiating caps, an `appsrc` thread)
//! cost about as much again. After each picture the pipeline is drained (EOS) and flushed,
//! which resets the decoder for the next stream's keyframe. When the thread is busy, a stream's
//! offer is simply skipped: the next keyframe will do.
//!
//! ```text
//!  thumbnail thread ─▶ [pad] ─▶ avdec_h264 ─▶ videoscale ─▶ capsfilter ─▶ videoconvert ─▶ jpegenc ─▶ appsink
//! ```

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
    let mut decoder: Option<Decoder> = None;
    while let Ok(job) = rx.recv() {
        let result = match decoder.as_mut() {
            Some(decoder) => Ok(decoder),
            None => Decoder::new().map(|d| decoder.insert(d)),
        }
        .and_then(|decoder| decoder.render(&job));
        match result {
            Ok(jpeg) => {
                // Readers must never see half a picture: write aside, then rename over.
                let tmp = job.dir.join("thumbnail.jpg.tmp");
                let result = std::fs::write(&tmp, jpeg)
                    .and_then(|()| std::fs::rename(&tmp, job.dir.join(THUMBNAIL)));
                if let Err(e) = result {
                    tracing::warn!(cause = %e, dir = %job.dir.display(), "writing a thumbnail failed");
                }
            }
            Err(e) => {
                tracing::warn!(cause = %e, "decoding a thumbnail failed");
                // Start afresh for the next picture: whatever state the pipeline is in goes.
                decoder = None;
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ThumbnailError {
    #[error("GStreamer element {0} is missing (install the GStreamer plugins)")]
    MissingElement(&'static str),
    #[error("GStreamer: {0}")]
    Bool(#[from] gstreamer::glib::BoolError),
    #[error("GStreamer state change failed")]
    State(#[from] gst::StateChangeError),
    #[error("linking the decoder failed: {0:?}")]
    Link(gst::PadLinkError),
    #[error("the decoder refused the keyframe: {0:?}")]
    Flow(gst::FlowError),
    #[error("GStreamer error from {source_name}: {message}")]
    Bus {
        source_name: String,
        message: String,
    },
    #[error("no picture came out")]
    NoPicture,
}

/// The thread's decoding pipeline, kept across pictures and streams.
struct Decoder {
    pipeline: gst::Pipeline,
    /// Our pad, linked to the decoder's sink pad.
    feed: gst::Pad,
    /// Sets the picture size after scaling.
    size: gst::Element,
    sink: gst_app::AppSink,
    bus: gst::Bus,
    /// The scaled size currently configured (`None`: the decoded size).
    scaled: Option<Option<(u32, u32)>>,
    /// A segment must be sent before the next keyframe (at the start and after each flush).
    needs_segment: bool,
}

fn make(factory: &'static str) -> Result<gst::Element, ThumbnailError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| ThumbnailError::MissingElement(factory))
}

impl Decoder {
    fn new() -> Result<Self, ThumbnailError> {
        let pipeline = gst::Pipeline::with_name("thumbnails");
        let decode = make("avdec_h264")?;
        // One picture at a time: decoder threads would only add wake-ups.
        decode.set_property("max-threads", 1i32);
        let scale = make("videoscale")?;
        let size = make("capsfilter")?;
        let convert = make("videoconvert")?;
        let jpeg = make("jpegenc")?;
        jpeg.set_property("quality", 80i32);
        let sink = gst_app::AppSink::builder()
            .sync(false)
            .async_(false)
            .enable_last_sample(false)
            .max_buffers(1)
            // The picture is pulled after the end of stream has gone through (it drains the
            // decoder), so the end of stream must not wait for it to be pulled.
            .wait_on_eos(false)
            .build();
        pipeline.add_many([&decode, &scale, &size, &convert, &jpeg, sink.upcast_ref()])?;
        gst::Element::link_many([&decode, &scale, &size, &convert, &jpeg, sink.upcast_ref()])?;
        let feed = gst::Pad::builder(gst::PadDirection::Src)
            .name("keyframes")
            .build();
        feed.set_active(true)?;
        let target = decode
            .static_pad("sink")
            .ok_or(ThumbnailError::MissingElement("avdec_h264 sink pad"))?;
        feed.link(&target).map_err(ThumbnailError::Link)?;
        let bus = pipeline
            .bus()
            .ok_or(ThumbnailError::MissingElement("bus"))?;
        pipeline.set_state(gst::State::Playing)?;
        feed.push_event(gst::event::StreamStart::new("thumbnails"));
        feed.push_event(gst::event::Caps::new(
            &gst::Caps::builder("video/x-h264")
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .build(),
        ));
        Ok(Self {
            pipeline,
            feed,
            size,
            sink,
            bus,
            scaled: None,
            needs_segment: true,
        })
    }

    /// Decodes one keyframe into a JPEG.
    fn render(&mut self, job: &ThumbnailJob) -> Result<Vec<u8>, ThumbnailError> {
        let scaled = match (job.width, job.height) {
            (Some(w), Some(h)) if w > WIDTH => {
                let height = ((u64::from(h) * u64::from(WIDTH) / u64::from(w)) & !1).max(2);
                Some((WIDTH, u32::try_from(height).unwrap_or(2)))
            }
            _ => None,
        };
        if self.scaled != Some(scaled) {
            let caps = match scaled {
                Some((width, height)) => gst::Caps::builder("video/x-raw")
                    .field("width", i32::try_from(width).unwrap_or(i32::MAX))
                    .field("height", i32::try_from(height).unwrap_or(i32::MAX))
                    .build(),
                None => gst::Caps::new_empty_simple("video/x-raw"),
            };
            self.size.set_property("caps", &caps);
            self.scaled = Some(scaled);
        }
        if self.needs_segment {
            let segment = gst::FormattedSegment::<gst::ClockTime>::new();
            self.feed.push_event(gst::event::Segment::new(&segment));
            self.needs_segment = false;
        }
        let mut buffer = gst::Buffer::from_slice(job.access_unit.clone());
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::ZERO);
            b.set_dts(gst::ClockTime::ZERO);
        }
        // Everything downstream runs in this thread, within these calls: the decoder may hold
        // the picture back (reordering) until the end of stream drains it.
        let pushed = self.feed.push(buffer);
        let sample = match pushed {
            Ok(_) if self.feed.push_event(gst::event::Eos::new()) => self
                .sink
                .try_pull_sample(gst::ClockTime::from_nseconds(TIMEOUT.as_nanos() as u64)),
            _ => None,
        };
        // Back to a clean, running state for the next picture: the flush takes the end of
        // stream away and resets the decoder.
        self.feed.push_event(gst::event::FlushStart::new());
        self.feed.push_event(gst::event::FlushStop::new(true));
        self.needs_segment = true;
        if let Some(e) = self.error() {
            return Err(e);
        }
        pushed.map_err(ThumbnailError::Flow)?;
        let sample = sample.ok_or(ThumbnailError::NoPicture)?;
        let buffer = sample.buffer().ok_or(ThumbnailError::NoPicture)?;
        let map = buffer
            .map_readable()
            .map_err(|_| ThumbnailError::NoPicture)?;
        Ok(map.as_slice().to_vec())
    }

    /// The first error the pipeline reported, if any.
    fn error(&self) -> Option<ThumbnailError> {
        crate::pipeline::first_error(&self.bus).map(|(source_name, message)| ThumbnailError::Bus {
            source_name,
            message,
        })
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        let _ = self.feed.set_active(false);
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
