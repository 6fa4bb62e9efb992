//! A raw RTMP client that sends exactly the bytes it is told to, for abuse tests and the
//! `rtmp-abuse` example (a real encoder would never send most of them). Shared by
//! `media/examples/rtmp_abuse.rs` and `tests/media/robustness.rs`; tokio and std only.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Chunk stream ids as encoders use them.
pub const CSID_CONTROL: u8 = 2;
pub const CSID_COMMAND: u8 = 3;
pub const CSID_AUDIO: u8 = 4;
pub const CSID_VIDEO: u8 = 6;
pub const CSID_STREAM_COMMAND: u8 = 8;

/// AMF0 values, encoded by hand.
pub enum Amf<'a> {
    Number(f64),
    String(&'a str),
    Null,
    Object(Vec<(&'a str, Amf<'a>)>),
}

impl Amf<'_> {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Number(n) => {
                out.push(0x00);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Self::String(s) => {
                out.push(0x02);
                out.extend_from_slice(&(s.len() as u16).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Self::Null => out.push(0x05),
            Self::Object(properties) => {
                out.push(0x03);
                for (name, value) in properties {
                    out.extend_from_slice(&(name.len() as u16).to_be_bytes());
                    out.extend_from_slice(name.as_bytes());
                    value.encode(out);
                }
                out.extend_from_slice(&[0, 0, 0x09]);
            }
        }
    }
}

/// The AMF0 body of a command.
pub fn command(values: &[Amf<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for value in values {
        value.encode(&mut out);
    }
    out
}

/// `"connect"`, a number, then `depth` strict arrays each holding the next: the payload that
/// overflowed the ingest thread's stack.
pub fn nested_arrays(depth: usize) -> Vec<u8> {
    let mut out = command(&[Amf::String("connect"), Amf::Number(1.0)]);
    for _ in 0..depth {
        out.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
    }
    out
}

/// A type 0 chunk header (chunk stream ids 2..=63).
pub fn header(csid: u8, timestamp: u32, length: u32, type_id: u8, stream: u32) -> Vec<u8> {
    let mut out = vec![csid];
    out.extend_from_slice(&timestamp.min(0xff_ffff).to_be_bytes()[1..]);
    out.extend_from_slice(&length.min(0xff_ffff).to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&stream.to_le_bytes());
    if timestamp >= 0xff_ffff {
        out.extend_from_slice(&timestamp.to_be_bytes());
    }
    out
}

/// One message as chunks of `chunk_size`: a type 0 header, then type 3 continuations.
pub fn message(
    csid: u8,
    type_id: u8,
    stream: u32,
    timestamp: u32,
    body: &[u8],
    chunk_size: usize,
) -> Vec<u8> {
    let mut out = header(csid, timestamp, body.len() as u32, type_id, stream);
    for (i, piece) in body.chunks(chunk_size.max(1)).enumerate() {
        if i > 0 {
            out.push(0xc0 | csid);
            if timestamp >= 0xff_ffff {
                out.extend_from_slice(&timestamp.to_be_bytes());
            }
        }
        out.extend_from_slice(piece);
    }
    out
}

/// A Set Chunk Size message.
pub fn set_chunk_size(size: u32) -> Vec<u8> {
    message(CSID_CONTROL, 1, 0, 0, &size.to_be_bytes(), 128)
}

/// A client connection speaking raw RTMP.
pub struct RawClient {
    pub socket: TcpStream,
    pub chunk_size: usize,
}

impl RawClient {
    /// Connects without sending anything.
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let socket = TcpStream::connect(addr).await?;
        let _ = socket.set_nodelay(true);
        Ok(Self {
            socket,
            chunk_size: 128,
        })
    }

    /// Connects and completes the handshake (C0 C1, S0 S1 S2, C2 echoing S1).
    pub async fn handshaken(addr: SocketAddr) -> std::io::Result<Self> {
        let mut client = Self::connect(addr).await?;
        let mut c0c1 = vec![3u8];
        c0c1.extend((0..1536u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
        client.socket.write_all(&c0c1).await?;
        let mut s0s1s2 = vec![0u8; 1 + 1536 * 2];
        client.socket.read_exact(&mut s0s1s2).await?;
        client.socket.write_all(&s0s1s2[1..1537]).await?;
        Ok(client)
    }

    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.socket.write_all(bytes).await
    }

    /// Announces a chunk size (and uses it for what it sends next).
    pub async fn set_chunk_size(&mut self, size: u32) -> std::io::Result<()> {
        self.send(&set_chunk_size(size)).await?;
        self.chunk_size = size as usize;
        Ok(())
    }

    /// Sends a message in chunks of the current chunk size.
    pub async fn message(
        &mut self,
        csid: u8,
        type_id: u8,
        stream: u32,
        timestamp: u32,
        body: &[u8],
    ) -> std::io::Result<()> {
        let bytes = message(csid, type_id, stream, timestamp, body, self.chunk_size);
        self.send(&bytes).await
    }

    /// `connect` to `app`, `createStream` (stream 1 on a fresh connection), `publish` with
    /// `key`, waiting a little for the answers, which this client does not read.
    pub async fn publish(&mut self, app: &str, key: &str) -> std::io::Result<()> {
        self.set_chunk_size(4096).await?;
        let connect = command(&[
            Amf::String("connect"),
            Amf::Number(1.0),
            Amf::Object(vec![
                ("app", Amf::String(app)),
                ("type", Amf::String("nonprivate")),
                ("flashVer", Amf::String("FMLE/3.0 (compatible; rtmp-abuse)")),
                ("tcUrl", Amf::String("rtmp://localhost/live")),
            ]),
        ]);
        self.message(CSID_COMMAND, 20, 0, 0, &connect).await?;
        let create = command(&[Amf::String("createStream"), Amf::Number(2.0), Amf::Null]);
        self.message(CSID_COMMAND, 20, 0, 0, &create).await?;
        let publish = command(&[
            Amf::String("publish"),
            Amf::Number(3.0),
            Amf::Null,
            Amf::String(key),
            Amf::String("live"),
        ]);
        self.message(CSID_STREAM_COMMAND, 20, 1, 0, &publish).await
    }

    /// Reads (and discards) what the server sends until it closes the connection; `true` if it
    /// did within `timeout`.
    pub async fn closed_within(&mut self, timeout: Duration) -> bool {
        let mut buffer = [0u8; 4096];
        tokio::time::timeout(timeout, async {
            loop {
                match self.socket.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }

    /// Reads what the server has sent so far without waiting for more.
    pub async fn drain(&mut self) {
        let mut buffer = [0u8; 4096];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(1), self.socket.read(&mut buffer)).await
        {
            if n == 0 {
                break;
            }
        }
    }
}
