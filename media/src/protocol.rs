//! The server side of one RTMP connection as a synchronous state machine: bytes in, events and
//! bytes to send out. No I/O, no clock the caller must drive, no async: the connection task
//! ([`session`](crate::session)) moves bytes, and the fuzz targets run exactly this code.
//!
//! The handshake and the outbound messages come from `rml_rtmp`; what a client sends is read by
//! this crate's bounded [`chunk`](crate::chunk) reader and [`amf0`](crate::amf0) decoder, never
//! by `rml_rtmp`'s (unbounded recursion, panics on short commands, buffers sized by the peer).
//! A request that needs the application's decision (`connect`, `publish`, `play`) stops the
//! processing of further input until [`Protocol::accept_connect`], [`Protocol::accept_publish`]
//! or [`Protocol::reject`] answers it, so answers keep the order of requests.

use std::time::Instant;

use bytes::Bytes;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::{PeerBandwidthLimitType, RtmpMessage, UserControlEventType};
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::time::RtmpTimestamp;

use crate::amf0::{self, AmfError};
use crate::chunk::{ChunkError, ChunkReader, Limits, Message};

/// Chunk size of what the server sends.
const OUT_CHUNK_SIZE: u32 = 4096;
/// What the client is asked to acknowledge (it only matters to clients that play).
const WINDOW_ACK_SIZE: u32 = 2_500_000;
const PEER_BANDWIDTH: u32 = 2_500_000;
/// NetStreams one connection may create (a publisher needs one).
const MAX_STREAMS: usize = 8;
/// Input held back while a request awaits the application (one socket read).
const MAX_PENDING: usize = 256 * 1024;
const FMS_VERSION: &str = "FMS/3,0,1,123";

/// What the client asked for or sent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    /// `connect` to an application; answer with `accept_connect` or `reject`.
    Connect { transaction: f64, app: String },
    /// `publish` on a NetStream; answer with `accept_publish` or `reject`.
    Publish {
        stream: u32,
        transaction: f64,
        key: String,
    },
    /// `play`: answer with `reject` (Siaran plays over HLS).
    Play { stream: u32, transaction: f64 },
    /// The publisher closed or deleted its stream.
    Unpublish,
    /// An FLV audio or video tag body from the publishing stream.
    Media {
        video: bool,
        timestamp: u32,
        data: Bytes,
    },
}

/// Why the connection must end.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProtocolError {
    #[error("RTMP handshake: {0}")]
    Handshake(#[from] rml_rtmp::handshake::HandshakeError),
    #[error("RTMP chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    #[error("RTMP command: {0}")]
    Amf(#[from] AmfError),
    #[error("malformed RTMP message: {0}")]
    Malformed(&'static str),
    #[error("more than {MAX_STREAMS} streams created")]
    TooManyStreams,
    #[error("input sent while a request is pending exceeds {MAX_PENDING} bytes")]
    TooMuchPending,
    #[error("serialising a reply: {0}")]
    Reply(String),
}

/// One connection's protocol state.
pub(crate) struct Protocol {
    /// Until the handshake completes.
    handshake: Option<Handshake>,
    reader: ChunkReader,
    writer: ChunkSerializer,
    limits: Limits,
    epoch: Instant,
    connected: bool,
    object_encoding: f64,
    streams: Vec<u32>,
    publishing: Option<u32>,
    /// The client's acknowledgement window, bytes received, bytes at the last acknowledgement.
    window: Option<u32>,
    received: u64,
    acknowledged: u64,
    /// A request awaits the application's answer.
    awaiting: bool,
    /// Input not yet processed (what arrived while a request awaited its answer).
    pending: Vec<u8>,
    output: Vec<u8>,
}

impl std::fmt::Debug for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protocol")
            .field("handshaking", &self.handshake.is_some())
            .field("connected", &self.connected)
            .field("publishing", &self.publishing)
            .field("awaiting", &self.awaiting)
            .finish_non_exhaustive()
    }
}

impl Default for Protocol {
    fn default() -> Self {
        Self::new()
    }
}

