//! RTMP's chunk stream read back into messages, with every byte it holds bounded.
//!
//! `rml_rtmp`'s reader waits for a whole chunk before it uses any of it (a client announcing a
//! chunk size of 2^31 makes it buffer up to a whole 16 MiB message), reserves the declared
//! length of a message at its first byte, keeps every chunk stream id it ever saw, and shares
//! one partial message between interleaved chunk streams. This reader copies payload bytes
//! into their message as they arrive (its own buffer never holds more than one chunk header),
//! refuses a message longer than the [`Limits`] of the connection's stage before taking any of
//! it, counts the declared bytes of every message being assembled against a budget, and
//! tracks at most [`MAX_CHUNK_STREAMS`] chunk streams. A message completes in order of its
//! last chunk, so interleaved audio and video come out whole.

use bytes::{Bytes, BytesMut};

/// The longest non-media message (commands, metadata, control) accepted at any stage; a
/// `connect` is a few hundred bytes, `@setDataFrame` metadata a few KB.
pub(crate) const MAX_CONTROL_MESSAGE: u32 = 64 * 1024;
/// Chunk streams a connection may use (encoders use a handful: control, commands, audio, video).
pub(crate) const MAX_CHUNK_STREAMS: usize = 64;
/// The chunk size a connection starts with (RTMP 1.0, 5.4.1).
const INITIAL_CHUNK_SIZE: u32 = 128;
/// Largest chunk size RTMP allows (above 0xFFFFFF they are all equivalent).
const MAX_CHUNK_SIZE: u32 = 0x7fff_ffff;
/// Basic header (3) + type 0 message header (11) + extended timestamp (4).
const MAX_HEADER: usize = 18;
/// A message's buffer starts at most this large and grows with what arrives.
const MAX_INITIAL_CAPACITY: usize = 1024 * 1024;
const EXTENDED: u32 = 0x00ff_ffff;

/// What a connection may send at its current stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Largest Set Chunk Size accepted.
    pub(crate) max_chunk_size: u32,
    /// Longest audio or video message.
    pub(crate) max_media_message: u32,
    /// Declared bytes of all messages being assembled at once.
    pub(crate) max_buffered: usize,
}

impl Limits {
    /// Before a publish is authorized: what `connect`, `createStream` and `publish` need.
    pub(crate) const SETUP: Self = Self {
        max_chunk_size: 64 * 1024,
        max_media_message: MAX_CONTROL_MESSAGE,
        max_buffered: MAX_CONTROL_MESSAGE as usize,
    };
    /// An authorized publisher: RTMP's own chunk size limit, and media messages up to 8 MiB (a
    /// 4K H.264 keyframe at 50 Mbit/s is 1–3 MB; nginx-rtmp's default `max_message` is 1 MB).
    pub(crate) const PUBLISHING: Self = Self {
        max_chunk_size: MAX_CHUNK_SIZE,
        max_media_message: 8 * 1024 * 1024,
        max_buffered: 8 * 1024 * 1024 + 2 * MAX_CONTROL_MESSAGE as usize,
    };
}

/// One reassembled RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) type_id: u8,
    /// The message stream (NetStream) it belongs to.
    pub(crate) stream_id: u32,
    /// Milliseconds.
    pub(crate) timestamp: u32,
    pub(crate) data: Bytes,
}

/// Why the chunk stream was refused; the connection ends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ChunkError {
    #[error("chunk stream {0} continues a header it never sent")]
    NoPreviousHeader(u32),
    #[error("a {length}-byte message of type {type_id} is above the limit of {limit} bytes")]
    MessageTooLarge {
        type_id: u8,
        length: u32,
        limit: u32,
    },
    #[error("messages in progress would hold more than {0} bytes")]
    TooMuchBuffered(usize),
    #[error("more than {MAX_CHUNK_STREAMS} chunk streams")]
    TooManyChunkStreams,
    #[error("chunk size {size} refused (at most {limit} at this stage)")]
    ChunkSize { size: u32, limit: u32 },
}

