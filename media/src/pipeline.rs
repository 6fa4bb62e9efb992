//! One publisher session's GStreamer pipeline: H.264 and AAC in, fragmented MP4 out to the HLS
//! writer, in chunks of [`PART_DURATION`] (LL-HLS parts) within fragments that start on
//! keyframes (segments).
//!
//! ```text
//!  stream thread ─▶ [video pad] ─┐
//!                                ├─▶ isofmp4mux ─▶ appsink ─▶ HlsWriter (parts, segments, playlist)
//!  stream thread ─▶ [audio pad] ─┘   (its own thread)
//! ```
//!
//! `isofmp4mux` comes from gst-plugins-rs (`gst-plugin-fmp4`, built into this crate and
//! registered at start): Debian's GStreamer 1.22 has no fragmented-MP4 muxer that cuts chunks.
//!
//! The stream thread pushes straight into the muxer's sink pads through pads of its own (as
//! GStreamer's test harness does): no appsrc, no demuxer, no queues, so each buffer crosses one
//! thread boundary in all, into the muxer's aggregator thread, which also runs the segmenter.
//! Every extra thread and queue costs wake-ups per buffer, which is where a naive pipeline spent
//! most of its CPU. The FLV payloads are already parsed by the stream thread, and the muxer takes the
//! AVC length-prefixed NAL units as FLV carries them (with the decoder configuration record as
//! `codec_data`), so no parser element is needed either. Only the tracks that exist get a pad: a pad left waiting for a track that never
//! comes would hold the muxer forever.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::hls::{HlsWriter, PART_DURATION};

/// How far one track may run ahead of the other inside the muxer before a push blocks. The
/// stream thread sends gap events well before this, so a stalled track never blocks the other.
const MUX_LATENCY: Duration = Duration::from_secs(3);
/// A fragment (segment) ends at the first keyframe at least this long after its start, so a
/// publisher with very short GOPs does not produce a flood of tiny segments.
const MIN_SEGMENT: Duration = Duration::from_millis(900);
/// Audio-only streams have no keyframes to cut on; they are cut on time.
const AUDIO_ONLY_SEGMENT: Duration = Duration::from_secs(2);
/// How long the end of a session may take to drain through the muxer.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a pipeline failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PipelineError {
    #[error("GStreamer element {0} is missing (install the GStreamer plugins)")]
    MissingElement(&'static str),
    #[error("registering the fragmented-MP4 muxer failed: {0}")]
    Register(String),
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
    /// The H.264 track, when there is one.
    pub(crate) video: Option<VideoTrack>,
    /// The AAC `AudioSpecificConfig`, when there is an audio track.
    pub(crate) audio: Option<Vec<u8>>,
}

/// An H.264 track as the muxer's caps describe it.
#[derive(Debug, Clone)]
pub(crate) struct VideoTrack {
    /// The `AVCDecoderConfigurationRecord` (`codec_data`).
    pub(crate) record: Vec<u8>,
    pub(crate) width: u32,
    pub(crate) height: u32,
}

impl VideoTrack {
    fn caps(&self) -> gst::Caps {
        gst::Caps::builder("video/x-h264")
            .field("stream-format", "avc")
            .field("alignment", "au")
            .field("width", i32::try_from(self.width).unwrap_or(i32::MAX))
            .field("height", i32::try_from(self.height).unwrap_or(i32::MAX))
            .field("codec_data", gst::Buffer::from_slice(self.record.clone()))
            .build()
    }
}

fn audio_caps(config: &[u8]) -> gst::Caps {
    let (rate, channels) = aac_rate_and_channels(config).unwrap_or((44_100, 2));
    gst::Caps::builder("audio/mpeg")
        .field("mpegversion", 4i32)
        .field("framed", true)
        .field("stream-format", "raw")
        .field("rate", rate)
        .field("channels", channels)
        .field("codec_data", gst::Buffer::from_slice(config.to_vec()))
        .build()
}

