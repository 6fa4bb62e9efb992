//! The HLS output of one stream: MPEG-TS segments cut on keyframes, and the live playlist that
//! lists them as soon as they close.
//!
//! The muxer hands every chunk of transport stream it produces to [`HlsWriter::write_packets`],
//! which splits it where a video keyframe starts (the first packet of a keyframe carries the
//! random access indicator) and [writes](HlsWriter::write) the parts. A keyframe closes the
//! open segment: its file is complete, so it is listed at once (hlssink2 lists a segment only a
//! GOP later). The playlist is a sliding
//! window; files that slid out of it are deleted a little later, so that a player that fetched
//! the previous playlist can still get them. A publisher taking over the stream starts a new
//! timeline, marked `#EXT-X-DISCONTINUITY`; the end of the stream writes `#EXT-X-ENDLIST`.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Name of the playlist file in a stream's directory.
pub const PLAYLIST: &str = "index.m3u8";
/// Name of the thumbnail file in a stream's directory.
pub const THUMBNAIL: &str = "thumbnail.jpg";

/// Segments listed in the live playlist.
pub(crate) const DEFAULT_WINDOW: usize = 6;
/// Segments kept on disk after they left the playlist.
const DEFAULT_GRACE: usize = 3;
/// A keyframe closes a segment only once it is at least this long, so a publisher with very
/// short GOPs does not produce a flood of tiny files.
const MIN_SEGMENT: Duration = Duration::from_millis(900);
/// Audio-only streams have no keyframes to cut on; they are cut on time.
const AUDIO_ONLY_SEGMENT: Duration = Duration::from_secs(2);

const TS_PACKET: usize = 188;
const PAT_PID: u16 = 0;

/// A segment that is complete and listed.
#[derive(Debug, Clone)]
struct Segment {
    sequence: u64,
    duration: Duration,
    discontinuity: bool,
}

/// The segment being written.
#[derive(Debug)]
struct OpenSegment {
    sequence: u64,
    file: BufWriter<File>,
    start: Duration,
    end: Duration,
    discontinuity: bool,
}

