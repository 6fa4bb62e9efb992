//! Entry points for the fuzz targets in `fuzz/` (and the regression tests of what they find):
//! each runs the code the server runs on untrusted input, synchronously, without sockets,
//! threads or GStreamer. Not part of the media core's API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::avc::AvcConfig;
use crate::flv::{self, AudioTag, VideoTag};
use crate::hls::{HlsWriter, PLAYLIST};
use crate::protocol::{Event, Protocol};

/// What a connection does with its input, as [`session`](crate::session) does it: the
/// handshake, the chunk stream and its commands through [`Protocol`], `connect` to `live` and
/// any `publish` accepted, and every media message parsed as the stream thread parses it.
///
/// The input is fed twice, whole and then cut into small reads, and both must lead to the same
/// events: how TCP splits bytes must never change what they mean.
pub fn rtmp_session(data: &[u8]) {
    let whole = session_events(data, &[usize::MAX]);
    let pieces = session_events(data, &[1, 7, 2, 131, 3, 1536, 5, 4096, 11]);
    assert_eq!(
        whole, pieces,
        "events differ when the input arrives in pieces"
    );
}

/// An event, comparable even when a transaction id is NaN.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Connect(u64, String),
    Publish(u32, u64, String),
    Play(u32, u64),
    Unpublish,
    Media(bool, u32, Vec<u8>),
    Closed,
}

fn session_events(data: &[u8], reads: &[usize]) -> Vec<Seen> {
    let mut protocol = Protocol::new();
    let mut media = MediaParser::default();
    let mut seen = Vec::new();
    let mut rest = data;
    for &size in reads.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (read, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        let mut events = Vec::new();
        if protocol.feed(read, &mut events).is_err() {
            // What came before the error in the same read still counts (a request is always
            // the last event of its batch, so these are media).
            seen.extend(events.iter().map(unanswered));
            seen.push(Seen::Closed);
            return seen;
        }
        let _ = protocol.take_output();
        while !events.is_empty() {
            let mut more = Vec::new();
            for event in events {
                let result = match event {
                    Event::Connect { transaction, app } => {
                        seen.push(Seen::Connect(transaction.to_bits(), app.clone()));
                        if app.trim_matches('/') != crate::APP_NAME {
                            // Refused, and the connection closes, as the session does.
                            let _ = protocol.reject(transaction, 0, "Rejected", "Unknown app.");
                            seen.push(Seen::Closed);
                            return seen;
                        }
                        protocol.accept_connect(transaction, &mut more)
                    }
                    Event::Publish {
                        stream,
                        transaction,
                        key,
                    } => {
                        seen.push(Seen::Publish(stream, transaction.to_bits(), key));
                        protocol.accept_publish(stream, &mut more)
                    }
                    Event::Play {
                        stream,
                        transaction,
                    } => {
                        seen.push(Seen::Play(stream, transaction.to_bits()));
                        seen.push(Seen::Closed);
                        return seen;
                    }
                    Event::Unpublish => {
                        seen.push(Seen::Unpublish);
                        seen.push(Seen::Closed);
                        return seen;
                    }
                    Event::Media {
                        video,
                        timestamp,
                        data,
                    } => {
                        media.message(video, &data);
                        seen.push(Seen::Media(video, timestamp, data.to_vec()));
                        Ok(())
                    }
                };
                if result.is_err() {
                    seen.extend(more.iter().map(unanswered));
                    seen.push(Seen::Closed);
                    return seen;
                }
            }
            events = more;
        }
        let _ = protocol.take_output();
    }
    seen
}

/// An event as seen, without acting on it.
fn unanswered(event: &Event) -> Seen {
    match event {
        Event::Connect { transaction, app } => Seen::Connect(transaction.to_bits(), app.clone()),
        Event::Publish {
            stream,
            transaction,
            key,
        } => Seen::Publish(*stream, transaction.to_bits(), key.clone()),
        Event::Play {
            stream,
            transaction,
        } => Seen::Play(*stream, transaction.to_bits()),
        Event::Unpublish => Seen::Unpublish,
        Event::Media {
            video,
            timestamp,
            data,
        } => Seen::Media(*video, *timestamp, data.to_vec()),
    }
}

/// FLV tag bodies: the first byte says audio (odd) or video (even), the rest is the body,
/// parsed as the stream thread parses a publisher's messages; then the input as an FLV file.
pub fn flv_tags(data: &[u8]) {
    let mut media = MediaParser::default();
    if let Some((&kind, body)) = data.split_first() {
        // A configuration first, so frames are converted with it too.
        media.message(kind & 1 == 0, body);
        for tag in body.split(|b| *b == 0xff).take(16) {
            media.message(kind & 2 == 0, tag);
        }
    }
    if let Ok(tags) = flv::read_file(data) {
        for tag in tags {
            media.message(tag.kind == flv::TagKind::Video, &tag.body);
            let _ = tag.is_keyframe();
        }
    }
}

