//! The FLV tag bodies RTMP carries: what codec a video or audio message holds, whether it is a
//! keyframe or a decoder configuration, and a reader for FLV files (tests and the bench publish
//! from them).
//!
//! An RTMP audio/video message payload is exactly an FLV tag body, so one parser serves both.

use std::fmt;

/// What a video message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VideoTag<'a> {
    /// `AVCDecoderConfigurationRecord` (SPS/PPS).
    AvcConfig(&'a [u8]),
    /// One access unit of length-prefixed NAL units.
    AvcFrame {
        keyframe: bool,
        /// Composition time offset (PTS − DTS) in milliseconds.
        cts_ms: i32,
        data: &'a [u8],
    },
    /// End of sequence, video info or command frames: nothing to mux.
    Ignored,
    /// A codec Siaran does not pass through.
    Unsupported(Codec),
}

/// What an audio message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AudioTag<'a> {
    /// `AudioSpecificConfig`.
    AacConfig(&'a [u8]),
    /// One raw AAC frame.
    AacFrame(&'a [u8]),
    Ignored,
    Unsupported(Codec),
}

/// A codec named in an FLV tag, for messages about refused streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    H264,
    Aac,
    Other(&'static str),
}

impl Codec {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::H264 => "H.264",
            Self::Aac => "AAC",
            Self::Other(name) => name,
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const FLV_CODEC_AVC: u8 = 7;
const FLV_SOUND_AAC: u8 = 10;
/// Enhanced RTMP marks a video tag with a FourCC header by the top bit.
const EX_HEADER: u8 = 0x80;

pub(crate) fn parse_video(body: &[u8]) -> VideoTag<'_> {
    let Some(&first) = body.first() else {
        return VideoTag::Ignored;
    };
    if first & EX_HEADER != 0 {
        let fourcc = body.get(1..5).unwrap_or_default();
        return VideoTag::Unsupported(Codec::Other(match fourcc {
            b"hvc1" => "HEVC",
            b"av01" => "AV1",
            b"vp09" => "VP9",
            b"avc1" => "H.264 (enhanced RTMP)",
            _ => "an unknown enhanced-RTMP codec",
        }));
    }
    let frame_type = first >> 4;
    let codec = first & 0x0f;
    if codec != FLV_CODEC_AVC {
        return VideoTag::Unsupported(Codec::Other(match codec {
            2 => "Sorenson H.263",
            3 | 6 => "Screen Video",
            4 | 5 => "VP6",
            12 => "HEVC",
            _ => "an unknown video codec",
        }));
    }
    // Frame type 5 is video info / command: no picture.
    if frame_type == 5 || body.len() < 5 {
        return VideoTag::Ignored;
    }
    let cts = i32::from_be_bytes([0, body[2], body[3], body[4]]);
    // Sign-extend the 24-bit value.
    let cts_ms = (cts << 8) >> 8;
    let data = &body[5..];
    match body[1] {
        0 => VideoTag::AvcConfig(data),
        1 if !data.is_empty() => VideoTag::AvcFrame {
            keyframe: frame_type == 1,
            cts_ms,
            data,
        },
        _ => VideoTag::Ignored,
    }
}

pub(crate) fn parse_audio(body: &[u8]) -> AudioTag<'_> {
    let Some(&first) = body.first() else {
        return AudioTag::Ignored;
    };
    let format = first >> 4;
    if format != FLV_SOUND_AAC {
        return AudioTag::Unsupported(Codec::Other(match format {
            0 | 3 => "PCM",
            1 => "ADPCM",
            2 | 14 => "MP3",
            4..=6 => "Nellymoser",
            7 => "G.711 A-law",
            8 => "G.711 mu-law",
            9 => "an enhanced-RTMP audio codec",
            11 => "Speex",
            _ => "an unknown audio codec",
        }));
    }
    match (body.get(1), body.get(2..)) {
        (Some(0), Some(config)) if !config.is_empty() => AudioTag::AacConfig(config),
        (Some(1), Some(frame)) if !frame.is_empty() => AudioTag::AacFrame(frame),
        _ => AudioTag::Ignored,
    }
}

/// Whether a video message starts a GOP: a decoder can begin here.
#[must_use]
pub(crate) fn is_video_keyframe(body: &[u8]) -> bool {
    matches!(parse_video(body), VideoTag::AvcFrame { keyframe: true, .. })
}

/// The kind of an FLV file tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    Audio,
    Video,
    Script,
}

/// One tag of an FLV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTag {
    pub kind: TagKind,
    /// Milliseconds (decode time).
    pub timestamp: u32,
    /// The tag body, as RTMP carries it.
    pub body: Vec<u8>,
}

impl FileTag {
    /// Whether this is a video tag that starts a GOP.
    #[must_use]
    pub fn is_keyframe(&self) -> bool {
        self.kind == TagKind::Video && is_video_keyframe(&self.body)
    }
}

/// Why an FLV file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FlvFileError {
    #[error("not an FLV file")]
    NotFlv,
    #[error("truncated FLV tag at byte {0}")]
    Truncated(usize),
}

/// Reads every tag of an FLV file held in memory.
pub fn read_file(bytes: &[u8]) -> Result<Vec<FileTag>, FlvFileError> {
    if bytes.len() < 9 || &bytes[..3] != b"FLV" {
        return Err(FlvFileError::NotFlv);
    }
    let header_len = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) as usize;
    // Header, then PreviousTagSize0.
    let mut at = header_len + 4;
    let mut tags = Vec::new();
    while at + 11 <= bytes.len() {
        let h = &bytes[at..at + 11];
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let timestamp = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let body_start = at + 11;
        let body = bytes
            .get(body_start..body_start + size)
            .ok_or(FlvFileError::Truncated(at))?;
        let kind = match h[0] & 0x1f {
            8 => Some(TagKind::Audio),
            9 => Some(TagKind::Video),
            18 => Some(TagKind::Script),
            _ => None,
        };
        if let Some(kind) = kind {
            tags.push(FileTag {
                kind,
                timestamp,
                body: body.to_vec(),
            });
        }
        at = body_start + size + 4;
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avc_keyframes_and_configs_are_told_apart() {
        assert_eq!(
            parse_video(&[0x17, 0, 0, 0, 0, 1, 2]),
            VideoTag::AvcConfig(&[1, 2])
        );
        assert_eq!(
            parse_video(&[0x17, 1, 0, 0, 0x21, 9]),
            VideoTag::AvcFrame {
                keyframe: true,
                cts_ms: 0x21,
                data: &[9]
            }
        );
        assert!(matches!(
            parse_video(&[0x27, 1, 0xff, 0xff, 0xff, 9]),
            VideoTag::AvcFrame {
                keyframe: false,
                cts_ms: -1,
                ..
            }
        ));
    }

    #[test]
    fn other_codecs_are_named() {
        assert_eq!(
            parse_video(&[0x90, b'h', b'v', b'c', b'1']),
            VideoTag::Unsupported(Codec::Other("HEVC"))
        );
        assert_eq!(
            parse_video(&[0x12, 0]),
            VideoTag::Unsupported(Codec::Other("Sorenson H.263"))
        );
        assert_eq!(
            parse_audio(&[0x2f, 1, 2]),
            AudioTag::Unsupported(Codec::Other("MP3"))
        );
    }

    #[test]
    fn garbage_never_panics() {
        for len in 0..8 {
            for byte in [0u8, 0x17, 0x27, 0xaf, 0xff] {
                let body = vec![byte; len];
                let _ = parse_video(&body);
                let _ = parse_audio(&body);
            }
        }
        assert!(read_file(b"FLV").is_err());
    }
}
