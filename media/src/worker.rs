//! The stream thread: one per live stream, for as long as it is live (across takeovers).
//!
//! It receives the publisher's FLV payloads from the connection task over a bounded queue,
//! parses them, builds a muxing pipeline per publisher session for the tracks that session
//! actually has, pushes the frames in, measures health, hands a keyframe to the thumbnailer now
//! and then, and reports the stream's life as [`MediaEvent`]s. A newer publisher's first payload
//! ends the current session (the playlist gets a discontinuity); the queue closing ends the
//! stream (the playlist gets its end).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc::Sender;
use tokio_util::task::task_tracker::TaskTrackerToken;
use uuid::Uuid;

use crate::avc::AvcConfig;
use crate::beat;
use crate::flv::{self, AudioTag, Codec, VideoTag};
use crate::hls::HlsWriter;
use crate::pipeline::{MuxPipeline, Tracks, VideoTrack};
use crate::registry::{PublisherId, SharedRegistry};
use crate::thumbnail::{ThumbnailJob, Thumbnailer};
use crate::timeline::{Timeline, Track, presentation_time};
use crate::{ErrorCode, Health, MediaEvent};

/// Payloads queued between a connection and its stream thread (a few seconds of media). A
/// publisher faster than the pipeline fills it, and what does not fit is dropped and counted.
const QUEUE_DEPTH: usize = 512;
/// Bytes queued between a connection and its stream thread: the count alone would let 512
/// payloads of up to 8 MiB each pile up. Twice the largest media message a publisher may send
/// (`chunk::Limits::PUBLISHING`), seconds of even a 4K stream.
const QUEUE_BYTES: usize = 16 * 1024 * 1024;
/// How often health is measured and reported.
pub(crate) const HEALTH_INTERVAL: Duration = Duration::from_secs(2);
/// How often a keyframe is decoded into the thumbnail.
const THUMBNAIL_INTERVAL: Duration = Duration::from_secs(10);

/// One FLV payload from a publisher.
#[derive(Debug)]
pub(crate) struct StreamInput {
    pub(crate) publisher: PublisherId,
    pub(crate) video: bool,
    /// RTMP timestamp, milliseconds.
    pub(crate) timestamp: u32,
    pub(crate) data: Bytes,
}

/// The sending half of a stream thread's queue, counting what it had to drop.
#[derive(Debug, Clone)]
pub(crate) struct WorkerSender {
    tx: SyncSender<StreamInput>,
    dropped: Arc<AtomicU64>,
    /// Payload bytes in the queue.
    queued: Arc<AtomicUsize>,
}

/// The receiving half: takes payloads off the queue's byte count as they are taken.
#[derive(Debug)]
pub(crate) struct WorkerReceiver {
    rx: Receiver<StreamInput>,
    queued: Arc<AtomicUsize>,
}

impl WorkerReceiver {
    fn try_recv(&self) -> Result<StreamInput, TryRecvError> {
        let input = self.rx.try_recv()?;
        self.queued.fetch_sub(input.data.len(), Ordering::Relaxed);
        Ok(input)
    }

    fn recv(&self) -> Result<StreamInput, std::sync::mpsc::RecvError> {
        let input = self.rx.recv()?;
        self.queued.fetch_sub(input.data.len(), Ordering::Relaxed);
        Ok(input)
    }
}

/// A stream queue with no thread behind it yet.
pub(crate) fn queue() -> (WorkerSender, WorkerReceiver, Arc<AtomicU64>) {
    let (tx, rx) = sync_channel(QUEUE_DEPTH);
    let dropped = Arc::new(AtomicU64::new(0));
    let queued = Arc::new(AtomicUsize::new(0));
    let sender = WorkerSender {
        tx,
        dropped: Arc::clone(&dropped),
        queued: Arc::clone(&queued),
    };
    (sender, WorkerReceiver { rx, queued }, dropped)
}