#[derive(Debug, Default)]
struct ChunkStream {
    id: u32,
    timestamp: u32,
    /// The last timestamp field (the extended value when it was 0xFFFFFF): a type 3 header
    /// that starts a message adds it again.
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// The last header carried an extended timestamp, so type 3 headers do too.
    extended: bool,
    /// The message being assembled; `length - partial.len()` bytes are still to come.
    partial: Option<BytesMut>,
}

/// Reads one connection's chunk stream.
#[derive(Debug)]
pub(crate) struct ChunkReader {
    chunk_size: u32,
    streams: Vec<ChunkStream>,
    header: [u8; MAX_HEADER],
    header_len: usize,
    /// Inside a chunk's payload: which stream, and how many of its bytes are left.
    payload: Option<(usize, u32)>,
    /// Declared lengths of the messages being assembled.
    buffered: usize,
}

impl Default for ChunkReader {
    fn default() -> Self {
        Self {
            chunk_size: INITIAL_CHUNK_SIZE,
            streams: Vec::new(),
            header: [0; MAX_HEADER],
            header_len: 0,
            payload: None,
            buffered: 0,
        }
    }
}

impl ChunkReader {
    /// Bytes this reader holds for messages in progress (at most their declared lengths).
    pub(crate) fn buffered(&self) -> usize {
        self.buffered + self.header_len
    }