impl Protocol {
    pub(crate) fn new() -> Self {
        Self {
            handshake: Some(Handshake::new(PeerType::Server)),
            reader: ChunkReader::default(),
            writer: ChunkSerializer::new(),
            limits: Limits::SETUP,
            epoch: Instant::now(),
            connected: false,
            object_encoding: 0.0,
            streams: Vec::new(),
            publishing: None,
            window: None,
            received: 0,
            acknowledged: 0,
            awaiting: false,
            pending: Vec::new(),
            output: Vec::new(),
        }
    }

    /// The handshake is done.
    pub(crate) fn handshaken(&self) -> bool {
        self.handshake.is_none()
    }

    /// Bytes held for input not yet complete (messages in progress, input awaiting a decision).
    pub(crate) fn buffered(&self) -> usize {
        self.reader.buffered() + self.pending.len()
    }

    /// Bytes to send to the client, in order; empties the outbox.
    pub(crate) fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Processes what the client sent, appending what it asked for to `events`.
    pub(crate) fn feed(
        &mut self,
        input: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), ProtocolError> {
        self.received += input.len() as u64;
        if self.awaiting || !self.pending.is_empty() {
            if self.pending.len() + input.len() > MAX_PENDING {
                return Err(ProtocolError::TooMuchPending);
            }
            self.pending.extend_from_slice(input);
            return self.resume(events);
        }
        let mut rest = input;
        self.process(&mut rest, events)?;
        self.pending.extend_from_slice(rest);
        self.acknowledge()
    }

    /// Processes input held back while a request awaited its answer.
    fn resume(&mut self, events: &mut Vec<Event>) -> Result<(), ProtocolError> {
        if self.awaiting {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let mut rest = &pending[..];
        self.process(&mut rest, events)?;
        self.pending = rest.to_vec();
        self.acknowledge()
    }

    fn process(&mut self, input: &mut &[u8], events: &mut Vec<Event>) -> Result<(), ProtocolError> {
        if let Some(handshake) = self.handshake.as_mut() {
            match handshake.process_bytes(input)? {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.output.extend_from_slice(&response_bytes);
                    *input = &[];
                    return Ok(());
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.output.extend_from_slice(&response_bytes);
                    self.handshake = None;
                    self.start()?;
                    let mut rest = &remaining_bytes[..];
                    self.messages(&mut rest, events)?;
                    self.pending.extend_from_slice(rest);
                    *input = &[];
                    return Ok(());
                }
            }
        }
        self.messages(input, events)
    }

    fn messages(
        &mut self,
        input: &mut &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), ProtocolError> {
        while !self.awaiting {
            match self.reader.next(input, &self.limits)? {
                Some(message) => self.message(message, events)?,
                None => break,
            }
        }
        Ok(())
    }

    /// What the server says first, as every RTMP server does.
    fn start(&mut self) -> Result<(), ProtocolError> {
        let time = self.time();
        let packet = self
            .writer
            .set_max_chunk_size(OUT_CHUNK_SIZE, time)
            .map_err(|e| ProtocolError::Reply(e.to_string()))?;
        self.output.extend_from_slice(&packet.bytes);
        self.send(
            RtmpMessage::WindowAcknowledgement {
                size: WINDOW_ACK_SIZE,
            },
            0,
        )?;
        self.send(
            RtmpMessage::SetPeerBandwidth {
                size: PEER_BANDWIDTH,
                limit_type: PeerBandwidthLimitType::Dynamic,
            },
            0,
        )?;
        self.send(stream_begin(0), 0)?;
        self.send(
            command(
                "onBWDone",
                0.0,
                Amf0Value::Null,
                vec![Amf0Value::Number(8192.0)],
            ),
            0,
        )
    }

