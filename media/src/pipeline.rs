//! One publisher session's GStreamer pipeline: H.264 and AAC in, MPEG-TS out to the HLS writer.
//!
//! ```text
//!  stream thread ─▶ [video pad] ─┐
//!                                ├─▶ mpegtsmux ─▶ appsink ─▶ HlsWriter (segments, playlist)
//!  stream thread ─▶ [audio pad] ─┘   (its own thread)
//! ```
//!
//! The stream thread pushes straight into the muxer's sink pads through pads of its own (as
//! GStreamer's test harness does): no appsrc, no demuxer, no queues, so each buffer crosses one
//! thread boundary in all, into the muxer's aggregator thread, which also runs the segmenter.
//! Every extra thread and queue costs wake-ups per buffer, which is where a naive pipeline spent
//! most of its CPU. The FLV payloads are already parsed by the stream thread, which turns AVC
//! length-prefixed NAL units into the byte-stream form the muxer takes, so no parser element is
//! needed either. Only the tracks that exist get a pad: a pad left waiting for a track that never
//! comes would hold the muxer forever.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::hls::HlsWriter;

/// How far one track may run ahead of the other inside the muxer before a push blocks. The
/// stream thread sends gap events well before this, so a stalled track never blocks the other.
const MUX_LATENCY: Duration = Duration::from_secs(3);
/// Transport stream packets per buffer out of the muxer (about 6 KB, a frame of 3 Mbit/s video).
/// Packets short of a whole chunk wait for the muxer's next frame, a few milliseconds.
const MUX_ALIGNMENT: i32 = 32;
/// How long the end of a session may take to drain through the muxer.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a pipeline failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PipelineError {
    #[error("GStreamer element {0} is missing (install the GStreamer plugins)")]
    MissingElement(&'static str),
    #[error("GStreamer: {0}")]
    Glib(#[from] gstreamer::glib::BoolError),
    #[error("GStreamer state change failed")]
    StateChange(#[from] gst::StateChangeError),
    #[error("linking the muxer failed: {0:?}")]
    Link(gst::PadLinkError),
    #[error("the muxer refused data: {0:?}")]
    Flow(gst::FlowError),
    #[error("GStreamer error from {source_name}: {message}")]
    Bus {
        source_name: String,
        message: String,
    },
}

/// The decoder configurations of the tracks a session publishes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tracks {
    /// Whether there is an H.264 track (its parameter sets travel in-band, before keyframes).
    pub(crate) video: bool,
    /// The AAC `AudioSpecificConfig`, when there is an audio track.
    pub(crate) audio: Option<Vec<u8>>,
}

/// A running muxing pipeline.
#[derive(Debug)]
pub(crate) struct MuxPipeline {
    pipeline: gst::Pipeline,
    video: Option<gst::Pad>,
    audio: Option<gst::Pad>,
    bus: gst::Bus,
}

fn make(factory: &'static str) -> Result<gst::Element, PipelineError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| PipelineError::MissingElement(factory))
}

impl MuxPipeline {
    /// Builds and starts the pipeline, feeding `hls`.
    pub(crate) fn start(
        name: &str,
        tracks: &Tracks,
        hls: Arc<Mutex<HlsWriter>>,
    ) -> Result<Self, PipelineError> {
        let pipeline = gst::Pipeline::with_name(name);
        let mux = make("mpegtsmux")?;
        mux.set_property("latency", MUX_LATENCY.as_nanos() as u64);
        // By default mpegtsmux pushes every 188-byte packet as a buffer of its own (a list of
        // them per frame): two thousand a second per stream to reference, hand over, map and
        // free. Aligned, it joins them into chunks of this many packets; a keyframe no longer
        // starts a buffer, so the writer finds it in the packets (random access indicator).
        mux.set_property("alignment", MUX_ALIGNMENT);
        let sink = gst_app::AppSink::builder()
            .sync(false)
            .async_(false)
            .enable_last_sample(false)
            // Each frame's chunks come as one list: one callback per frame.
            .buffer_list(true)
            .build();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let mut hls = hls.lock().map_err(|_| gst::FlowError::Error)?;
                    let mut write = |buffer: &gst::BufferRef| {
                        let pts = buffer.pts().map(|t| Duration::from_nanos(t.nseconds()));
                        let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                        hls.write_packets(map.as_slice(), pts).map_err(|e| {
                            tracing::error!(cause = %e, "writing an HLS segment failed");
                            gst::FlowError::Error
                        })
                    };
                    if let Some(list) = sample.buffer_list() {
                        for buffer in list.iter() {
                            write(buffer)?;
                        }
                    } else if let Some(buffer) = sample.buffer() {
                        write(buffer)?;
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pipeline.add_many([&mux, sink.upcast_ref()])?;
        mux.link(&sink)?;

        let video = tracks
            .video
            .then(|| {
                let caps = gst::Caps::builder("video/x-h264")
                    .field("stream-format", "byte-stream")
                    .field("alignment", "au")
                    .build();
                feed_pad(&mux, "video", &caps)
            })
            .transpose()?;
        let audio = tracks
            .audio
            .as_ref()
            .map(|config| {
                let caps = gst::Caps::builder("audio/mpeg")
                    .field("mpegversion", 4i32)
                    .field("framed", true)
                    .field("stream-format", "raw")
                    .field("codec_data", gst::Buffer::from_slice(config.clone()))
                    .build();
                feed_pad(&mux, "audio", &caps)
            })
            .transpose()?;
        let bus = pipeline.bus().ok_or(PipelineError::MissingElement("bus"))?;
        pipeline.set_state(gst::State::Playing)?;
        let this = Self {
            pipeline,
            video,
            audio,
            bus,
        };
        this.send_sticky_events(name, tracks);
        Ok(this)
    }

    /// Stream start, caps and segment: what a pad must say before its first buffer.
    fn send_sticky_events(&self, name: &str, tracks: &Tracks) {
        let segment = gst::FormattedSegment::<gst::ClockTime>::new();
        if let Some(pad) = &self.video {
            pad.push_event(gst::event::StreamStart::new(&format!("{name}/video")));
            pad.push_event(gst::event::Caps::new(
                &gst::Caps::builder("video/x-h264")
                    .field("stream-format", "byte-stream")
                    .field("alignment", "au")
                    .build(),
            ));
            pad.push_event(gst::event::Segment::new(&segment));
        }
        if let (Some(pad), Some(config)) = (&self.audio, &tracks.audio) {
            pad.push_event(gst::event::StreamStart::new(&format!("{name}/audio")));
            pad.push_event(gst::event::Caps::new(
                &gst::Caps::builder("audio/mpeg")
                    .field("mpegversion", 4i32)
                    .field("framed", true)
                    .field("stream-format", "raw")
                    .field("codec_data", gst::Buffer::from_slice(config.clone()))
                    .build(),
            ));
            pad.push_event(gst::event::Segment::new(&segment));
        }
    }

    pub(crate) fn has_video(&self) -> bool {
        self.video.is_some()
    }

    pub(crate) fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// Pushes one H.264 access unit (byte-stream). Blocks while the muxer is full.
    pub(crate) fn push_video(
        &self,
        data: Vec<u8>,
        dts: Duration,
        pts: Duration,
        keyframe: bool,
    ) -> Result<(), PipelineError> {
        let Some(pad) = &self.video else {
            return Ok(());
        };
        let mut buffer = gst::Buffer::from_mut_slice(data);
        {
            let b = buffer
                .get_mut()
                .ok_or(PipelineError::Flow(gst::FlowError::Error))?;
            b.set_dts(gst::ClockTime::from_nseconds(dts.as_nanos() as u64));
            b.set_pts(gst::ClockTime::from_nseconds(pts.as_nanos() as u64));
            if !keyframe {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        pad.push(buffer).map(drop).map_err(PipelineError::Flow)
    }

    /// Pushes one raw AAC frame. Blocks while the muxer is full.
    pub(crate) fn push_audio(
        &self,
        data: bytes::Bytes,
        pts: Duration,
        duration: Option<Duration>,
    ) -> Result<(), PipelineError> {
        let Some(pad) = &self.audio else {
            return Ok(());
        };
        let mut buffer = gst::Buffer::from_slice(data);
        {
            let b = buffer
                .get_mut()
                .ok_or(PipelineError::Flow(gst::FlowError::Error))?;
            let t = gst::ClockTime::from_nseconds(pts.as_nanos() as u64);
            b.set_pts(t);
            b.set_dts(t);
            if let Some(d) = duration {
                b.set_duration(gst::ClockTime::from_nseconds(d.as_nanos() as u64));
            }
        }
        pad.push(buffer).map(drop).map_err(PipelineError::Flow)
    }

    /// Tells the muxer a track has nothing until `until`, so it need not wait for it.
    pub(crate) fn gap(&self, video: bool, from: Duration, until: Duration) {
        let pad = if video { &self.video } else { &self.audio };
        if let Some(pad) = pad
            && until > from
        {
            let start = gst::ClockTime::from_nseconds(from.as_nanos() as u64);
            let length = gst::ClockTime::from_nseconds((until - from).as_nanos() as u64);
            pad.push_event(gst::event::Gap::builder(start).duration(length).build());
        }
    }

    /// The first error the pipeline reported, if any.
    pub(crate) fn error(&self) -> Option<PipelineError> {
        first_error(&self.bus).map(|(source_name, message)| PipelineError::Bus {
            source_name,
            message,
        })
    }

    /// Ends the session: drains what the muxer holds into the writer, then stops.
    pub(crate) fn finish(self) {
        for pad in [&self.video, &self.audio].into_iter().flatten() {
            pad.push_event(gst::event::Eos::new());
        }
        let _ = self.bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(DRAIN_TIMEOUT.as_nanos() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        // Drop takes the pipeline to Null.
    }
}

impl Drop for MuxPipeline {
    fn drop(&mut self) {
        for pad in [&self.video, &self.audio].into_iter().flatten() {
            let _ = pad.set_active(false);
        }
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// A pad of ours linked to a new sink pad of the muxer, ready to push.
fn feed_pad(mux: &gst::Element, name: &str, caps: &gst::Caps) -> Result<gst::Pad, PipelineError> {
    let sink = mux
        .request_pad_simple("sink_%d")
        .ok_or(PipelineError::MissingElement("mpegtsmux sink pad"))?;
    let caps = caps.clone();
    let pad = gst::Pad::builder(gst::PadDirection::Src)
        .name(name)
        .query_function(move |_pad, _parent, query| match query.view_mut() {
            gst::QueryViewMut::Caps(q) => {
                q.set_result(&caps);
                true
            }
            // Not a live source: the muxer waits for data on every pad rather than a clock.
            gst::QueryViewMut::Latency(q) => {
                q.set(false, gst::ClockTime::ZERO, gst::ClockTime::NONE);
                true
            }
            _ => false,
        })
        .build();
    pad.set_active(true)?;
    pad.link(&sink).map_err(PipelineError::Link)?;
    Ok(pad)
}

/// The first error message waiting on `bus`: the element that sent it and what it says.
pub(crate) fn first_error(bus: &gst::Bus) -> Option<(String, String)> {
    while let Some(message) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(err) = message.view() {
            let source = err.src().map(|s| s.path_string().to_string());
            return Some((source.unwrap_or_default(), err.error().to_string()));
        }
    }
    None
}