impl WorkerSender {
    /// Counts bytes the connection skipped on its own (video waiting for a keyframe).
    pub(crate) fn count_dropped(&self, bytes: usize) {
        self.dropped.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Queues `input` without blocking; `false` (and counted) when the queue is full or the
    /// thread is gone.
    pub(crate) fn offer(&self, input: StreamInput) -> bool {
        let len = input.data.len();
        // Only the connection adds to the count, so checking then adding cannot overshoot.
        if self.queued.load(Ordering::Relaxed) + len > QUEUE_BYTES {
            self.dropped.fetch_add(len as u64, Ordering::Relaxed);
            return false;
        }
        self.queued.fetch_add(len, Ordering::Relaxed);
        match self.tx.try_send(input) {
            Ok(()) => true,
            Err(_) => {
                self.queued.fetch_sub(len, Ordering::Relaxed);
                self.dropped.fetch_add(len as u64, Ordering::Relaxed);
                false
            }
        }
    }
}

/// What a stream thread needs from the ingest server.
#[derive(Debug)]
pub(crate) struct StreamContext {
    pub(crate) stream_id: Uuid,
    pub(crate) dir: PathBuf,
    pub(crate) window: usize,
    pub(crate) registry: SharedRegistry,
    pub(crate) events: Sender<MediaEvent>,
    pub(crate) thumbnails: Thumbnailer,
    /// Held until the thread exits, so shutdown waits for it.
    pub(crate) _token: TaskTrackerToken,
}

/// Starts a stream thread and returns its queue.
pub(crate) fn spawn(ctx: StreamContext) -> std::io::Result<WorkerSender> {
    let (sender, rx, dropped) = queue();
    let name = format!("stream-{}", &ctx.stream_id.simple().to_string()[..8]);
    std::thread::Builder::new()
        .name(name)
        .spawn(move || guarded(ctx, &rx, &dropped))?;
    Ok(sender)
}

/// The panic boundary of a stream thread: a panic while handling the stream (a parser, the
/// pipeline glue) ends this stream only, and ends it cleanly: `Error`, the publisher
/// disconnected, the slot released once its connection has gone, then `Ended` (which the
/// application treats as a no-op for a stream that never went live).
fn guarded(ctx: StreamContext, rx: &WorkerReceiver, dropped: &AtomicU64) {
    let (stream_id, registry, events) =
        (ctx.stream_id, Arc::clone(&ctx.registry), ctx.events.clone());
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(ctx, rx, dropped)));
    let Err(panic) = outcome else {
        return;
    };
    let cause = crate::session::panic_message(panic.as_ref());
    tracing::error!(%stream_id, cause, "the stream thread panicked; ending the stream");
    let _ = events.blocking_send(MediaEvent::Error {
        stream_id,
        code: ErrorCode::PipelineFailed,
        message: "The server could not process the stream; it was disconnected.".to_owned(),
    });
    registry.kick(stream_id);
    // Until every sender is gone (the connection ended and released the slot), so that no
    // publisher feeds a stream nobody reads.
    while rx.recv().is_ok() {}
    registry.finished(stream_id);
    let _ = events.blocking_send(MediaEvent::Ended { stream_id });
}

fn run(ctx: StreamContext, rx: &WorkerReceiver, dropped: &AtomicU64) {
    let span = tracing::info_span!("stream", stream_id = %ctx.stream_id);
    let _enter = span.enter();
    let hls = match HlsWriter::create(&ctx.dir, ctx.window) {
        Ok(hls) => {
            ctx.registry.set_hls(ctx.stream_id, hls.live());
            Arc::new(Mutex::new(hls))
        }
        Err(e) => {
            tracing::error!(cause = %e, dir = %ctx.dir.display(), "cannot write HLS here");
            ctx.error(
                ErrorCode::PipelineFailed,
                "The server cannot write the stream's video.",
            );
            ctx.registry.kick(ctx.stream_id);
            // Drain until the connection goes, so the publisher is not left hanging.
            while rx.recv().is_ok() {}
            ctx.registry.finished(ctx.stream_id);
            return;
        }
    };
    let mut worker = Worker {
        ctx,
        hls,
        session: None,
        live: false,
        stats: Stats::default(),
        last_thumbnail: None,
    };
    let mut next_health = Instant::now() + HEALTH_INTERVAL;
    'stream: loop {
        // Wake on the media core's beat, just after the ingest thread read the sockets, and
        // take whatever arrived, rather than once per payload (see [`beat`]). The muxer emits a
        // keyframe once the next audio arrives, at the latest with the next beat's payloads.
        let now = Instant::now();
        let wake =
            beat::next(now.checked_sub(beat::STREAM_OFFSET).unwrap_or(now)) + beat::STREAM_OFFSET;
        std::thread::sleep(wake.saturating_duration_since(now));
        loop {
            match rx.try_recv() {
                Ok(input) => worker.handle(&input),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => break 'stream,
            }
        }
        if Instant::now() >= next_health {
            next_health = Instant::now() + HEALTH_INTERVAL;
            worker.tick(dropped.load(Ordering::Relaxed));
        }
    }
    worker.end();
}