    fn message(&mut self, message: Message, events: &mut Vec<Event>) -> Result<(), ProtocolError> {
        let data = &message.data;
        match message.type_id {
            // Set Chunk Size (the top bit is reserved).
            1 => {
                let size = be_u32(data).ok_or(ProtocolError::Malformed("Set Chunk Size"))?;
                self.reader.set_chunk_size(size, &self.limits)?;
            }
            // Abort
            2 => {
                let chunk_stream = be_u32(data).ok_or(ProtocolError::Malformed("Abort"))?;
                self.reader.abort(chunk_stream);
            }
            // User Control: answer pings; the rest concerns players.
            4 if data.get(..2) == Some(&[0, 6]) => {
                let timestamp = data
                    .get(2..6)
                    .and_then(be_u32)
                    .ok_or(ProtocolError::Malformed("Ping Request"))?;
                self.send(
                    RtmpMessage::UserControl {
                        event_type: UserControlEventType::PingResponse,
                        stream_id: None,
                        buffer_length: None,
                        timestamp: Some(RtmpTimestamp::new(timestamp)),
                    },
                    0,
                )?;
            }
            // Window Acknowledgement Size
            5 => {
                let size = be_u32(data).ok_or(ProtocolError::Malformed("Window Ack Size"))?;
                self.window = Some(size.max(1));
            }
            8 | 9 if self.publishing == Some(message.stream_id) => {
                events.push(Event::Media {
                    video: message.type_id == 9,
                    timestamp: message.timestamp,
                    data: message.data,
                });
            }
            // AMF3 command: an AMF0 command after a format byte.
            17 => {
                let body = match data.first() {
                    Some(0) => &data[1..],
                    _ => &data[..],
                };
                self.command(message.stream_id, body, events)?;
            }
            20 => self.command(message.stream_id, data, events)?,
            // Acknowledgement, Set Peer Bandwidth, metadata (Siaran reads what it needs from
            // the media itself), shared objects, aggregates: nothing to do.
            _ => {}
        }
        Ok(())
    }

    fn command(
        &mut self,
        stream: u32,
        body: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), ProtocolError> {
        let mut values = amf0::decode_all(body)?.into_iter();
        let Some(Amf0Value::Utf8String(name)) = values.next() else {
            return Err(ProtocolError::Malformed("a command without a name"));
        };
        // Every command carries a transaction id (0 when no answer is expected); the command
        // object that follows may be missing.
        let Some(Amf0Value::Number(transaction)) = values.next() else {
            return Err(ProtocolError::Malformed(
                "a command without a transaction id",
            ));
        };
        let object = values.next().unwrap_or(Amf0Value::Null);
        let mut arguments = values;
        match name.as_str() {
            "connect" => {
                let Amf0Value::Object(mut properties) = object else {
                    return Err(ProtocolError::Malformed("connect without a command object"));
                };
                let Some(Amf0Value::Utf8String(app)) = properties.remove("app") else {
                    return Err(ProtocolError::Malformed("connect without an application"));
                };
                if let Some(Amf0Value::Number(encoding)) = properties.remove("objectEncoding") {
                    self.object_encoding = encoding;
                }
                self.awaiting = true;
                events.push(Event::Connect { transaction, app });
            }
            "createStream" => {
                if self.streams.len() >= MAX_STREAMS {
                    return Err(ProtocolError::TooManyStreams);
                }
                let id = self.streams.last().map_or(1, |last| last + 1);
                self.streams.push(id);
                let result = command(
                    "_result",
                    transaction,
                    Amf0Value::Null,
                    vec![Amf0Value::Number(f64::from(id))],
                );
                self.send(result, 0)?;
            }
            "publish" => {
                let key = match arguments.next() {
                    Some(Amf0Value::Utf8String(key)) => Some(key),
                    _ => None,
                };
                match key {
                    Some(key) if self.connected && self.streams.contains(&stream) => {
                        self.awaiting = true;
                        events.push(Event::Publish {
                            stream,
                            transaction,
                            key,
                        });
                    }
                    Some(_) => self.error_reply(
                        transaction,
                        stream,
                        "NetStream.Publish.BadName",
                        "Connect and create a stream before publishing.",
                    )?,
                    None => self.error_reply(
                        transaction,
                        stream,
                        "NetStream.Publish.BadName",
                        "Publish needs a stream key.",
                    )?,
                }
            }
            "play" => {
                self.awaiting = true;
                events.push(Event::Play {
                    stream,
                    transaction,
                });
            }
            "deleteStream" | "closeStream" => {
                let target = match arguments.next() {
                    Some(Amf0Value::Number(n)) if n >= 0.0 && n <= f64::from(u32::MAX) => n as u32,
                    _ => stream,
                };
                if self.publishing.is_some() && self.publishing == Some(target) {
                    self.publishing = None;
                    events.push(Event::Unpublish);
                }
                if name == "deleteStream" {
                    self.streams.retain(|s| *s != target);
                }
            }
            // releaseStream, FCPublish, FCUnpublish, _checkbw, getStreamLength…: encoders send
            // them without waiting for an answer.
            _ => {}
        }
        Ok(())
    }

