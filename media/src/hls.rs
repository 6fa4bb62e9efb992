//! The HLS output of one stream, Low-Latency HLS (RFC 8216bis, Apple's LL-HLS rules) on the one
//! playlist every player uses: fragmented MP4 segments cut on keyframes, each made of partial
//! segments of about [`PART_DURATION`], listed while the segment is still being written.
//!
//! The muxer (`isofmp4mux`, see `pipeline`) hands over its output as it makes it: the init
//! section (`ftyp`+`moov`), then one chunk (`moof`+`mdat`) per part. A chunk that starts a
//! fragment starts a segment (the muxer starts fragments on keyframes). [`HlsWriter`] appends
//! each finished part to the segment's file and to [`LiveHls`], the stream's live edge in
//! memory, which the HTTP side asks for "this playlist, part or segment — or wait for it"
//! without touching the disk or polling: a blocking playlist reload (`_HLS_msn`/`_HLS_part`)
//! or a request for the preload-hinted part is answered the moment the part exists.
//!
//! Whole segments and the init sections go to disk (`<msn>.m4s`, `init-<n>.mp4`), with a plain
//! playlist (no parts) that a player or process without the live edge reads, and that ends
//! with `#EXT-X-ENDLIST` once the stream is over. The playlist is a sliding window; files that
//! slid out of it are deleted a little later. A publisher taking over the stream starts a new
//! timeline with a new init section, marked `#EXT-X-DISCONTINUITY`.
//!
//! File names are this module's contract with the HTTP side: [`HlsFile`].

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::watch;

/// Name of the playlist file in a stream's directory.
pub const PLAYLIST: &str = "index.m3u8";
/// Name of the thumbnail file in a stream's directory.
pub const THUMBNAIL: &str = "thumbnail.jpg";

/// Segments listed in the live playlist: long enough (20 s at 2 s keyframes) that a delta
/// update has segments to skip (the skip boundary is six target durations).
pub(crate) const DEFAULT_WINDOW: usize = 10;
/// Segments kept on disk after they left the playlist.
const DEFAULT_GRACE: usize = 3;
/// The length of a part the muxer is asked for (its `chunk-duration`).
pub(crate) const PART_DURATION: Duration = Duration::from_millis(200);
/// `PART-TARGET`: no part is longer (a part ends at the first frame past [`PART_DURATION`]).
const PART_TARGET: Duration = Duration::from_millis(250);
/// `PART-HOLD-BACK`: how far behind the live edge an LL-HLS player plays: three part targets,
/// as Apple recommends (the spec's minimum is two). One second instead changed neither the
/// latency nor the stalls of hls.js in `benches/latency`.
const PART_HOLD_BACK: Duration = Duration::from_millis(750);
/// Complete segments whose parts are still listed (and kept in memory), besides the open one:
/// Apple's rules list parts for the last three target durations or so.
const PART_SEGMENTS: usize = 2;
/// Parts in one segment at most (12 s of them): a segment is cut there without a keyframe.
const MAX_SEGMENT_PARTS: usize = 60;
/// The longest a blocking request is held, whatever the target duration.
const MAX_HOLD: Duration = Duration::from_secs(20);
/// The Advance Part Limit: a blocking request for a part further ahead than this is refused.
const ADVANCE_PART_LIMIT: u64 = (1000 * 3 / PART_TARGET.as_millis()) as u64;

/// A file of a stream's HLS output, by its name: the names the HTTP side may serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HlsFile {
    /// `index.m3u8`
    Playlist,
    /// `init-<n>.mp4`: the init section of a publisher session.
    Init(u64),
    /// `<msn>.m4s`: a whole segment.
    Segment(u64),
    /// `p<n>.m4s`: a partial segment (numbered across the stream, so a hinted part's name does
    /// not depend on whether a keyframe starts a new segment first).
    Part(u64),
    /// `thumbnail.jpg`
    Thumbnail,
}