/// One publisher's part of the stream.
#[derive(Debug)]
struct Session {
    publisher: PublisherId,
    avc: Option<AvcConfig>,
    aac: Option<Vec<u8>>,
    pipeline: Option<MuxPipeline>,
    /// The session refused this publisher's media; everything else it sends is ignored.
    refused: bool,
    timeline: Timeline,
    /// A keyframe has been pushed: inter frames may follow.
    keyframe_seen: bool,
}

impl Session {
    fn new(publisher: PublisherId) -> Self {
        Self {
            publisher,
            avc: None,
            aac: None,
            pipeline: None,
            refused: false,
            timeline: Timeline::default(),
            keyframe_seen: false,
        }
    }
}

/// A parsed frame on its way to the muxer.
#[derive(Debug)]
enum Frame {
    Video {
        /// The access unit as FLV carries it (AVC: length-prefixed NAL units).
        au: Bytes,
        dts: Duration,
        pts: Duration,
        keyframe: bool,
    },
    Audio {
        /// Raw AAC frame.
        data: Bytes,
        pts: Duration,
    },
}

/// Counters for the current health window.
#[derive(Debug, Default)]
struct Stats {
    video_bytes: u64,
    audio_bytes: u64,
    video_frames: u64,
    last_keyframe: Option<Duration>,
    keyframe_interval: Option<Duration>,
    window_start: Option<Instant>,
}

struct Worker {
    ctx: StreamContext,
    hls: Arc<Mutex<HlsWriter>>,
    session: Option<Session>,
    live: bool,
    stats: Stats,
    last_thumbnail: Option<Instant>,
}

impl StreamContext {
    fn emit(&self, event: MediaEvent) {
        // Lifecycle events must not be lost; this thread may wait for the application.
        if self.events.blocking_send(event).is_err() {
            tracing::debug!("media events are no longer received");
        }
    }

    fn error(&self, code: ErrorCode, message: &str) {
        self.emit(MediaEvent::Error {
            stream_id: self.stream_id,
            code,
            message: message.to_owned(),
        });
    }
}

impl Worker {
    fn handle(&mut self, input: &StreamInput) {
        match &self.session {
            Some(s) if s.publisher == input.publisher => {}
            Some(s) if s.publisher > input.publisher => return, // a publisher that was taken over
            _ => {
                self.end_session();
                self.session = Some(Session::new(input.publisher));
            }
        }
        if self.session.as_ref().is_some_and(|s| s.refused) {
            return;
        }
        if input.video {
            self.stats.video_bytes += input.data.len() as u64;
            self.video(input);
        } else {
            self.stats.audio_bytes += input.data.len() as u64;
            self.audio(input);
        }
    }