    /// Accepts the pending `connect`.
    pub(crate) fn accept_connect(
        &mut self,
        transaction: f64,
        events: &mut Vec<Event>,
    ) -> Result<(), ProtocolError> {
        self.connected = true;
        self.awaiting = false;
        let properties = [
            ("fmsVer", Amf0Value::Utf8String(FMS_VERSION.to_owned())),
            ("capabilities", Amf0Value::Number(31.0)),
        ];
        let mut info = status("status", "NetConnection.Connect.Success", "Connected.");
        info.push(("objectEncoding", Amf0Value::Number(self.object_encoding)));
        let reply = command(
            "_result",
            transaction,
            object(properties.into_iter()),
            vec![object(info.into_iter())],
        );
        self.send(reply, 0)?;
        self.resume(events)
    }

    /// Accepts the pending `publish`: media on `stream` now comes out as [`Event::Media`], and
    /// the connection may send what an encoder sends ([`Limits::PUBLISHING`]).
    pub(crate) fn accept_publish(
        &mut self,
        stream: u32,
        events: &mut Vec<Event>,
    ) -> Result<(), ProtocolError> {
        self.publishing = Some(stream);
        self.limits = Limits::PUBLISHING;
        self.awaiting = false;
        self.send(stream_begin(stream), stream)?;
        let info = status("status", "NetStream.Publish.Start", "Publishing.");
        self.send(
            command(
                "onStatus",
                0.0,
                Amf0Value::Null,
                vec![object(info.into_iter())],
            ),
            stream,
        )?;
        self.resume(events)
    }

    /// Refuses the pending request with an `_error` the client shows; the caller then closes.
    pub(crate) fn reject(
        &mut self,
        transaction: f64,
        stream: u32,
        code: &str,
        description: &str,
    ) -> Result<(), ProtocolError> {
        self.awaiting = false;
        self.error_reply(transaction, stream, code, description)
    }

    fn error_reply(
        &mut self,
        transaction: f64,
        stream: u32,
        code: &str,
        description: &str,
    ) -> Result<(), ProtocolError> {
        let info = status("error", code, description);
        let reply = command(
            "_error",
            transaction,
            Amf0Value::Null,
            vec![object(info.into_iter())],
        );
        self.send(reply, stream)
    }

    /// Acknowledges received bytes once the client's window is full (at most once per input).
    fn acknowledge(&mut self) -> Result<(), ProtocolError> {
        let Some(window) = self.window else {
            return Ok(());
        };
        if self.received - self.acknowledged < u64::from(window) {
            return Ok(());
        }
        self.acknowledged = self.received;
        // The sequence number is the byte count so far, wrapping as RTMP's 32 bits do.
        let sequence_number = (self.received & u64::from(u32::MAX)) as u32;
        self.send(RtmpMessage::Acknowledgement { sequence_number }, 0)
    }

    fn send(&mut self, message: RtmpMessage, stream: u32) -> Result<(), ProtocolError> {
        let payload = message
            .into_message_payload(self.time(), stream)
            .map_err(|e| ProtocolError::Reply(e.to_string()))?;
        let packet = self
            .writer
            .serialize(&payload, false, false)
            .map_err(|e| ProtocolError::Reply(e.to_string()))?;
        self.output.extend_from_slice(&packet.bytes);
        Ok(())
    }

    fn time(&self) -> RtmpTimestamp {
        let millis = self.epoch.elapsed().as_millis();
        // RTMP time wraps around at 32 bits.
        RtmpTimestamp::new((millis & u128::from(u32::MAX)) as u32)
    }
}