fn number(digits: &str) -> Option<u64> {
    (!digits.is_empty() && digits.len() <= 19 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

impl HlsFile {
    /// The file a name means, or `None` for any other name (no path can reach outside the
    /// stream's directory).
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            PLAYLIST => return Some(Self::Playlist),
            THUMBNAIL => return Some(Self::Thumbnail),
            _ => {}
        }
        if let Some(n) = name
            .strip_prefix("init-")
            .and_then(|r| r.strip_suffix(".mp4"))
        {
            return number(n).map(Self::Init);
        }
        let stem = name.strip_suffix(".m4s")?;
        match stem.strip_prefix('p') {
            Some(n) => number(n).map(Self::Part),
            None => number(stem).map(Self::Segment),
        }
    }

    /// The file's name in the stream's directory (and URL).
    #[must_use]
    pub fn name(self) -> String {
        match self {
            Self::Playlist => PLAYLIST.to_owned(),
            Self::Init(n) => format!("init-{n}.mp4"),
            Self::Segment(n) => format!("{n}.m4s"),
            Self::Part(n) => format!("p{n}.m4s"),
            Self::Thumbnail => THUMBNAIL.to_owned(),
        }
    }

    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Playlist => "application/vnd.apple.mpegurl",
            Self::Init(_) | Self::Segment(_) | Self::Part(_) => "video/mp4",
            Self::Thumbnail => "image/jpeg",
        }
    }

    #[must_use]
    pub fn cache_control(self) -> &'static str {
        match self {
            // A live playlist changes with every part.
            Self::Playlist => "no-cache, no-store",
            // Final once listed; kept short as a name may be reused by a later run of the
            // same stream.
            Self::Init(_) | Self::Segment(_) | Self::Part(_) => "public, max-age=60",
            Self::Thumbnail => "public, max-age=5",
        }
    }
}

/// A finished partial segment.
#[derive(Debug, Clone)]
struct Part {
    id: u64,
    duration: Duration,
    independent: bool,
    bytes: Bytes,
}

/// A segment: complete, or the open one (still getting parts).
#[derive(Debug, Clone)]
struct Segment {
    msn: u64,
    /// Wall-clock time of its first frame (`#EXT-X-PROGRAM-DATE-TIME`).
    date: SystemTime,
    duration: Duration,
    discontinuity: bool,
    init: u64,
    /// Its parts, while they are listed; emptied for older segments (served from disk).
    parts: Vec<Part>,
}

/// What [`LiveHls`] holds: the live edge of one stream.
#[derive(Debug, Default)]
struct Edge {
    /// Complete segments in the window, oldest first.
    listed: VecDeque<Segment>,
    open: Option<Segment>,
    /// Init sections by number, those still used by a listed segment.
    inits: Vec<(u64, Bytes)>,
    next_part: u64,
    next_msn: u64,
    discontinuity_sequence: u64,
    target_duration: u64,
    ended: bool,
}

/// What a blocking playlist request asks for (`_HLS_msn`, `_HLS_part`, `_HLS_skip`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlaylistRequest {
    /// Hold the response until the playlist has this media sequence number (complete, unless
    /// `part` is given).
    pub msn: Option<u64>,
    /// With `msn`: until it has this part of that segment.
    pub part: Option<u64>,
    /// A delta update: segments older than the skip boundary are replaced by `EXT-X-SKIP`.
    pub skip: bool,
}

/// Why a blocking request got no playlist or part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Blocked {
    /// Further ahead than the spec lets a client ask (answered at once; HTTP 400).
    #[error("the requested segment or part is too far ahead of the live edge")]
    TooFarAhead,
    /// Not there within the hold time (three target durations; HTTP 503).
    #[error("the requested segment or part did not appear in time")]
    TimedOut,
}

/// Whether the edge has what a request waits for.
#[derive(Debug, PartialEq, Eq)]
enum Has {
    Yes,
    NotYet,
    TooFar,
}

impl Edge {
    fn has(&self, msn: u64, part: Option<u64>) -> Has {
        if self.ended {
            return Has::Yes;
        }
        let open = self.next_msn.saturating_sub(u64::from(self.open.is_some()));
        let open_parts = self.open.as_ref().map_or(0, |s| s.parts.len() as u64);
        if msn < open || (self.open.is_none() && msn < self.next_msn) {
            return Has::Yes;
        }
        // The last segment of the playlist is the open one (or the next to open).
        if msn > open + 1 {
            return Has::TooFar;
        }
        match part {
            None => Has::NotYet,
            Some(p) if msn == open && self.open.is_some() => {
                if p < open_parts {
                    Has::Yes
                } else if p + 1 > open_parts + ADVANCE_PART_LIMIT {
                    Has::TooFar
                } else {
                    Has::NotYet
                }
            }
            Some(p) if p + 1 > ADVANCE_PART_LIMIT => Has::TooFar,
            Some(_) => Has::NotYet,
        }
    }

    fn part(&self, id: u64) -> Option<Bytes> {
        self.open
            .iter()
            .chain(self.listed.iter().rev().take(PART_SEGMENTS))
            .flat_map(|s| s.parts.iter())
            .find(|p| p.id == id)
            .map(|p| p.bytes.clone())
    }