    fn video(&mut self, input: &StreamInput) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        match flv::parse_video(&input.data) {
            VideoTag::AvcConfig(record) => match AvcConfig::parse(record) {
                Ok(config) => session.avc = Some(config),
                Err(e) => {
                    tracing::warn!(cause = %e, "refusing the publisher's H.264 configuration");
                    self.refuse(
                        ErrorCode::MalformedMedia,
                        "The H.264 decoder configuration sent by the encoder is invalid.",
                    );
                }
            },
            VideoTag::AvcFrame {
                keyframe,
                cts_ms,
                data,
            } => {
                if !keyframe && !session.keyframe_seen {
                    return;
                }
                let dts = session.timeline.time(input.timestamp);
                let Some(config) = &session.avc else {
                    return; // frames before their configuration cannot be decoded
                };
                if !config.is_well_formed(data) {
                    tracing::debug!("dropping an H.264 frame whose NAL lengths do not add up");
                    return;
                }
                let pts = presentation_time(dts, cts_ms);
                if keyframe {
                    session.keyframe_seen = true;
                    if let Some(last) = self.stats.last_keyframe
                        && dts > last
                    {
                        self.stats.keyframe_interval = Some(dts - last);
                    }
                    self.stats.last_keyframe = Some(dts);
                    if self
                        .last_thumbnail
                        .is_none_or(|t| t.elapsed() >= THUMBNAIL_INTERVAL)
                        && let Some(access_unit) = config.to_byte_stream(data, true)
                    {
                        self.last_thumbnail = Some(Instant::now());
                        self.ctx.thumbnails.offer(ThumbnailJob {
                            dir: self.ctx.dir.clone(),
                            access_unit,
                            width: config.width,
                            height: config.height,
                        });
                    }
                }
                let offset = data.as_ptr() as usize - input.data.as_ptr() as usize;
                let au = input.data.slice(offset..offset + data.len());
                self.stats.video_frames += 1;
                self.push(Frame::Video {
                    au,
                    dts,
                    pts,
                    keyframe,
                });
            }
            VideoTag::Ignored => {}
            VideoTag::Unsupported(codec) => self.unsupported(codec, "video"),
        }
    }

    fn audio(&mut self, input: &StreamInput) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        match flv::parse_audio(&input.data) {
            AudioTag::AacConfig(config) => session.aac = Some(config.to_vec()),
            AudioTag::AacFrame(frame) => {
                if session.aac.is_none() {
                    return;
                }
                let pts = session.timeline.time(input.timestamp);
                let offset = frame.as_ptr() as usize - input.data.as_ptr() as usize;
                let data = input.data.slice(offset..offset + frame.len());
                self.push(Frame::Audio { data, pts });
            }
            AudioTag::Ignored => {}
            AudioTag::Unsupported(codec) => self.unsupported(codec, "audio"),
        }
    }

    /// Hands a frame to the session's pipeline (built at the first frame).
    fn push(&mut self, frame: Frame) {
        if !self.ensure_pipeline() {
            return;
        }
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let Some(pipeline) = &session.pipeline else {
            return;
        };
        let (track, time) = match &frame {
            Frame::Video { dts, .. } => (Track::Video, *dts),
            Frame::Audio { pts, .. } => (Track::Audio, *pts),
        };
        let (has_track, has_other) = match track {
            Track::Video => (pipeline.has_video(), pipeline.has_audio()),
            Track::Audio => (pipeline.has_audio(), pipeline.has_video()),
        };
        if !has_track {
            return; // a track that appeared after the session started is not muxed
        }
        // A track that stopped sending is ended for the session, so that the muxer does not
        // wait for it (and, its queue full, block this thread).
        if let Some(gap) = session.timeline.advance(track, time, has_other) {
            pipeline.end_track(gap.track == Track::Video);
        }
        let result = match frame {
            Frame::Video {
                au,
                dts,
                pts,
                keyframe,
            } => pipeline.push_video(au, dts, pts, keyframe),
            Frame::Audio { data, pts } => pipeline.push_audio(data, pts, None),
        };
        if let Err(e) = result {
            self.pipeline_failed(&e);
        }
    }

    /// Builds the session's pipeline at its first frame, for the tracks configured by then.
    /// `false` when there is none (it failed, or the session was refused).
    fn ensure_pipeline(&mut self) -> bool {
        let Some(session) = self.session.as_mut() else {
            return false;
        };
        if session.pipeline.is_some() {
            return true;
        }
        if session.refused {
            return false;
        }
        let tracks = Tracks {
            video: session.avc.as_ref().map(|avc| VideoTrack {
                record: avc.record.clone(),
                // The muxer needs dimensions in its caps; decoders read the SPS anyway.
                width: avc.width.unwrap_or(1280),
                height: avc.height.unwrap_or(720),
            }),
            audio: session.aac.clone(),
        };
        let name = format!("stream-{}-{}", self.ctx.stream_id, session.publisher);
        match MuxPipeline::start(&name, &tracks, Arc::clone(&self.hls)) {
            Ok(pipeline) => {
                tracing::info!(
                    video = tracks.video.is_some(),
                    audio = tracks.audio.is_some(),
                    "publisher session started"
                );
                session.pipeline = Some(pipeline);
                if !self.live {
                    self.live = true;
                    self.stats = Stats::default();
                    self.ctx.emit(MediaEvent::Live {
                        stream_id: self.ctx.stream_id,
                    });
                }
                true
            }
            Err(e) => {
                self.pipeline_failed(&e);
                false
            }
        }
    }

    fn unsupported(&mut self, codec: Codec, kind: &str) {
        tracing::warn!(codec = %codec, kind, "refusing a publish with an unsupported codec");
        self.refuse(
            ErrorCode::UnsupportedCodec,
            &format!(
                "The encoder sent {codec} {kind}, which Siaran does not support. \
                 Set the encoder to H.264 video and AAC audio."
            ),
        );
    }

    fn pipeline_failed(&mut self, e: &crate::pipeline::PipelineError) {
        tracing::error!(cause = %e, "media pipeline failed");
        self.refuse(
            ErrorCode::PipelineFailed,
            "The server could not process the stream; it was disconnected.",
        );
    }

    /// Stops taking this publisher's media and disconnects it.
    fn refuse(&mut self, code: ErrorCode, message: &str) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        session.refused = true;
        let publisher = session.publisher;
        self.end_session();
        self.ctx.error(code, message);
        self.ctx
            .registry
            .kick_publisher(self.ctx.stream_id, publisher);
    }

    /// Closes the current session's pipeline (its last segment is listed).
    fn end_session(&mut self) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        if let Some(pipeline) = session.pipeline.take() {
            pipeline.finish();
            let result = self.hls.lock().map(|mut hls| hls.discontinuity());
            if let Ok(Err(e)) = result {
                tracing::warn!(cause = %e, "closing the session's last segment failed");
            }
        }
    }

    fn tick(&mut self, dropped: u64) {
        if let Some(Some(pipeline)) = self.session.as_ref().map(|s| s.pipeline.as_ref())
            && let Some(e) = pipeline.error()
        {
            self.pipeline_failed(&e);
        }
        if !self.live {
            return;
        }
        let now = Instant::now();
        let window = self
            .stats
            .window_start
            .map_or(HEALTH_INTERVAL, |start| now - start)
            .as_secs_f64()
            .max(0.001);
        let session = self.session.as_ref();
        let avc = session.and_then(|s| s.avc.as_ref());
        let aac = session.and_then(|s| s.aac.as_deref());
        let kbps = |bytes: u64| (bytes as f64 * 8.0 / 1000.0 / window * 10.0).round() / 10.0;
        let health = Health {
            video_bitrate_kbps: avc.map(|_| kbps(self.stats.video_bytes)),
            audio_bitrate_kbps: aac.map(|_| kbps(self.stats.audio_bytes)),
            fps: avc.map(|_| (self.stats.video_frames as f64 / window * 10.0).round() / 10.0),
            keyframe_interval_s: self
                .stats
                .keyframe_interval
                .map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0),
            width: avc.and_then(|c| c.width),
            height: avc.and_then(|c| c.height),
            video_codec: avc.map(|c| c.codec.clone()),
            audio_codec: aac.map(aac_codec),
            dropped_bytes: dropped,
        };
        self.stats.video_bytes = 0;
        self.stats.audio_bytes = 0;
        self.stats.video_frames = 0;
        self.stats.window_start = Some(now);
        // Health is periodic: when the application is behind, skipping one loses nothing.
        let _ = self.ctx.events.try_send(MediaEvent::Health {
            stream_id: self.ctx.stream_id,
            health,
        });
    }

    fn end(mut self) {
        self.end_session();
        let result = self.hls.lock().map(|mut hls| hls.finish());
        if let Ok(Err(e)) = result {
            tracing::warn!(cause = %e, "writing the end of the playlist failed");
        }
        self.ctx.registry.finished(self.ctx.stream_id);
        if self.live {
            tracing::info!("stream ended");
            self.ctx.emit(MediaEvent::Ended {
                stream_id: self.ctx.stream_id,
            });
        }
    }
}