fn be_u32(data: &[u8]) -> Option<u32> {
    let b = data.get(..4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn stream_begin(stream: u32) -> RtmpMessage {
    RtmpMessage::UserControl {
        event_type: UserControlEventType::StreamBegin,
        stream_id: Some(stream),
        buffer_length: None,
        timestamp: None,
    }
}

fn command(
    name: &str,
    transaction: f64,
    command_object: Amf0Value,
    additional_arguments: Vec<Amf0Value>,
) -> RtmpMessage {
    RtmpMessage::Amf0Command {
        command_name: name.to_owned(),
        transaction_id: transaction,
        command_object,
        additional_arguments,
    }
}

fn status(level: &str, code: &str, description: &str) -> Vec<(&'static str, Amf0Value)> {
    vec![
        ("level", Amf0Value::Utf8String(level.to_owned())),
        ("code", Amf0Value::Utf8String(code.to_owned())),
        ("description", Amf0Value::Utf8String(description.to_owned())),
    ]
}

fn object(properties: impl Iterator<Item = (&'static str, Amf0Value)>) -> Amf0Value {
    Amf0Value::Object(properties.map(|(k, v)| (k.to_owned(), v)).collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const CHUNK_HEADER_COMMAND: u8 = 3;

    /// A client handshake (C0, C1, C2): the server accepts any C2.
    pub(crate) fn client_handshake() -> Vec<u8> {
        let mut bytes = vec![3u8];
        bytes.extend(std::iter::repeat_n(0u8, 1536 * 2));
        bytes
    }

    /// One message as a single type 0 chunk (the caller keeps it within the chunk size).
    pub(crate) fn chunk(
        csid: u8,
        type_id: u8,
        stream: u32,
        timestamp: u32,
        body: &[u8],
    ) -> Vec<u8> {
        let mut out = vec![csid];
        out.extend_from_slice(&timestamp.to_be_bytes()[1..]);
        out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
        out.push(type_id);
        out.extend_from_slice(&stream.to_le_bytes());
        out.extend_from_slice(body);
        out
    }

    pub(crate) fn amf(values: &[Amf0Value]) -> Vec<u8> {
        rml_rtmp::rml_amf0::serialize(&values.to_vec()).unwrap()
    }

    fn string(s: &str) -> Amf0Value {
        Amf0Value::Utf8String(s.to_owned())
    }

    fn connect() -> Vec<u8> {
        let app = Amf0Value::Object([("app".to_owned(), string("live"))].into_iter().collect());
        chunk(
            CHUNK_HEADER_COMMAND,
            20,
            0,
            0,
            &amf(&[string("connect"), Amf0Value::Number(1.0), app]),
        )
    }

    fn set_chunk_size(size: u32) -> Vec<u8> {
        chunk(2, 1, 0, 0, &size.to_be_bytes())
    }

    fn feed(protocol: &mut Protocol, bytes: &[u8]) -> Result<Vec<Event>, ProtocolError> {
        let mut events = Vec::new();
        protocol.feed(bytes, &mut events).map(|()| events)
    }

    /// Handshake, connect and createStream, publish with `key` accepted.
    fn publishing(protocol: &mut Protocol) {
        let mut bytes = client_handshake();
        bytes.extend(connect());
        let events = feed(protocol, &bytes).unwrap();
        assert!(matches!(events[..], [Event::Connect { .. }]), "{events:?}");
        let mut events = Vec::new();
        protocol.accept_connect(1.0, &mut events).unwrap();
        let mut bytes = chunk(
            CHUNK_HEADER_COMMAND,
            20,
            0,
            0,
            &amf(&[
                string("createStream"),
                Amf0Value::Number(2.0),
                Amf0Value::Null,
            ]),
        );
        bytes.extend(chunk(
            8,
            20,
            1,
            0,
            &amf(&[
                string("publish"),
                Amf0Value::Number(3.0),
                Amf0Value::Null,
                string("key"),
                string("live"),
            ]),
        ));
        let events = feed(protocol, &bytes).unwrap();
        assert_eq!(
            events,
            [Event::Publish {
                stream: 1,
                transaction: 3.0,
                key: "key".to_owned()
            }]
        );
        protocol.accept_publish(1, &mut Vec::new()).unwrap();
    }

    #[test]
    fn a_publisher_gets_its_media_through() {
        let mut protocol = Protocol::new();
        publishing(&mut protocol);
        assert!(!protocol.take_output().is_empty());

        let events = feed(&mut protocol, &chunk(6, 9, 1, 40, &[0x17, 1, 0, 0, 0, 9])).unwrap();

        assert_eq!(
            events,
            [Event::Media {
                video: true,
                timestamp: 40,
                data: Bytes::from_static(&[0x17, 1, 0, 0, 0, 9])
            }]
        );
    }

    #[test]
    fn requests_wait_for_their_answer_and_input_behind_them_waits_too() {
        let mut protocol = Protocol::new();
        let mut bytes = client_handshake();
        bytes.extend(connect());
        bytes.extend(connect());

        let events = feed(&mut protocol, &bytes).unwrap();
        assert_eq!(events.len(), 1, "the second connect waits: {events:?}");

        let mut events = Vec::new();
        protocol.accept_connect(1.0, &mut events).unwrap();
        assert_eq!(events.len(), 1, "then it is processed");
    }

    #[test]
    fn nested_arrays_in_a_command_end_the_connection_without_recursing() {
        let mut protocol = Protocol::new();
        let mut body = amf(&[string("connect"), Amf0Value::Number(1.0)]);
        for _ in 0..50_000 {
            body.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
        }
        let mut bytes = client_handshake();
        bytes.extend(set_chunk_size(65_536));
        // 250 KB: more than the limit before authorization, so refused at its header; within a
        // smaller message the depth limit refuses it.
        bytes.extend(chunk(CHUNK_HEADER_COMMAND, 20, 0, 0, &body));

        let error = feed(&mut protocol, &bytes).unwrap_err();
        assert!(matches!(error, ProtocolError::Chunk(_)), "{error}");

        let mut protocol = Protocol::new();
        let mut bytes = client_handshake();
        bytes.extend(set_chunk_size(65_536));
        bytes.extend(chunk(CHUNK_HEADER_COMMAND, 20, 0, 0, &body[..60_000]));
        let error = feed(&mut protocol, &bytes).unwrap_err();
        assert!(
            matches!(error, ProtocolError::Amf(AmfError::TooDeep)),
            "{error}"
        );
    }

    #[test]
    fn commands_short_of_values_end_the_connection_without_panicking() {
        // rml_rtmp panicked on any command of fewer than three values (`drain(..3)`), on the
        // shared ingest thread, after the stream had gone live.
        let names = [
            "x",
            "connect",
            "createStream",
            "publish",
            "play",
            "deleteStream",
            "closeStream",
            "FCUnpublish",
        ];
        for name in names {
            let mut protocol = Protocol::new();
            publishing(&mut protocol);

            let result = feed(&mut protocol, &chunk(8, 20, 1, 0, &amf(&[string(name)])));

            assert!(
                matches!(result, Err(ProtocolError::Malformed(_))),
                "{name}: {result:?}"
            );
        }
        for name in names {
            let mut protocol = Protocol::new();
            publishing(&mut protocol);
            let body = amf(&[string(name), Amf0Value::Number(4.0)]);

            let result = feed(&mut protocol, &chunk(8, 20, 1, 0, &body));

            // Without a command object only `connect` (which needs one) is refused.
            assert_eq!(result.is_err(), name == "connect", "{name}: {result:?}");
        }
    }

    #[test]
    fn a_huge_chunk_size_before_authorization_ends_the_connection() {
        let mut protocol = Protocol::new();
        let mut bytes = client_handshake();
        bytes.extend(set_chunk_size(1 << 31));

        let error = feed(&mut protocol, &bytes).unwrap_err();

        assert!(
            matches!(error, ProtocolError::Chunk(ChunkError::ChunkSize { .. })),
            "{error}"
        );
    }

    #[test]
    fn pings_are_answered() {
        let mut protocol = Protocol::new();
        feed(&mut protocol, &client_handshake()).unwrap();
        protocol.take_output();

        feed(&mut protocol, &chunk(2, 4, 0, 0, &[0, 6, 0, 0, 0, 7])).unwrap();

        let output = protocol.take_output();
        assert!(
            output.windows(6).any(|w| w == [0, 7, 0, 0, 0, 7]),
            "{output:?}"
        );
    }

    #[test]
    fn received_bytes_are_acknowledged_once_the_window_is_full() {
        let mut protocol = Protocol::new();
        feed(&mut protocol, &client_handshake()).unwrap();
        protocol.take_output();
        let unknown = chunk(2, 0x30, 0, 0, &[0; 64]);
        feed(&mut protocol, &unknown).unwrap();
        assert!(
            protocol.take_output().is_empty(),
            "no window, no acknowledgement"
        );

        feed(&mut protocol, &chunk(2, 5, 0, 0, &50u32.to_be_bytes())).unwrap();
        protocol.take_output();
        feed(&mut protocol, &unknown).unwrap();

        assert!(!protocol.take_output().is_empty());
    }
}