/// The sampling rate and channel count an `AudioSpecificConfig` announces (ISO 14496-3
/// 1.6.2.1: 5 bits of object type, 4 of frequency index, 4 of channel configuration).
fn aac_rate_and_channels(config: &[u8]) -> Option<(i32, i32)> {
    const RATES: [i32; 13] = [
        96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025,
        8_000, 7_350,
    ];
    let bits = u16::from_be_bytes([*config.first()?, *config.get(1)?]);
    if bits >> 11 == 31 {
        return None; // an escaped object type: not what RTMP encoders send
    }
    let rate = *RATES.get(usize::from((bits >> 7) & 0xf))?;
    let channels = match (bits >> 3) & 0xf {
        0 => return None, // defined in the stream, not the config
        7 => 8,
        c @ 1..=6 => i32::from(c),
        _ => return None,
    };
    Some((rate, channels))
}

/// Registers the fragmented-MP4 muxers of gst-plugins-rs (once per process).
pub(crate) fn register_muxers() -> Result<(), PipelineError> {
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            // gst-plugin-fmp4 is built on the previous gstreamer-rs, whose own bookkeeping
            // must see GStreamer initialised too (the C library is one and the same).
            gstreamer024::init().map_err(|e| e.to_string())?;
            gstfmp4::plugin_register_static().map_err(|e| e.to_string())
        })
        .clone()
        .map_err(PipelineError::Register)
}