/// The segment and playlist writer driven by a publisher-controlled sequence of muxer output:
/// init sections, parts that do or do not start a fragment, with timestamps that jump forwards
/// and backwards or durations the muxer did not give, bytes outside any part, parts never ended,
/// takeovers (discontinuities) and the end. After every step both playlists must be ones a
/// player accepts: on disk, consecutive media sequence numbers inside the window, every
/// `EXTINF` within `EXT-X-TARGETDURATION` (rounded, RFC 8216 §4.3.3.1), every listed segment
/// and init section present, nothing after `EXT-X-ENDLIST`; the live (LL-HLS) one also with
/// part numbers that only grow and a preload hint past the last part.
///
/// Each input step is a tag byte and its operands; the input runs out where it runs out.
pub fn hls_writer(data: &[u8]) {
    const WINDOW: usize = 4;
    let dir = fuzz_dir();
    let mut hls = HlsWriter::create(&dir, WINDOW).expect("the fuzz directory is writable");
    let live = hls.live();
    let mut input = data;
    let mut pts_ms: u64 = 0;
    let mut ended = false;
    let mut checked = None;
    let mut parts_unchecked = 0usize;
    while let Some((&tag, rest)) = input.split_first() {
        input = rest;
        let write = "writes to the fuzz directory";
        match tag % 8 {
            0 => hls.init_section(&[tag; 8]).expect(write),
            // A part: its time moves by a signed 16-bit step in milliseconds; a duration byte
            // (0: none given); whether it starts a fragment; then it ends unless the tag says.
            1..=3 => {
                let Some((step, rest)) = input.split_first_chunk::<2>() else {
                    break;
                };
                let Some((&length, rest)) = rest.split_first() else {
                    break;
                };
                input = rest;
                pts_ms = pts_ms.saturating_add_signed(i64::from(i16::from_be_bytes(*step)));
                let duration = (length > 0).then(|| Duration::from_millis(u64::from(length) * 4));
                hls.begin_part(Duration::from_millis(pts_ms), duration, tag % 8 == 1)
                    .expect(write);
                hls.append(&[tag; 4]);
                if tag & 0x80 == 0 {
                    hls.end_part().expect(write);
                }
            }
            // Raw bytes straight from the input, inside or outside a part.
            4 => {
                let Some((&len, rest)) = input.split_first() else {
                    break;
                };
                let raw = &rest[..usize::from(len).min(rest.len())];
                input = &rest[raw.len()..];
                hls.append(raw);
            }
            5 => hls.discontinuity().expect(write),
            6 => hls.end_part().expect(write),
            _ => {
                hls.finish().expect(write);
                ended = true;
            }
        }
        // The live playlists after every change of structure and every eighth part (rendering
        // them after every part would make the run quadratic in the parts of a segment).
        parts_unchecked += usize::from((1..=3).contains(&(tag % 8)));
        if !(1..=3).contains(&(tag % 8)) || parts_unchecked >= 8 {
            parts_unchecked = 0;
            check_live_playlist(&dir, &live.render_now(false), WINDOW);
            check_live_playlist(&dir, &live.render_now(true), WINDOW);
        }
        // The playlist is replaced by a rename whenever it changes: a new inode is a new
        // playlist (checking each step's unchanged file again would cost most of the run).
        let written = playlist_version(&dir);
        if written != checked {
            check_playlist(&dir, WINDOW, ended);
            checked = written;
        }
    }
    hls.finish().expect("writes to the fuzz directory");
    check_playlist(&dir, WINDOW, true);
    check_live_playlist(&dir, &live.render_now(false), WINDOW);
}

/// What an LL-HLS player relies on in the live playlist: parts numbered upwards, the preload
/// hint after the last of them, every init section it names on disk (or in memory).
fn check_live_playlist(dir: &Path, text: &str, window: usize) {
    let mut last_part = None;
    let mut segments = 0usize;
    for line in text.lines() {
        if let Some(attrs) = line.strip_prefix("#EXT-X-PART:") {
            let id = part_id(attrs);
            assert!(last_part < Some(id), "parts out of order:\n{text}");
            last_part = Some(id);
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            let id = part_id(attrs);
            assert!(
                last_part < Some(id),
                "a hint that is not past the last part:\n{text}"
            );
        } else if let Some(uri) = line.strip_prefix("#EXT-X-MAP:URI=") {
            let name = uri.trim_matches('"');
            assert!(
                dir.join(name).is_file(),
                "init section {name} is missing:\n{text}"
            );
        } else if line.ends_with(".m4s") && !line.starts_with('#') {
            segments += 1;
        }
    }
    assert!(
        segments <= window,
        "{segments} segments in a window of {window}:\n{text}"
    );
}

fn part_id(attrs: &str) -> u64 {
    let uri = attrs
        .split(',')
        .find_map(|a| a.strip_prefix("URI=\"p"))
        .expect("a part URI");
    uri.trim_end_matches("\"")
        .trim_end_matches(".m4s")
        .parse()
        .expect("a numbered part")
}

fn playlist_version(dir: &Path) -> Option<(u64, i64, i64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dir.join(PLAYLIST)).ok()?;
    Some((m.ino(), m.mtime(), m.mtime_nsec(), m.size()))
}