/// Writes one stream's segments and playlist.
#[derive(Debug)]
pub(crate) struct HlsWriter {
    dir: PathBuf,
    window: usize,
    listed: VecDeque<Segment>,
    open: Option<OpenSegment>,
    next_sequence: u64,
    /// Discontinuities that have slid out of the window (`#EXT-X-DISCONTINUITY-SEQUENCE`).
    discontinuity_sequence: u64,
    next_is_discontinuity: bool,
    target_duration: u64,
    /// The last PAT and PMT seen, repeated at the head of a segment that lacks them so every
    /// segment can be decoded on its own.
    psi: Psi,
    /// Whether the stream has video, i.e. whether keyframes decide the cuts.
    has_video: bool,
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
                .is_some_and(|e| e == "ts" || e == "m3u8" || e == "tmp")
            {
                let _ = fs::remove_file(path);
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            window: window.max(1),
            listed: VecDeque::new(),
            open: None,
            next_sequence: 0,
            discontinuity_sequence: 0,
            next_is_discontinuity: false,
            target_duration: 1,
            psi: Psi::default(),
            has_video: true,
            ended: false,
        })
    }

    /// Says whether the next publisher session has video (cuts on keyframes) or is audio-only.
    pub(crate) fn set_has_video(&mut self, has_video: bool) {
        self.has_video = has_video;
    }

    /// Appends a chunk of transport stream. `keyframe` marks a chunk that starts a video
    /// keyframe; `pts` is the chunk's presentation time, when known.
    pub(crate) fn write(
        &mut self,
        chunk: &[u8],
        keyframe: bool,
        pts: Option<Duration>,
    ) -> io::Result<()> {
        if self.ended {
            return Ok(());
        }
        self.psi.observe(chunk);
        let cut = match (&self.open, pts) {
            (None, _) => true,
            (Some(open), Some(pts)) => {
                let length = pts.saturating_sub(open.start);
                if self.has_video {
                    keyframe && length >= MIN_SEGMENT
                } else {
                    length >= AUDIO_ONLY_SEGMENT
                }
            }
            (Some(_), None) => false,
        };
        if cut {
            let start = pts.unwrap_or_default();
            self.close_open(Some(start))?;
            self.open_segment(start, chunk)?;
        }
        if let Some(open) = &mut self.open {
            open.file.write_all(chunk)?;
            if let Some(pts) = pts {
                open.end = open.end.max(pts);
            }
        }
        Ok(())
    }

    /// Appends transport stream packets in chunks that need not follow frames: the chunk is
    /// split where a video keyframe starts (the muxer marks its first packet as a random access
    /// point), and each part is [written](Self::write) in order. `pts` is the chunk's time.
    pub(crate) fn write_packets(&mut self, chunk: &[u8], pts: Option<Duration>) -> io::Result<()> {
        let mut from = 0;
        let mut keyframe = false;
        for (i, packet) in chunk.chunks_exact(TS_PACKET).enumerate() {
            let at = i * TS_PACKET;
            if at > from && starts_keyframe(packet) {
                self.write(&chunk[from..at], keyframe, pts)?;
                from = at;
                keyframe = true;
            } else if at == from && starts_keyframe(packet) {
                keyframe = true;
            }
        }
        if from < chunk.len() {
            self.write(&chunk[from..], keyframe, pts)?;
        }
        Ok(())
    }

    /// The current publisher's timeline ends; the next segment starts a new one.
    pub(crate) fn discontinuity(&mut self) -> io::Result<()> {
        self.close_open(None)?;
        if !self.listed.is_empty() {
            self.next_is_discontinuity = true;
        }
        self.psi = Psi::default();
        Ok(())
    }

    /// The stream is over: the last segment is listed and the playlist says so.
    pub(crate) fn finish(&mut self) -> io::Result<()> {
        if self.ended {
            return Ok(());
        }
        self.close_open(None)?;
        self.ended = true;
        self.write_playlist()
    }

    /// Closes the open segment (ending at `end`, or at the last timestamp written) and lists it.
    fn close_open(&mut self, end: Option<Duration>) -> io::Result<()> {
        let Some(mut open) = self.open.take() else {
            return Ok(());
        };
        open.file.flush()?;
        drop(open.file);
        let end = end.unwrap_or(open.end).max(open.end);
        let duration = end.saturating_sub(open.start);
        self.target_duration = self
            .target_duration
            .max(duration.as_secs_f64().round() as u64)
            .max(1);
        self.listed.push_back(Segment {
            sequence: open.sequence,
            duration,
            discontinuity: open.discontinuity,
        });
        while self.listed.len() > self.window {
            if let Some(gone) = self.listed.pop_front() {
                if gone.discontinuity {
                    self.discontinuity_sequence += 1;
                }
                if let Some(old) = gone.sequence.checked_sub(DEFAULT_GRACE as u64) {
                    let _ = fs::remove_file(self.segment_path(old));
                }
            }
        }
        self.write_playlist()
    }

    fn open_segment(&mut self, start: Duration, first_chunk: &[u8]) -> io::Result<()> {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let mut file =
            BufWriter::with_capacity(64 * 1024, File::create(self.segment_path(sequence))?);
        if !starts_with_pat(first_chunk) {
            file.write_all(&self.psi.pat)?;
            file.write_all(&self.psi.pmt)?;
        }
        self.open = Some(OpenSegment {
            sequence,
            file,
            start,
            end: start,
            discontinuity: std::mem::take(&mut self.next_is_discontinuity),
        });
        Ok(())
    }

    fn segment_path(&self, sequence: u64) -> PathBuf {
        self.dir.join(format!("{sequence}.ts"))
    }

    fn write_playlist(&self) -> io::Result<()> {
        let first = self.listed.front().map_or(0, |s| s.sequence);
        let mut text = String::with_capacity(512);
        let _ = write!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{first}\n",
            self.target_duration
        );
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                text,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        for segment in &self.listed {
            if segment.discontinuity {
                text.push_str("#EXT-X-DISCONTINUITY\n");
            }
            let _ = write!(
                text,
                "#EXTINF:{:.3},\n{}.ts\n",
                segment.duration.as_secs_f64(),
                segment.sequence
            );
        }
        if self.ended {
            text.push_str("#EXT-X-ENDLIST\n");
        }
        // Readers must never see a half-written playlist: write aside, then rename over.
        let tmp = self.dir.join("index.m3u8.tmp");
        fs::write(&tmp, text)?;
        fs::rename(tmp, self.dir.join(PLAYLIST))
    }
}

fn pid(packet: &[u8]) -> Option<u16> {
    (packet.len() >= 4 && packet[0] == 0x47)
        .then(|| (u16::from(packet[1] & 0x1f) << 8) | u16::from(packet[2]))
}

/// Whether a packet starts a payload unit flagged as a random access point: the first packet of
/// a video keyframe, as mpegtsmux writes it.
fn starts_keyframe(packet: &[u8]) -> bool {
    packet.len() >= 6
        && packet[0] == 0x47
        && packet[1] & 0x40 != 0
        && packet[3] & 0x20 != 0
        && packet[4] > 0
        && packet[5] & 0x40 != 0
}

fn starts_with_pat(chunk: &[u8]) -> bool {
    pid(chunk) == Some(PAT_PID)
}

/// The program tables of a transport stream.
#[derive(Debug, Default)]
struct Psi {
    pat: Vec<u8>,
    pmt: Vec<u8>,
    pmt_pid: Option<u16>,
}

impl Psi {
    fn observe(&mut self, chunk: &[u8]) {
        for packet in chunk.chunks_exact(TS_PACKET) {
            match pid(packet) {
                Some(PAT_PID) => {
                    self.pmt_pid = pmt_pid(packet);
                    self.pat = packet.to_vec();
                }
                Some(p) if Some(p) == self.pmt_pid => self.pmt = packet.to_vec(),
                _ => {}
            }
        }
    }
}