/// A running muxing pipeline.
#[derive(Debug)]
pub(crate) struct MuxPipeline {
    pipeline: gst::Pipeline,
    video: Option<gst::Pad>,
    audio: Option<gst::Pad>,
    bus: gst::Bus,
    /// One AAC frame (1024 samples at the track's rate).
    audio_frame: Duration,
    /// Tracks that stalled and were ended for the session ([`Self::end_track`]).
    video_ended: std::cell::Cell<bool>,
    audio_ended: std::cell::Cell<bool>,
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
        register_muxers()?;
        let pipeline = gst::Pipeline::with_name(name);
        let mux = make("isofmp4mux")?;
        mux.set_property("latency", MUX_LATENCY.as_nanos() as u64);
        let fragment = if tracks.video.is_some() {
            MIN_SEGMENT
        } else {
            AUDIO_ONLY_SEGMENT
        };
        mux.set_property("fragment-duration", fragment.as_nanos() as u64);
        mux.set_property("chunk-duration", PART_DURATION.as_nanos() as u64);
        let sink = gst_app::AppSink::builder()
            .sync(false)
            .async_(false)
            .enable_last_sample(false)
            // A chunk (header and samples) comes as one list: one callback per part.
            .buffer_list(true)
            .build();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let mut hls = hls.lock().map_err(|_| gst::FlowError::Error)?;
                    let mut write = |buffer: &gst::BufferRef| {
                        write_buffer(&mut hls, buffer).map_err(|e| {
                            tracing::error!(cause = %e, "writing HLS failed");
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
            .as_ref()
            .map(|video| feed_pad(&mux, "video", &video.caps()))
            .transpose()?;
        let audio = tracks
            .audio
            .as_ref()
            .map(|config| feed_pad(&mux, "audio", &audio_caps(config)))
            .transpose()?;
        let bus = pipeline.bus().ok_or(PipelineError::MissingElement("bus"))?;
        pipeline.set_state(gst::State::Playing)?;
        let rate = tracks
            .audio
            .as_deref()
            .and_then(aac_rate_and_channels)
            .map_or(44_100, |(rate, _)| rate);
        let this = Self {
            pipeline,
            video,
            audio,
            bus,
            audio_frame: Duration::from_nanos(
                1024 * 1_000_000_000 / u64::from(rate.unsigned_abs()),
            ),
            video_ended: std::cell::Cell::new(false),
            audio_ended: std::cell::Cell::new(false),
        };
        this.send_sticky_events(name, tracks);
        Ok(this)
    }

    /// Stream start, caps and segment: what a pad must say before its first buffer.
    fn send_sticky_events(&self, name: &str, tracks: &Tracks) {
        let segment = gst::FormattedSegment::<gst::ClockTime>::new();
        if let (Some(pad), Some(video)) = (&self.video, &tracks.video) {
            pad.push_event(gst::event::StreamStart::new(&format!("{name}/video")));
            pad.push_event(gst::event::Caps::new(&video.caps()));
            pad.push_event(gst::event::Segment::new(&segment));
        }
        if let (Some(pad), Some(config)) = (&self.audio, &tracks.audio) {
            pad.push_event(gst::event::StreamStart::new(&format!("{name}/audio")));
            pad.push_event(gst::event::Caps::new(&audio_caps(config)));
            pad.push_event(gst::event::Segment::new(&segment));
        }
    }

    pub(crate) fn has_video(&self) -> bool {
        self.video.is_some()
    }

    pub(crate) fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// Pushes one H.264 access unit (AVC: length-prefixed NAL units). Blocks while the muxer is
    /// full.
    pub(crate) fn push_video(
        &self,
        data: bytes::Bytes,
        dts: Duration,
        pts: Duration,
        keyframe: bool,
    ) -> Result<(), PipelineError> {
        let Some(pad) = self.video.as_ref().filter(|_| !self.video_ended.get()) else {
            return Ok(());
        };
        let mut buffer = gst::Buffer::from_slice(data);
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
        let Some(pad) = self.audio.as_ref().filter(|_| !self.audio_ended.get()) else {
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
            let d = duration.unwrap_or(self.audio_frame);
            b.set_duration(gst::ClockTime::from_nseconds(d.as_nanos() as u64));
        }
        pad.push(buffer).map(drop).map_err(PipelineError::Flow)
    }

    /// A track has stalled (the other is [`STALL`](crate::timeline::STALL) ahead): it ends for
    /// this session, so the muxer stops waiting for it and writes the other alone. A gap event
    /// would not do: a fragmented MP4 track cannot say "nothing here" without a sample, and
    /// the muxer's stand-in samples repeat a decode time players and ffmpeg reject. What the
    /// track sends later in the session is dropped; the next session (a reconnect) has it again.
    pub(crate) fn end_track(&self, video: bool) {
        let (pad, ended) = if video {
            (&self.video, &self.video_ended)
        } else {
            (&self.audio, &self.audio_ended)
        };
        if let Some(pad) = pad
            && !ended.replace(true)
        {
            tracing::info!(
                track = if video { "video" } else { "audio" },
                "a track stalled; the session goes on without it"
            );
            pad.push_event(gst::event::Eos::new());
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

/// Hands one buffer of the muxer's output to the writer. The muxer marks the init section
/// `HEADER|DISCONT`, a chunk's `moof` `HEADER` (and `DELTA_UNIT` unless the chunk starts a
/// fragment), and the chunk's last sample `MARKER`.
fn write_buffer(hls: &mut HlsWriter, buffer: &gst::BufferRef) -> std::io::Result<()> {
    let flags = buffer.flags();
    let map = buffer
        .map_readable()
        .map_err(|_| std::io::Error::other("unreadable buffer from the muxer"))?;
    if flags.contains(gst::BufferFlags::HEADER | gst::BufferFlags::DISCONT) {
        return hls.init_section(map.as_slice());
    }
    if flags.contains(gst::BufferFlags::HEADER) {
        let start = buffer
            .pts()
            .map_or(Duration::ZERO, |t| Duration::from_nanos(t.nseconds()));
        let duration = buffer
            .duration()
            .map(|t| Duration::from_nanos(t.nseconds()));
        hls.begin_part(
            start,
            duration,
            !flags.contains(gst::BufferFlags::DELTA_UNIT),
        )?;
        hls.append(map.as_slice());
        return Ok(());
    }
    hls.append(map.as_slice());
    if flags.contains(gst::BufferFlags::MARKER) {
        hls.end_part()?;
    }
    Ok(())
}

/// A pad of ours linked to a new sink pad of the muxer, ready to push.
fn feed_pad(mux: &gst::Element, name: &str, caps: &gst::Caps) -> Result<gst::Pad, PipelineError> {
    let sink = mux
        .request_pad_simple("sink_%u")
        .ok_or(PipelineError::MissingElement("isofmp4mux sink pad"))?;
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