    fn segment(&self, msn: u64) -> Option<Vec<Bytes>> {
        let segment = self.listed.iter().rev().find(|s| s.msn == msn)?;
        (!segment.parts.is_empty()).then(|| segment.parts.iter().map(|p| p.bytes.clone()).collect())
    }

    fn init(&self, n: u64) -> Option<Bytes> {
        self.inits
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, b)| b.clone())
    }

    /// The longest a blocking request is held: three target durations, but never so long that
    /// the HTTP server's 30 s limit on starting an answer would cut it off.
    fn hold(&self) -> Duration {
        Duration::from_secs(3 * self.target_duration.max(1)).min(MAX_HOLD)
    }
}

/// Which playlist to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// LL-HLS, from memory: parts, preload hint, server control; a delta update if `skip`.
    Live { skip: bool },
    /// On disk: whole segments only (for players and processes without the live edge).
    Disk,
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The playlist text of `edge` (pure: the playlist rules in one place).
fn render(edge: &Edge, flavor: Flavor) -> String {
    let live = matches!(flavor, Flavor::Live { .. });
    let target = edge.target_duration.max(1);
    let skip_until = 6 * target;
    let mut text = String::with_capacity(2048);
    let _ = write!(
        text,
        "#EXTM3U\n#EXT-X-VERSION:{}\n#EXT-X-TARGETDURATION:{target}\n",
        if live { 9 } else { 7 }
    );
    if live {
        let _ = write!(
            text,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={skip_until}.0,PART-HOLD-BACK={:.3}\n\
             #EXT-X-PART-INF:PART-TARGET={:.3}\n",
            seconds(PART_HOLD_BACK),
            seconds(PART_TARGET)
        );
    }
    let first = edge.listed.front().map_or_else(
        || edge.open.as_ref().map_or(edge.next_msn, |s| s.msn),
        |s| s.msn,
    );
    let _ = writeln!(text, "#EXT-X-MEDIA-SEQUENCE:{first}");
    if edge.discontinuity_sequence > 0 {
        let _ = writeln!(
            text,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            edge.discontinuity_sequence
        );
    }
    // A delta update leaves out the segments that end more than the skip boundary before the
    // end of the playlist.
    let mut skipped = 0;
    if flavor == (Flavor::Live { skip: true }) {
        let total: Duration = edge.listed.iter().map(|s| s.duration).sum::<Duration>()
            + edge
                .open
                .iter()
                .flat_map(|s| s.parts.iter())
                .map(|p| p.duration)
                .sum::<Duration>();
        let boundary = Duration::from_secs(skip_until);
        let mut remaining = total;
        for segment in &edge.listed {
            if remaining.saturating_sub(segment.duration) < boundary {
                break;
            }
            remaining -= segment.duration;
            skipped += 1;
        }
        if skipped > 0 {
            let _ = writeln!(text, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
        }
    }
    let with_parts = edge.listed.len().saturating_sub(PART_SEGMENTS);
    let mut map = None;
    let open = edge.open.iter().filter(|s| live && !s.parts.is_empty());
    for (i, segment) in edge.listed.iter().enumerate().skip(skipped) {
        header(&mut text, segment, &mut map);
        if live && i >= with_parts {
            parts(&mut text, segment);
        }
        let _ = write!(
            text,
            "#EXTINF:{:.5},\n{}\n",
            seconds(segment.duration),
            HlsFile::Segment(segment.msn).name()
        );
    }
    for segment in open {
        header(&mut text, segment, &mut map);
        parts(&mut text, segment);
    }
    if edge.ended {
        text.push_str("#EXT-X-ENDLIST\n");
    } else if live {
        let _ = writeln!(
            text,
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
            HlsFile::Part(edge.next_part).name()
        );
    }
    text
}

/// The tags before a segment's parts and `#EXTINF`: discontinuity, init section, date.
fn header(text: &mut String, segment: &Segment, map: &mut Option<u64>) {
    if segment.discontinuity {
        text.push_str("#EXT-X-DISCONTINUITY\n");
    }
    if *map != Some(segment.init) {
        let _ = writeln!(
            text,
            "#EXT-X-MAP:URI=\"{}\"",
            HlsFile::Init(segment.init).name()
        );
        *map = Some(segment.init);
    }
    let _ = writeln!(text, "#EXT-X-PROGRAM-DATE-TIME:{}", date_time(segment.date));
}

fn parts(text: &mut String, segment: &Segment) {
    for part in &segment.parts {
        let _ = writeln!(
            text,
            "#EXT-X-PART:DURATION={:.5},URI=\"{}\"{}",
            seconds(part.duration),
            HlsFile::Part(part.id).name(),
            if part.independent {
                ",INDEPENDENT=YES"
            } else {
                ""
            }
        );
    }
}

/// `2026-12-04T18:50:00.123Z` (ISO 8601, as `EXT-X-PROGRAM-DATE-TIME` takes it).
fn date_time(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// The live edge of one stream, shared by its writer (the stream's muxer thread) and the HTTP
/// side, which waits on it for parts and playlist updates.
#[derive(Debug)]
pub struct LiveHls {
    edge: Mutex<Edge>,
    changed: watch::Sender<u64>,
}

impl LiveHls {
    fn new() -> Self {
        Self {
            edge: Mutex::new(Edge {
                target_duration: 1,
                ..Edge::default()
            }),
            changed: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Edge> {
        // Every update leaves the edge consistent before it can panic, so a poisoned lock is
        // still safe to read.
        self.edge
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn update(&self, f: impl FnOnce(&mut Edge)) {
        f(&mut self.lock());
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// The LL-HLS playlist, once it has what `request` asks for (at once without `msn`).
    pub async fn playlist(&self, request: PlaylistRequest) -> Result<String, Blocked> {
        let flavor = Flavor::Live { skip: request.skip };
        let Some(msn) = request.msn else {
            return Ok(render(&self.lock(), flavor));
        };
        let hold = self.lock().hold();
        self.wait(hold, |edge| match edge.has(msn, request.part) {
            Has::Yes => Some(Ok(render(edge, flavor))),
            Has::TooFar => Some(Err(Blocked::TooFarAhead)),
            Has::NotYet => None,
        })
        .await
        .unwrap_or(Err(Blocked::TimedOut))
    }

    /// A part's bytes. The next part (the one the playlist hints at) is waited for; a part that
    /// is no longer (or never was) listed is `None`.
    pub async fn part(&self, id: u64) -> Option<Bytes> {
        let hold = {
            let edge = self.lock();
            if let Some(bytes) = edge.part(id) {
                return Some(bytes);
            }
            if id != edge.next_part || edge.ended {
                return None;
            }
            edge.hold()
        };
        self.wait(hold, |edge| {
            if let Some(bytes) = edge.part(id) {
                Some(Some(bytes))
            } else if edge.next_part > id || edge.ended {
                Some(None)
            } else {
                None
            }
        })
        .await
        .flatten()
    }

    /// A recent segment's bytes from memory (its parts), if it is still held there.
    #[must_use]
    pub fn segment(&self, msn: u64) -> Option<Vec<Bytes>> {
        self.lock().segment(msn)
    }

    /// An init section still in use, from memory.
    #[must_use]
    pub fn init(&self, n: u64) -> Option<Bytes> {
        self.lock().init(n)
    }

    /// The live playlist as it is now (for the fuzz harness).
    #[doc(hidden)]
    pub(crate) fn render_now(&self, skip: bool) -> String {
        render(&self.lock(), Flavor::Live { skip })
    }

    /// Whether the stream is over (the playlist has `#EXT-X-ENDLIST`).
    #[must_use]
    pub fn ended(&self) -> bool {
        self.lock().ended
    }

    /// Waits up to `hold` for `ready` to give an answer, re-asking after every change.
    async fn wait<T>(
        &self,
        hold: Duration,
        mut ready: impl FnMut(&Edge) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + hold;
        let mut changes = self.changed.subscribe();
        loop {
            // Subscribed (or marked seen) before looking, so no change between the look and
            // the wait is missed.
            changes.mark_unchanged();
            if let Some(answer) = ready(&self.lock()) {
                return Some(answer);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                // The writer is gone: what is there now is all there will be.
                Ok(Err(_)) => return ready(&self.lock()),
                Err(_) => return None,
            }
        }
    }
}

/// The part being received from the muxer.
#[derive(Debug)]
struct Building {
    start: Duration,
    duration: Option<Duration>,
    fragment_start: bool,
    bytes: Vec<u8>,
}

/// Writes one stream's segments and playlist, and feeds its [`LiveHls`].
#[derive(Debug)]
pub(crate) struct HlsWriter {
    dir: PathBuf,
    window: usize,
    live: Arc<LiveHls>,
    /// The open segment's file.
    file: Option<BufWriter<File>>,
    /// The open segment's first frame time (stream time), to measure it.
    open_start: Duration,
    /// Parts in the open segment.
    open_parts: usize,
    building: Option<Building>,
    /// Segments out of the window still on disk (deleted after [`DEFAULT_GRACE`]).
    retired: VecDeque<(u64, u64)>,
    /// The current session's init section number, once the muxer sent it.
    init: Option<u64>,
    next_init: u64,
    next_is_discontinuity: bool,
    /// Stream time 0 of this session on the wall clock.
    epoch: Option<SystemTime>,
    ended: bool,
}

impl HlsWriter {
    /// Prepares `dir` (created if missing, stale files of an earlier run removed).
    pub(crate) fn create(dir: &Path, window: usize) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path
                .extension()
                .is_some_and(|e| e == "ts" || e == "m4s" || e == "mp4" || e == "m3u8" || e == "tmp")
            {
                let _ = fs::remove_file(path);
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            window: window.max(1),
            live: Arc::new(LiveHls::new()),
            file: None,
            open_start: Duration::ZERO,
            open_parts: 0,
            building: None,
            retired: VecDeque::new(),
            init: None,
            next_init: 0,
            next_is_discontinuity: false,
            epoch: None,
            ended: false,
        })
    }

    /// The live edge this writer feeds.
    pub(crate) fn live(&self) -> Arc<LiveHls> {
        Arc::clone(&self.live)
    }

    /// The session's init section (`ftyp`+`moov`).
    pub(crate) fn init_section(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.ended {
            return Ok(());
        }
        let n = self.next_init;
        self.next_init += 1;
        write_atomically(&self.dir, &HlsFile::Init(n).name(), bytes)?;
        let bytes = Bytes::copy_from_slice(bytes);
        self.live.update(|edge| edge.inits.push((n, bytes)));
        self.init = Some(n);
        Ok(())
    }

    /// A chunk starts: `fragment_start` when it starts a fragment (on a keyframe), i.e. a
    /// segment. `start` is its first frame's time, `duration` its length when the muxer says.
    pub(crate) fn begin_part(
        &mut self,
        start: Duration,
        duration: Option<Duration>,
        fragment_start: bool,
    ) -> io::Result<()> {
        if self.ended {
            return Ok(());
        }
        self.end_part()?;
        self.building = Some(Building {
            start,
            duration,
            fragment_start,
            bytes: Vec::with_capacity(64 * 1024),
        });
        Ok(())
    }

    /// Bytes of the chunk being received.
    pub(crate) fn append(&mut self, bytes: &[u8]) {
        if let Some(part) = &mut self.building {
            part.bytes.extend_from_slice(bytes);
        }
    }

    /// The chunk is complete: it becomes a part, listed at once.
    pub(crate) fn end_part(&mut self) -> io::Result<()> {
        let Some(part) = self.building.take() else {
            return Ok(());
        };
        let Some(init) = self.init else {
            return Ok(()); // nothing can be decoded without the init section
        };
        let epoch = *self.epoch.get_or_insert_with(|| {
            let end = part.start + part.duration.unwrap_or_default();
            SystemTime::now().checked_sub(end).unwrap_or(UNIX_EPOCH)
        });
        let duration = part.duration.unwrap_or(PART_DURATION);
        let segment_open = self.file.is_some();
        // A publisher that sends no keyframes (a keyframe interval of "never") still gets
        // segments, so parts in memory and playlist lines stay bounded; such a segment does
        // not start on a keyframe (the playlist does not claim independent segments).
        let full = self.open_parts >= MAX_SEGMENT_PARTS;
        if part.fragment_start || !segment_open || full {
            self.close_segment(Some(part.start))?;
            self.open_segment(part.start, epoch, init)?;
        }
        self.open_parts += 1;
        if let Some(file) = &mut self.file {
            file.write_all(&part.bytes)?;
        }
        // A part lives for a few segments: give back what its buffer reserved beyond it.
        let mut kept = part.bytes;
        kept.shrink_to_fit();
        let bytes = Bytes::from(kept);
        let independent = part.fragment_start;
        self.live.update(|edge| {
            let id = edge.next_part;
            edge.next_part += 1;
            if let Some(open) = &mut edge.open {
                open.duration = (part.start + duration).saturating_sub(self.open_start);
                open.parts.push(Part {
                    id,
                    duration,
                    independent,
                    bytes,
                });
            }
        });
        Ok(())
    }

    /// The current publisher's timeline ends; the next segment starts a new one (with the new
    /// session's init section).
    pub(crate) fn discontinuity(&mut self) -> io::Result<()> {
        self.end_part()?;
        self.close_segment(None)?;
        self.next_is_discontinuity = true;
        self.init = None;
        self.epoch = None;
        Ok(())
    }

    /// The stream is over: the last segment is listed and the playlist says so.
    pub(crate) fn finish(&mut self) -> io::Result<()> {
        if self.ended {
            return Ok(());
        }
        self.end_part()?;
        self.close_segment(None)?;
        self.ended = true;
        self.live.update(|edge| edge.ended = true);
        self.write_playlist()
    }

    fn open_segment(&mut self, start: Duration, epoch: SystemTime, init: u64) -> io::Result<()> {
        let discontinuity = std::mem::take(&mut self.next_is_discontinuity);
        let msn = self.live.lock().next_msn;
        let file = File::create(self.dir.join(HlsFile::Segment(msn).name()))?;
        self.file = Some(BufWriter::with_capacity(64 * 1024, file));
        self.open_start = start;
        self.open_parts = 0;
        self.live.update(|edge| {
            edge.next_msn += 1;
            edge.open = Some(Segment {
                msn,
                date: epoch + start,
                duration: Duration::ZERO,
                // The very first segment follows nothing.
                discontinuity: discontinuity && (edge.listed.len() + self.retired.len()) > 0,
                init,
                parts: Vec::new(),
            });
        });
        Ok(())
    }

    /// Closes the open segment (ending at `end`, or where its last part ends) and lists it.
    fn close_segment(&mut self, end: Option<Duration>) -> io::Result<()> {
        let Some(mut file) = self.file.take() else {
            return Ok(());
        };
        file.flush()?;
        drop(file);
        let open_start = self.open_start;
        let window = self.window;
        let mut gone = Vec::new();
        self.live.update(|edge| {
            let Some(mut segment) = edge.open.take() else {
                return;
            };
            if let Some(end) = end {
                segment.duration = segment.duration.max(end.saturating_sub(open_start));
            }
            edge.target_duration = edge
                .target_duration
                .max(segment.duration.as_secs_f64().round() as u64)
                .max(1);
            edge.listed.push_back(segment);
            // Parts of older segments are no longer listed: their bytes are on disk.
            let keep = edge.listed.len().saturating_sub(PART_SEGMENTS + 1);
            if let Some(old) = edge.listed.get_mut(keep) {
                old.parts = Vec::new();
            }
            while edge.listed.len() > window {
                if let Some(segment) = edge.listed.pop_front() {
                    if segment.discontinuity {
                        edge.discontinuity_sequence += 1;
                    }
                    gone.push((segment.msn, segment.init));
                }
            }
            let oldest_init = edge.listed.front().map(|s| s.init);
            if let Some(oldest) = oldest_init {
                edge.inits.retain(|(n, _)| *n >= oldest);
            }
        });
        self.retired.extend(gone);
        while self.retired.len() > DEFAULT_GRACE {
            if let Some((msn, init)) = self.retired.pop_front() {
                let _ = fs::remove_file(self.dir.join(HlsFile::Segment(msn).name()));
                let still_used = self.retired.iter().any(|(_, i)| *i == init)
                    || self
                        .live
                        .lock()
                        .listed
                        .front()
                        .is_some_and(|s| s.init <= init);
                if !still_used {
                    let _ = fs::remove_file(self.dir.join(HlsFile::Init(init).name()));
                }
            }
        }
        self.write_playlist()
    }

    fn write_playlist(&self) -> io::Result<()> {
        let text = render(&self.live.lock(), Flavor::Disk);
        write_atomically(&self.dir, PLAYLIST, text.as_bytes())
    }
}

/// Readers must never see a half-written file: write aside, then rename over.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    fs::write(&tmp, bytes)?;
    fs::rename(tmp, dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn playlist(dir: &Path) -> String {
        fs::read_to_string(dir.join(PLAYLIST)).unwrap()
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("siaran-hls-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    /// Feeds `parts` parts of 200 ms from `from`, the first of them starting a fragment.
    fn segment(hls: &mut HlsWriter, from: u64, parts: u64) {
        for i in 0..parts {
            let start = ms(from + 200 * i);
            hls.begin_part(start, Some(ms(200)), i == 0).unwrap();
            hls.append(b"moof");
            hls.append(&[i as u8]);
            hls.end_part().unwrap();
        }
    }

    fn live(hls: &HlsWriter, skip: bool) -> String {
        render(&hls.live.lock(), Flavor::Live { skip })
    }

    #[test]
    fn names_are_the_directory_contract() {
        for file in [
            HlsFile::Playlist,
            HlsFile::Init(3),
            HlsFile::Segment(12),
            HlsFile::Part(345),
            HlsFile::Thumbnail,
        ] {
            assert_eq!(HlsFile::parse(&file.name()), Some(file));
        }
        for name in [
            "../x.m4s",
            ".m4s",
            "a.m4s",
            "p.m4s",
            "pp1.m4s",
            "1.ts",
            "init-.mp4",
            "init-x.mp4",
            "index.m3u8.tmp",
            "..",
            "1.m4s/..",
            "%2e%2e",
            "-1.m4s",
            "99999999999999999999.m4s",
        ] {
            assert_eq!(HlsFile::parse(name), None, "{name}");
        }
    }

    #[test]
    fn parts_are_listed_as_they_come_and_a_fragment_starts_a_segment() {
        let dir = temp_dir("parts");
        let mut hls = HlsWriter::create(&dir, 6).unwrap();
        hls.init_section(b"ftypmoov").unwrap();
        segment(&mut hls, 0, 3);
        let text = live(&hls, false);
        assert!(text.contains("#EXT-X-MAP:URI=\"init-0.mp4\"\n"), "{text}");
        assert!(
            text.contains("#EXT-X-PART:DURATION=0.20000,URI=\"p0.m4s\",INDEPENDENT=YES\n"),
            "{text}"
        );
        assert!(
            text.contains("URI=\"p2.m4s\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p3.m4s\"\n"),
            "{text}"
        );
        assert!(
            !text.contains("#EXTINF"),
            "the open segment has parts only: {text}"
        );
        assert!(text.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.0,PART-HOLD-BACK=0.750\n"), "{text}");
        assert!(
            text.contains("#EXT-X-PART-INF:PART-TARGET=0.250\n"),
            "{text}"
        );

        segment(&mut hls, 600, 2);
        let text = live(&hls, false);
        assert!(text.contains("#EXTINF:0.60000,\n0.m4s\n"), "{text}");
        assert!(text.contains("URI=\"p3.m4s\",INDEPENDENT=YES\n"), "{text}");
        assert_eq!(
            fs::read(dir.join("0.m4s")).unwrap(),
            b"moof\0moof\x01moof\x02"
        );
        assert_eq!(fs::read(dir.join("init-0.mp4")).unwrap(), b"ftypmoov");
        let disk = playlist(&dir);
        assert!(
            disk.contains("#EXTINF:0.60000,\n0.m4s\n") && !disk.contains("PART"),
            "{disk}"
        );
        assert!(disk.contains("#EXT-X-PROGRAM-DATE-TIME:"), "{disk}");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn the_window_slides_parts_go_to_disk_and_old_files_go() {
        let dir = temp_dir("window");
        let mut hls = HlsWriter::create(&dir, 3).unwrap();
        hls.init_section(b"init").unwrap();
        for i in 0..10 {
            segment(&mut hls, i * 2000, 10);
        }
        let text = live(&hls, false);
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:6\n"), "{text}");
        assert!(text.contains("6.m4s") && text.contains("8.m4s") && !text.contains("\n5.m4s"));
        // Parts only for the last two complete segments and the open one.
        assert!(!text.contains("URI=\"p60.m4s\""), "{text}");
        assert!(text.contains("URI=\"p70.m4s\",INDEPENDENT=YES"), "{text}");
        assert!(
            hls.live.lock().segment(6).is_none(),
            "older segments are read from disk"
        );
        assert_eq!(hls.live.lock().segment(8).map(|b| b.len()), Some(10));
        assert!(
            dir.join("3.m4s").exists(),
            "kept a little after leaving the playlist"
        );
        assert!(!dir.join("2.m4s").exists());
        assert!(dir.join("init-0.mp4").exists(), "still used");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn takeover_marks_a_discontinuity_with_its_own_init_and_the_end_is_listed() {
        let dir = temp_dir("takeover");
        let mut hls = HlsWriter::create(&dir, 5).unwrap();
        hls.init_section(b"one").unwrap();
        segment(&mut hls, 0, 5);
        hls.discontinuity().unwrap();
        hls.init_section(b"two").unwrap();
        segment(&mut hls, 0, 10);
        segment(&mut hls, 2000, 10);
        hls.finish().unwrap();

        let text = playlist(&dir);
        assert!(
            text.contains("0.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-1.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:"),
            "{text}"
        );
        assert!(text.ends_with("2.m4s\n#EXT-X-ENDLIST\n"), "{text}");
        let text = live(&hls, false);
        assert!(
            text.ends_with("#EXT-X-ENDLIST\n") && !text.contains("PRELOAD-HINT"),
            "{text}"
        );
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_delta_update_skips_what_is_older_than_the_skip_boundary() {
        let dir = temp_dir("skip");
        let mut hls = HlsWriter::create(&dir, 20).unwrap();
        hls.init_section(b"init").unwrap();
        for i in 0..10 {
            segment(&mut hls, i * 2000, 10); // 2 s segments: TARGETDURATION 2, boundary 12 s
        }
        let full = live(&hls, false);
        let delta = live(&hls, true);
        // 9 complete segments (18 s) and the open one's 2 s: 8 s can go, i.e. 4 segments.
        assert!(
            delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n"),
            "{delta}"
        );
        assert!(
            !delta.contains("\n3.m4s") && delta.contains("\n4.m4s"),
            "{delta}"
        );
        assert!(
            full.contains("\n0.m4s") && !full.contains("EXT-X-SKIP"),
            "{full}"
        );
        assert!(
            delta.contains("#EXT-X-MAP"),
            "the first segment listed names its init: {delta}"
        );
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn blocking_requests_wait_for_their_part_and_far_ones_are_refused() {
        let dir = temp_dir("block");
        let mut hls = HlsWriter::create(&dir, 6).unwrap();
        hls.init_section(b"init").unwrap();
        segment(&mut hls, 0, 2);
        let edge = hls.live.lock();
        assert_eq!(edge.has(0, Some(1)), Has::Yes);
        assert_eq!(edge.has(0, Some(2)), Has::NotYet);
        assert_eq!(edge.has(0, None), Has::NotYet, "segment 0 is not complete");
        assert_eq!(edge.has(1, Some(0)), Has::NotYet);
        assert_eq!(edge.has(2, None), Has::TooFar);
        assert_eq!(edge.has(0, Some(2 + ADVANCE_PART_LIMIT)), Has::TooFar);
        drop(edge);
        segment(&mut hls, 400, 1);
        let edge = hls.live.lock();
        assert_eq!(edge.has(0, None), Has::Yes);
        assert_eq!(
            edge.has(0, Some(7)),
            Has::Yes,
            "a complete segment has all its parts"
        );
        drop(edge);
        let _ = fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_waiting_reload_and_the_hinted_part_are_answered_when_the_part_exists() {
        let dir = temp_dir("wait");
        let mut hls = HlsWriter::create(&dir, 6).unwrap();
        hls.init_section(b"init").unwrap();
        segment(&mut hls, 0, 1);
        let live = hls.live();
        let reload = tokio::spawn({
            let live = Arc::clone(&live);
            async move {
                live.playlist(PlaylistRequest {
                    msn: Some(0),
                    part: Some(1),
                    skip: false,
                })
                .await
            }
        });
        let hinted = tokio::spawn({
            let live = Arc::clone(&live);
            async move { live.part(1).await }
        });
        tokio::task::yield_now().await;
        assert!(!reload.is_finished() && !hinted.is_finished());
        hls.begin_part(ms(200), Some(ms(200)), false).unwrap();
        hls.append(b"second");
        hls.end_part().unwrap();
        let text = reload.await.unwrap().unwrap();
        assert!(text.contains("URI=\"p1.m4s\""), "{text}");
        assert_eq!(hinted.await.unwrap().as_deref(), Some(&b"second"[..]));
        assert_eq!(
            live.part(7).await,
            None,
            "not the next part: not waited for"
        );
        assert_eq!(
            live.playlist(PlaylistRequest {
                msn: Some(9),
                part: None,
                skip: false
            })
            .await,
            Err(Blocked::TooFarAhead)
        );
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_stream_without_keyframes_still_gets_bounded_segments() {
        let dir = temp_dir("nokeys");
        let mut hls = HlsWriter::create(&dir, 6).unwrap();
        hls.init_section(b"init").unwrap();
        segment(&mut hls, 0, 1);
        for i in 1..200 {
            hls.begin_part(ms(200 * i), Some(ms(200)), false).unwrap();
            hls.append(b"p");
            hls.end_part().unwrap();
        }
        let edge = hls.live.lock();
        assert!(
            edge.listed.len() >= 3,
            "cut every {MAX_SEGMENT_PARTS} parts"
        );
        assert!(
            edge.open
                .as_ref()
                .is_some_and(|s| s.parts.len() <= MAX_SEGMENT_PARTS)
        );
        assert_eq!(edge.listed[1].parts.len(), MAX_SEGMENT_PARTS);
        drop(edge);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn program_date_time_is_iso_8601() {
        let t = UNIX_EPOCH + Duration::from_millis(1_796_410_200_123);
        assert_eq!(date_time(t), "2026-12-04T18:50:00.123Z");
        assert_eq!(
            date_time(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