    /// Applies a Set Chunk Size from the peer.
    pub(crate) fn set_chunk_size(&mut self, size: u32, limits: &Limits) -> Result<(), ChunkError> {
        let limit = limits.max_chunk_size.min(MAX_CHUNK_SIZE);
        if size == 0 || size > limit {
            return Err(ChunkError::ChunkSize { size, limit });
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Drops the message in progress on a chunk stream (an Abort message).
    pub(crate) fn abort(&mut self, chunk_stream: u32) {
        if let Some(stream) = self.streams.iter_mut().find(|s| s.id == chunk_stream)
            && stream.partial.take().is_some()
        {
            self.buffered -= stream.length as usize;
        }
    }

    /// Consumes `input` until a message completes (returned; call again with the rest) or the
    /// input is used up (`None`; what was read is kept for the next call).
    pub(crate) fn next(
        &mut self,
        input: &mut &[u8],
        limits: &Limits,
    ) -> Result<Option<Message>, ChunkError> {
        loop {
            if let Some((index, left)) = self.payload {
                if input.is_empty() {
                    return Ok(None);
                }
                let n = (left as usize).min(input.len());
                let (taken, rest) = input.split_at(n);
                *input = rest;
                let stream = &mut self.streams[index];
                let Some(partial) = stream.partial.as_mut() else {
                    // Unreachable: a chunk payload is only read for a message in progress.
                    self.payload = None;
                    continue;
                };
                partial.extend_from_slice(taken);
                let left = left - n as u32;
                if left > 0 {
                    self.payload = Some((index, left));
                    continue;
                }
                self.payload = None;
                if partial.len() == stream.length as usize {
                    let data = stream.partial.take().unwrap_or_default().freeze();
                    self.buffered -= stream.length as usize;
                    return Ok(Some(Message {
                        type_id: stream.type_id,
                        stream_id: stream.stream_id,
                        timestamp: stream.timestamp,
                        data,
                    }));
                }
                continue;
            }
            loop {
                let needed = self.header_needed();
                if self.header_len >= needed {
                    break;
                }
                if input.is_empty() {
                    return Ok(None);
                }
                let n = (needed - self.header_len).min(input.len());
                let (taken, rest) = input.split_at(n);
                *input = rest;
                self.header[self.header_len..self.header_len + n].copy_from_slice(taken);
                self.header_len += n;
            }
            let message = self.start_chunk(limits);
            self.header_len = 0;
            if let Some(message) = message? {
                return Ok(Some(message));
            }
        }
    }

    fn find(&self, id: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.id == id)
    }

    /// Length of the chunk header being read, as far as its bytes so far tell.
    fn header_needed(&self) -> usize {
        let header = &self.header[..self.header_len];
        let Some(&first) = header.first() else {
            return 1;
        };
        let basic = basic_header_len(first);
        let format = first >> 6;
        let base = basic + [11, 7, 3, 0][usize::from(format)];
        if header.len() < base {
            return base;
        }
        let extended = if format == 3 {
            self.find(chunk_stream_id(header))
                .is_some_and(|i| self.streams[i].extended)
        } else {
            header[basic..basic + 3] == [0xff; 3]
        };
        base + if extended { 4 } else { 0 }
    }

    /// Applies a complete chunk header; a zero-length message completes at once.
    fn start_chunk(&mut self, limits: &Limits) -> Result<Option<Message>, ChunkError> {
        let header = self.header;
        let header = &header[..self.header_len];
        let format = header[0] >> 6;
        let id = chunk_stream_id(header);
        let mut at = basic_header_len(header[0]);
        let index = match (self.find(id), format) {
            (Some(index), _) => index,
            (None, 0) => {
                if self.streams.len() >= MAX_CHUNK_STREAMS {
                    return Err(ChunkError::TooManyChunkStreams);
                }
                self.streams.push(ChunkStream {
                    id,
                    ..ChunkStream::default()
                });
                self.streams.len() - 1
            }
            (None, _) => return Err(ChunkError::NoPreviousHeader(id)),
        };
        let stream = &mut self.streams[index];
        if format != 3 && stream.partial.take().is_some() {
            // A new message before the last one ended: the unfinished one is dropped, as an
            // Abort would drop it.
            self.buffered -= stream.length as usize;
        }
        let mut field = |len: usize| {
            let value = header[at..at + len]
                .iter()
                .fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
            at += len;
            value
        };
        let (timestamp_field, length, type_id) = match format {
            0 | 1 => (Some(field(3)), Some(field(3)), Some(field(1) as u8)),
            2 => (Some(field(3)), None, None),
            _ => (None, None, None),
        };
        let stream_id = (format == 0).then(|| {
            let b = &header[at..at + 4];
            at += 4;
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        });
        let extended_value = (header.len() >= at + 4).then(|| {
            let b = &header[at..at + 4];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        });
        let in_progress = stream.partial.is_some();
        if let Some(field) = timestamp_field {
            stream.extended = field == EXTENDED;
            let value = if stream.extended {
                extended_value.unwrap_or(field)
            } else {
                field
            };
            stream.delta = value;
            stream.timestamp = if format == 0 {
                value
            } else {
                stream.timestamp.wrapping_add(value)
            };
        } else if !in_progress {
            stream.timestamp = stream.timestamp.wrapping_add(stream.delta);
        }
        if let Some(length) = length {
            stream.length = length;
        }
        if let Some(type_id) = type_id {
            stream.type_id = type_id;
        }
        if let Some(stream_id) = stream_id {
            stream.stream_id = stream_id;
        }
        if !in_progress {
            let limit = match stream.type_id {
                8 | 9 => limits.max_media_message,
                _ => MAX_CONTROL_MESSAGE.min(limits.max_media_message),
            };
            if stream.length > limit {
                return Err(ChunkError::MessageTooLarge {
                    type_id: stream.type_id,
                    length: stream.length,
                    limit,
                });
            }
            if stream.length == 0 {
                return Ok(Some(Message {
                    type_id: stream.type_id,
                    stream_id: stream.stream_id,
                    timestamp: stream.timestamp,
                    data: Bytes::new(),
                }));
            }
            let length = stream.length as usize;
            if self.buffered + length > limits.max_buffered {
                return Err(ChunkError::TooMuchBuffered(limits.max_buffered));
            }
            self.buffered += length;
            stream.partial = Some(BytesMut::with_capacity(length.min(MAX_INITIAL_CAPACITY)));
        }
        let have = stream.partial.as_ref().map_or(0, BytesMut::len);
        let remaining = stream.length.saturating_sub(have as u32);
        self.payload = Some((index, remaining.min(self.chunk_size)));
        Ok(None)
    }
}

fn basic_header_len(first: u8) -> usize {
    match first & 0x3f {
        0 => 2,
        1 => 3,
        _ => 1,
    }
}

/// The chunk stream id of a basic header (at least [`basic_header_len`] bytes).
fn chunk_stream_id(header: &[u8]) -> u32 {
    match header[0] & 0x3f {
        0 => u32::from(header[1]) + 64,
        1 => u32::from(header[2]) * 256 + u32::from(header[1]) + 64,
        id => u32::from(id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A type 0 chunk header on chunk stream `csid` (2..=63).
    fn type0(csid: u8, timestamp: u32, length: u32, type_id: u8, stream_id: u32) -> Vec<u8> {
        let mut out = vec![csid];
        out.extend_from_slice(&timestamp.min(EXTENDED).to_be_bytes()[1..]);
        out.extend_from_slice(&length.to_be_bytes()[1..]);
        out.push(type_id);
        out.extend_from_slice(&stream_id.to_le_bytes());
        if timestamp >= EXTENDED {
            out.extend_from_slice(&timestamp.to_be_bytes());
        }
        out
    }

    fn read_all(reader: &mut ChunkReader, mut input: &[u8], limits: &Limits) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(message) = reader.next(&mut input, limits).unwrap() {
            out.push(message);
        }
        assert!(input.is_empty());
        out
    }

    #[test]
    fn a_message_split_over_chunks_is_reassembled_byte_by_byte() {
        let payload: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let mut bytes = type0(4, 1000, 300, 9, 1);
        bytes.extend_from_slice(&payload[..128]);
        bytes.push(0xc4);
        bytes.extend_from_slice(&payload[128..256]);
        bytes.push(0xc4);
        bytes.extend_from_slice(&payload[256..]);
        let mut reader = ChunkReader::default();

        let mut messages = Vec::new();
        for byte in &bytes {
            messages.extend(read_all(
                &mut reader,
                std::slice::from_ref(byte),
                &Limits::SETUP,
            ));
        }

        assert_eq!(
            messages,
            [Message {
                type_id: 9,
                stream_id: 1,
                timestamp: 1000,
                data: Bytes::from(payload)
            }]
        );
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn interleaved_chunk_streams_each_complete_their_own_message() {
        let mut reader = ChunkReader::default();
        let mut bytes = type0(6, 0, 200, 9, 1);
        bytes.extend_from_slice(&[1; 128]);
        bytes.extend(type0(4, 0, 2, 8, 1));
        bytes.extend_from_slice(&[2, 2]);
        bytes.push(0xc6);
        bytes.extend_from_slice(&[1; 72]);

        let messages = read_all(&mut reader, &bytes, &Limits::SETUP);

        assert_eq!(messages.len(), 2);
        assert_eq!((messages[0].type_id, messages[0].data.len()), (8, 2));
        assert_eq!((messages[1].type_id, messages[1].data.len()), (9, 200));
    }

    #[test]
    fn timestamps_follow_deltas_and_extended_values() {
        let mut reader = ChunkReader::default();
        let mut bytes = type0(4, 0x0100_0000, 1, 8, 1);
        bytes.push(0);
        // Type 2: a delta of 40.
        bytes.extend_from_slice(&[0x84, 0, 0, 40, 0]);
        // Type 3 starting a message: the same delta again.
        bytes.extend_from_slice(&[0xc4, 0]);

        let times: Vec<u32> = read_all(&mut reader, &bytes, &Limits::SETUP)
            .iter()
            .map(|m| m.timestamp)
            .collect();

        assert_eq!(times, [0x0100_0000, 0x0100_0028, 0x0100_0050]);
    }

    #[test]
    fn a_big_message_before_authorization_is_refused_at_its_header() {
        let mut reader = ChunkReader::default();
        let mut input = &type0(3, 0, 16 * 1024 * 1024 - 1, 20, 0)[..];

        let error = reader.next(&mut input, &Limits::SETUP).unwrap_err();

        assert!(
            matches!(error, ChunkError::MessageTooLarge { .. }),
            "{error}"
        );
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn a_publisher_may_send_a_large_keyframe_but_no_large_command() {
        let mut reader = ChunkReader::default();
        let mut keyframe = type0(6, 0, 4 * 1024 * 1024, 9, 1);
        keyframe.extend_from_slice(&[0; 128]);
        let command = type0(3, 0, 1024 * 1024, 20, 0);

        assert_eq!(
            reader.next(&mut &keyframe[..], &Limits::PUBLISHING),
            Ok(None)
        );
        assert_eq!(reader.buffered(), 4 * 1024 * 1024);
        assert!(matches!(
            reader.next(&mut &command[..], &Limits::PUBLISHING),
            Err(ChunkError::MessageTooLarge { type_id: 20, .. })
        ));
    }

    #[test]
    fn huge_chunk_sizes_are_refused_before_authorization_only() {
        let mut reader = ChunkReader::default();

        assert!(
            reader
                .set_chunk_size(0x8000_0000, &Limits::PUBLISHING)
                .is_err()
        );
        assert!(reader.set_chunk_size(1 << 31, &Limits::SETUP).is_err());
        assert!(reader.set_chunk_size(0, &Limits::SETUP).is_err());
        assert!(reader.set_chunk_size(4096, &Limits::SETUP).is_ok());
        assert!(reader.set_chunk_size(1 << 20, &Limits::PUBLISHING).is_ok());
    }

    #[test]
    fn partial_messages_share_one_budget() {
        let mut reader = ChunkReader::default();
        let mut bytes = type0(4, 0, 40 * 1024, 8, 1);
        bytes.extend_from_slice(&[0; 128]);
        bytes.extend(type0(6, 0, 40 * 1024, 9, 1));

        assert_eq!(
            reader.next(&mut &bytes[..], &Limits::SETUP),
            Err(ChunkError::TooMuchBuffered(Limits::SETUP.max_buffered))
        );
    }

    #[test]
    fn chunk_streams_are_capped_and_must_start_with_a_full_header() {
        let mut reader = ChunkReader::default();
        assert_eq!(
            reader.next(&mut &[0x45u8, 0, 0, 0, 0, 0, 1, 8][..], &Limits::SETUP),
            Err(ChunkError::NoPreviousHeader(5))
        );
        let mut bytes = Vec::new();
        for csid in 0..=MAX_CHUNK_STREAMS as u8 {
            // Two-byte basic headers: chunk streams 64 and up.
            bytes.extend_from_slice(&[0, csid]);
            bytes.extend_from_slice(&type0(3, 0, 0, 8, 1)[1..]);
        }
        let mut input = &bytes[..];
        let mut result = Ok(None);
        for _ in 0..=MAX_CHUNK_STREAMS {
            result = reader.next(&mut input, &Limits::SETUP);
        }
        assert_eq!(result, Err(ChunkError::TooManyChunkStreams));
    }

    #[test]
    fn an_abort_frees_the_message_in_progress() {
        let mut reader = ChunkReader::default();
        let mut bytes = type0(4, 0, 1000, 8, 1);
        bytes.extend_from_slice(&[0; 10]);
        assert_eq!(reader.next(&mut &bytes[..], &Limits::SETUP), Ok(None));
        assert_eq!(reader.buffered(), 1000);

        reader.abort(4);

        assert_eq!(reader.buffered(), 0);
    }
}
