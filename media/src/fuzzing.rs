//! Entry points for the fuzz targets in `fuzz/` (and the regression tests of what they find):
//! each runs the code the server runs on untrusted input, synchronously, without sockets,
//! threads or GStreamer. Not part of the media core's API.

use crate::avc::AvcConfig;
use crate::flv::{self, AudioTag, VideoTag};
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
        let targets: [(&str, Target); 2] = [
            ("rtmp_session", super::rtmp_session),
            ("flv_tags", super::flv_tags),
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
}