/// `mp4a.40.<object type>` from an `AudioSpecificConfig`.
fn aac_codec(config: &[u8]) -> String {
    let object_type = config.first().map_or(2, |b| b >> 3);
    format!("mp4a.40.{object_type}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(len: usize) -> StreamInput {
        StreamInput {
            publisher: 1,
            video: true,
            timestamp: 0,
            data: Bytes::from(vec![0u8; len]),
        }
    }

    #[test]
    fn the_queue_is_bounded_by_bytes_and_counts_what_it_drops() {
        let (sender, receiver, dropped) = queue();
        let big = QUEUE_BYTES / 4;
        for _ in 0..4 {
            assert!(sender.offer(payload(big)));
        }

        assert!(
            !sender.offer(payload(big)),
            "four payloads fill it by bytes, not by count"
        );
        assert!(!sender.offer(payload(1)));
        assert_eq!(dropped.load(Ordering::Relaxed), big as u64 + 1);

        receiver.try_recv().unwrap();
        assert!(sender.offer(payload(big)), "taking one makes room for one");
    }

    #[test]
    fn the_queue_is_bounded_by_count_too() {
        let (sender, _receiver, dropped) = queue();
        for _ in 0..QUEUE_DEPTH {
            assert!(sender.offer(payload(10)));
        }

        assert!(!sender.offer(payload(10)));
        assert_eq!(dropped.load(Ordering::Relaxed), 10);
    }
}