/// The PMT's PID named by the first program of a PAT packet.
fn pmt_pid(packet: &[u8]) -> Option<u16> {
    let payload_start = packet[1] & 0x40 != 0;
    let adaptation = (packet[3] >> 4) & 0x2 != 0;
    let mut at = 4;
    if adaptation {
        at += 1 + usize::from(*packet.get(4)?);
    }
    if payload_start {
        at += 1 + usize::from(*packet.get(at)?);
    }
    // table_id(1) section_length(2) transport_stream_id(2) version(1) section(1) last(1)
    let programs = packet.get(at + 8..)?;
    programs.chunks_exact(4).find_map(|p| {
        let number = u16::from_be_bytes([p[0], p[1]]);
        (number != 0).then(|| (u16::from(p[2] & 0x1f) << 8) | u16::from(p[3]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Option<Duration> {
        Some(Duration::from_millis(v))
    }

    fn playlist(dir: &Path) -> String {
        fs::read_to_string(dir.join(PLAYLIST)).unwrap()
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("siaran-hls-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_keyframe_lists_the_segment_it_closes() {
        let dir = temp_dir("keyframe");
        let mut hls = HlsWriter::create(&dir, 3).unwrap();
        hls.write(b"a", true, ms(0)).unwrap();
        hls.write(b"b", false, ms(1000)).unwrap();
        assert!(
            !dir.join(PLAYLIST).exists(),
            "nothing is listed before a segment closes"
        );

        hls.write(b"c", true, ms(2000)).unwrap();

        let text = playlist(&dir);
        assert!(text.contains("#EXTINF:2.000,\n0.ts\n"), "{text}");
        assert!(text.contains("#EXT-X-TARGETDURATION:2\n"), "{text}");
        assert!(!text.contains("1.ts"), "{text}");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn the_window_slides_and_old_files_go() {
        let dir = temp_dir("window");
        let mut hls = HlsWriter::create(&dir, 2).unwrap();
        for i in 0..10 {
            hls.write(b"x", true, ms(i * 2000)).unwrap();
        }
        let text = playlist(&dir);
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:7\n"), "{text}");
        assert!(text.contains("7.ts") && text.contains("8.ts") && !text.contains("6.ts"));
        assert!(
            dir.join("4.ts").exists(),
            "kept a little after leaving the playlist"
        );
        assert!(!dir.join("3.ts").exists());
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn takeover_marks_a_discontinuity_and_the_end_is_listed() {
        let dir = temp_dir("takeover");
        let mut hls = HlsWriter::create(&dir, 5).unwrap();
        hls.write(b"a", true, ms(0)).unwrap();
        hls.write(b"b", false, ms(1500)).unwrap();
        hls.discontinuity().unwrap();
        hls.write(b"c", true, ms(0)).unwrap();
        hls.write(b"d", true, ms(2000)).unwrap();
        hls.finish().unwrap();

        let text = playlist(&dir);
        assert!(
            text.contains("0.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\n1.ts\n"),
            "{text}"
        );
        assert!(text.ends_with("2.ts\n#EXT-X-ENDLIST\n"), "{text}");
        let _ = fs::remove_dir_all(dir);
    }

    /// A transport stream packet of `pid`; `keyframe` makes it the first of a keyframe.
    fn packet(pid: u16, keyframe: bool) -> Vec<u8> {
        let mut p = vec![0xffu8; TS_PACKET];
        p[0] = 0x47;
        p[1] = (if keyframe { 0x40 } else { 0 }) | (pid >> 8) as u8;
        p[2] = pid as u8;
        p[3] = if keyframe { 0x30 } else { 0x10 };
        if keyframe {
            p[4] = 7;
            p[5] = 0x50; // random access, PCR
        }
        p
    }

    #[test]
    fn chunks_are_split_where_a_keyframe_starts() {
        let dir = temp_dir("split");
        let mut hls = HlsWriter::create(&dir, 5).unwrap();
        let mut first = packet(0x100, true);
        first.extend(packet(0x101, false));
        hls.write_packets(&first, ms(0)).unwrap();
        // The tail of one GOP and the head of the next in one chunk.
        let mut chunk = packet(0x100, false);
        chunk.extend(packet(0x101, false));
        chunk.extend(packet(0x100, true));
        chunk.extend(packet(0x100, false));
        hls.write_packets(&chunk, ms(2000)).unwrap();

        let text = playlist(&dir);
        assert!(text.contains("#EXTINF:2.000,\n0.ts\n"), "{text}");
        assert_eq!(
            fs::metadata(dir.join("0.ts")).unwrap().len(),
            4 * TS_PACKET as u64,
            "the packets before the keyframe close the first segment"
        );
        hls.finish().unwrap();
        let mut expected = packet(0x100, true);
        expected.extend(packet(0x100, false));
        assert_eq!(fs::read(dir.join("1.ts")).unwrap(), expected);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn audio_only_streams_are_cut_on_time() {
        let dir = temp_dir("audio");
        let mut hls = HlsWriter::create(&dir, 5).unwrap();
        hls.set_has_video(false);
        for i in 0..100 {
            hls.write(b"a", false, ms(i * 50)).unwrap();
        }
        let text = playlist(&dir);
        assert!(text.contains("0.ts") && text.contains("1.ts"), "{text}");
        let _ = fs::remove_dir_all(dir);
    }
}