/// One directory per fuzzing process, in memory where the system offers it.
fn fuzz_dir() -> PathBuf {
    let base = Path::new("/dev/shm");
    let base = if base.is_dir() {
        base.to_owned()
    } else {
        std::env::temp_dir()
    };
    base.join(format!("siaran-fuzz-hls-{}", std::process::id()))
}

/// What a player reading the playlist right now relies on.
fn check_playlist(dir: &Path, window: usize, ended: bool) {
    let Ok(text) = std::fs::read_to_string(dir.join(PLAYLIST)) else {
        // Nothing is listed before the first segment closes.
        return;
    };
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("#EXTM3U"), "{text}");
    let mut target = None;
    let mut sequence = None;
    let mut segments = 0usize;
    let mut extinf = None;
    let mut saw_end = false;
    for line in lines {
        assert!(!saw_end, "a line after #EXT-X-ENDLIST:\n{text}");
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            target = Some(v.parse::<u64>().expect("an integer target duration"));
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            sequence = Some(v.parse::<u64>().expect("an integer media sequence"));
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let seconds: f64 = v.trim_end_matches(',').parse().expect("a decimal duration");
            let target = target.expect("the target duration precedes the first segment");
            assert!(
                seconds.round() as u64 <= target,
                "EXTINF {seconds} exceeds the target duration {target}:\n{text}"
            );
            extinf = Some(seconds);
        } else if line == "#EXT-X-ENDLIST" {
            saw_end = true;
        } else if let Some(uri) = line.strip_prefix("#EXT-X-MAP:URI=") {
            let name = uri.trim_matches('"');
            assert!(
                dir.join(name).is_file(),
                "init section {name} is missing:\n{text}"
            );
        } else if !line.starts_with('#') {
            assert!(extinf.take().is_some(), "a URI without EXTINF:\n{text}");
            let expected =
                sequence.expect("the media sequence precedes the segments") + segments as u64;
            assert_eq!(
                line,
                format!("{expected}.m4s"),
                "segments out of sequence:\n{text}"
            );
            assert!(
                dir.join(line).is_file(),
                "listed segment {line} is not on disk:\n{text}"
            );
            segments += 1;
        }
    }
    assert!(
        segments <= window,
        "{segments} segments listed in a window of {window}"
    );
    assert!(
        segments > 0 || saw_end,
        "a playlist without segments:\n{text}"
    );
    if ended {
        assert!(
            saw_end,
            "the stream ended but the playlist does not say so:\n{text}"
        );
    }
}

/// The stream thread's parsing of media messages, without the pipeline behind it.
#[derive(Default)]
struct MediaParser {
    avc: Option<AvcConfig>,
}

impl MediaParser {
    fn message(&mut self, video: bool, body: &[u8]) {
        if video {
            match flv::parse_video(body) {
                VideoTag::AvcConfig(record) => {
                    if let Ok(config) = AvcConfig::parse(record) {
                        self.avc = Some(config);
                    }
                }
                VideoTag::AvcFrame { keyframe, data, .. } => {
                    if let Some(config) = &self.avc {
                        let _ = config.to_byte_stream(data, keyframe);
                    }
                }
                VideoTag::Ignored | VideoTag::Unsupported(_) => {}
            }
        } else {
            let _ = matches!(flv::parse_audio(body), AudioTag::AacFrame(_));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every input a fuzz target ever crashed on, kept in `fuzz/regressions/<target>/`, runs
    /// through its target again (a file there is all a new regression test takes).
    #[test]
    fn inputs_that_once_crashed_a_fuzz_target_no_longer_do() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
        type Target = fn(&[u8]);
        let targets: [(&str, Target); 3] = [
            ("rtmp_session", super::rtmp_session),
            ("flv_tags", super::flv_tags),
            ("hls_writer", super::hls_writer),
        ];
        let mut ran = 0;
        for (target, run) in targets {
            let Ok(entries) = std::fs::read_dir(root.join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                run(&std::fs::read(&path).unwrap());
                ran += 1;
            }
        }
        assert!(
            ran > 0,
            "no regression inputs found under {}",
            root.display()
        );
    }

    /// The writer's seed corpus (a 2 s GOP stream, a takeover, audio only, time going
    /// backwards) passes the playlist checks as it is.
    #[test]
    fn the_hls_writer_seeds_produce_valid_playlists() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/hls_writer");
        let mut ran = 0;
        for entry in std::fs::read_dir(&corpus).unwrap() {
            super::hls_writer(&std::fs::read(entry.unwrap().path()).unwrap());
            ran += 1;
        }
        assert!(ran >= 5, "expected the seeds under {}", corpus.display());
    }

    /// The playlist checks catch what a player would refuse.
    #[test]
    fn the_playlist_checks_refuse_a_segment_longer_than_the_target() {
        let dir = std::env::temp_dir().join(format!("siaran-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("0.ts"), b"").unwrap();
        std::fs::write(
            dir.join(crate::hls::PLAYLIST),
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.600,\n0.ts\n",
        )
        .unwrap();
        let refused = std::panic::catch_unwind(|| super::check_playlist(&dir, 4, false));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            refused.is_err(),
            "a 2.6 s segment under a 2 s target passed"
        );
    }
}
