//! Helpers for the real-time tests: streams in a given state, and a WebSocket client that reads
//! JSON messages with generous timeouts.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use sqlx::PgPool;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

/// How long a test waits for a message it expects.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// Creates a stream owned by `streamer_id`, live or not.
pub async fn create_stream(db: &PgPool, streamer_id: Uuid, live: bool) -> Uuid {
    sqlx::query("UPDATE users SET is_streamer = true WHERE id = $1")
        .bind(streamer_id)
        .execute(db)
        .await
        .expect("making a streamer");
    sqlx::query_scalar(
        "INSERT INTO streams (streamer_id, title, is_active, started_at)
         VALUES ($1, 'Test stream', $2, CASE WHEN $2 THEN now() END) RETURNING id",
    )
    .bind(streamer_id)
    .bind(live)
    .fetch_one(db)
    .await
    .expect("creating a stream")
}

/// Ends (or restarts) a stream in the database, as the media side would.
pub async fn set_live(db: &PgPool, stream_id: Uuid, live: bool) {
    sqlx::query(
        "UPDATE streams SET is_active = $2,
             started_at = CASE WHEN $2 THEN now() ELSE started_at END,
             ended_at = CASE WHEN $2 THEN NULL ELSE now() END
         WHERE id = $1",
    )
    .bind(stream_id)
    .bind(live)
    .execute(db)
    .await
    .expect("changing a stream's state");
}

/// A user created directly in the database, with an access token minted for them.
pub async fn quick_user(db: &PgPool, username: &str) -> (Uuid, String) {
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO users (username, email, password_hash) VALUES ($1, $1 || '@example.com', 'x')
         RETURNING id",
    )
    .bind(username)
    .fetch_one(db)
    .await
    .expect("creating a user");
    let keys = siaran::auth::jwt::JwtKeys::new(crate::helpers::TEST_JWT_SECRET.as_bytes());
    (id, keys.issue(id))
}

pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a socket ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// A close frame with this code.
    Closed(u16),
    /// The connection dropped without a close frame.
    Dropped,
}

impl Ws {
    pub async fn connect(addr: SocketAddr, path: &str) -> Self {
        Self::try_connect(addr, path)
            .await
            .unwrap_or_else(|e| panic!("connecting to {path}: {e}"))
    }

    pub async fn try_connect(
        addr: SocketAddr,
        path: &str,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let (stream, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{path}")).await?;
        Ok(Self { stream })
    }

    /// Connects with a tiny receive buffer, so that the server's writes stall as soon as the
    /// client stops reading.
    pub async fn connect_small_buffer(addr: SocketAddr, path: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("receive buffer");
        let tcp = socket.connect(addr).await.expect("TCP connect");
        let (stream, _) = tokio_tungstenite::client_async(
            format!("ws://{addr}{path}"),
            MaybeTlsStream::Plain(tcp),
        )
        .await
        .expect("WebSocket handshake");
        Self { stream }
    }

    /// The next JSON message; panics on timeout or if the socket ends.
    pub async fn next_json(&mut self) -> Value {
        match self.next_or_end().await {
            Ok(value) => value,
            Err(ending) => panic!("the socket ended ({ending:?}) while a message was expected"),
        }
    }

    /// The next JSON message, or how the socket ended.
    pub async fn next_or_end(&mut self) -> Result<Value, Ending> {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.stream.next())
                .await
                .expect("no message in time");
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Ok(serde_json::from_str(text.as_str()).expect("JSON message"));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(Ending::Closed(
                        frame.map_or(1005, |f: CloseFrame| f.code.into()),
                    ));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Err(Ending::Dropped),
            }
        }
    }

    /// The next message that is not a `viewers.count`.
    pub async fn next_not_count(&mut self) -> Value {
        loop {
            let message = self.next_json().await;
            if message["type"] != "viewers.count" {
                return message;
            }
        }
    }

    /// Skips messages until one of type `kind` (returned).
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let message = self.next_json().await;
            if message["type"] == kind {
                return message;
            }
        }
    }

    /// Waits until the socket ends, returning the messages read meanwhile.
    pub async fn until_end(&mut self) -> (Vec<Value>, Ending) {
        let mut seen = Vec::new();
        loop {
            match self.next_or_end().await {
                Ok(value) => seen.push(value),
                Err(ending) => return (seen, ending),
            }
        }
    }

    pub async fn send_json(&mut self, value: &Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::Text(text.into()))
            .await
            .expect("sending a message");
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.stream
            .send(Message::Binary(bytes.into()))
            .await
            .expect("sending a binary message");
    }

    /// Asserts that nothing but `viewers.count` arrives for a moment.
    pub async fn assert_quiet(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Text(text)))) => {
                    let value: Value = serde_json::from_str(text.as_str()).expect("JSON message");
                    assert_eq!(value["type"], "viewers.count", "unexpected message {value}");
                }
                Ok(Some(Ok(_))) => {}
                Ok(other) => panic!("the socket ended: {other:?}"),
            }
        }
    }
}

/// The `type`s of some messages.
pub fn kinds(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}
