//! The socket protocol beyond the events themselves: what clients may send, and the control
//! messages (`ready`, `authenticated`, `pong`, `error`) the server answers with.
//!
//! Control messages have the events' shape, `{"type", "id", "ts", "data"}`, where `id` repeats
//! the id of the last event the socket has delivered (or its resume point): it never goes
//! backwards, so a client may keep the `id` of every message it receives as its resume point.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{AppError, FieldError};
use crate::users::model::PublicUser;

/// Longest text message a client may send; longer ones get `message_too_large`.
pub const MAX_CLIENT_MESSAGE: usize = 4 * 1024;
/// Longest frame the socket reads at all; a longer one closes the socket with 1009.
pub const MAX_CLIENT_FRAME: usize = 64 * 1024;
/// Longest `ref` echoed back.
const MAX_REF: usize = 64;

/// What a client may send on `/ws/stream/{id}/` (the overlay socket accepts `ping` only). Any
/// message may carry a `ref` string (up to 64 characters) that an `error` about it echoes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(tag = "type")]
pub enum ClientMessage {
    /// Identifies the user (an access token, as from `POST /api/auth/login`), so the socket can
    /// post comments. Answered with `authenticated`, or an `error` that leaves it read-only.
    #[serde(rename = "auth")]
    Auth {
        token: String,
        #[serde(rename = "ref", default)]
        reference: Option<String>,
    },
    /// Posts a comment, as `POST /api/streams/{id}/comments` does; it arrives as
    /// `comment.created` like everyone else's.
    #[serde(rename = "comment.create")]
    CommentCreate {
        content: String,
        #[serde(rename = "ref", default)]
        reference: Option<String>,
    },
    /// Answered with `pong`.
    #[serde(rename = "ping")]
    Ping {
        #[serde(rename = "ref", default)]
        reference: Option<String>,
    },
}

/// A client message that could not be acted upon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub code: &'static str,
    pub message: Cow<'static, str>,
    pub reference: Option<String>,
}

/// Parses a client's text message, telling malformed JSON, unknown types and invalid fields
/// apart.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, Rejected> {
    let reject = |code, message: String, reference| Rejected {
        code,
        message: Cow::Owned(message),
        reference,
    };
    let value: Value = serde_json::from_str(text).map_err(|e| {
        reject(
            "invalid_json",
            format!("The message is not valid JSON: {e}."),
            None,
        )
    })?;
    let reference = value
        .get("ref")
        .and_then(Value::as_str)
        .filter(|r| r.chars().count() <= MAX_REF)
        .map(str::to_owned);
    let kind = value.get("type").and_then(Value::as_str);
    match kind {
        Some("auth" | "comment.create" | "ping") => {}
        Some(other) => {
            return Err(reject(
                "unknown_type",
                format!(
                    "Unknown message type `{}`; send `auth`, `comment.create` or `ping`.",
                    truncate(other)
                ),
                reference,
            ));
        }
        None => {
            return Err(reject(
                "invalid_message",
                "A message is a JSON object with a string `type`.".to_owned(),
                reference,
            ));
        }
    }
    serde_json::from_value(value).map_err(|e| {
        reject(
            "invalid_message",
            format!("The message's fields are invalid: {e}."),
            reference,
        )
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// A server → client message that is not a stream event.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "type", content = "data")]
pub enum Control {
    /// First message on `/ws/stream/{id}/`: the socket is subscribed; events follow.
    #[serde(rename = "ready")]
    Ready(Ready),
    /// First message on `/ws/overlay/{token}`.
    #[serde(rename = "overlay.ready")]
    OverlayReady(OverlayReady),
    /// Answer to a successful `auth` message.
    #[serde(rename = "authenticated")]
    Authenticated(Authenticated),
    /// Answer to `ping`.
    #[serde(rename = "pong")]
    Pong(Pong),
    /// Something the client sent, or its connection, is not right; see `code`.
    #[serde(rename = "error")]
    Error(SocketError),
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Ready {
    pub stream_id: Uuid,
    /// Who the socket is authenticated as; `null` for a read-only socket.
    pub user: Option<PublicUser>,
    /// The latest viewer count this server knows, until the next `viewers.count`.
    pub viewer_count: Option<u64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OverlayReady {
    /// The streamer whose donations this overlay shows.
    pub streamer: PublicUser,
    /// The live stream the overlay follows now; `null` until one goes live.
    pub stream_id: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Authenticated {
    pub user: PublicUser,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Pong {
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// An error on a socket. The socket stays open unless the code says otherwise
/// (`too_slow`, `invalid_overlay_token`).
///
/// Codes: `invalid_json`, `unknown_type`, `invalid_message`, `message_too_large`,
/// `unsupported_frame`, `invalid_token`, `token_expired`, `account_disabled`,
/// `not_authenticated`, `validation_failed`, `stream_not_live`, `comment_rate_limited`,
/// `history_truncated`, `invalid_last_event_id`, `too_slow`, `invalid_overlay_token`,
/// `service_unavailable`, `internal_error`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SocketError {
    pub code: Cow<'static, str>,
    /// A sentence for people.
    pub message: Cow<'static, str>,
    /// The `ref` of the client message this is about, if it had one.
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Seconds to wait before trying again (rate limits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// Invalid fields, as in the REST API's validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl SocketError {
    #[must_use]
    pub fn new(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code: Cow::Borrowed(code),
            message: message.into(),
            reference: None,
            retry_after: None,
            errors: Vec::new(),
        }
    }

    /// The error the REST API would answer with, as a socket message.
    #[must_use]
    pub fn from_app(error: &AppError, reference: Option<String>) -> Self {
        let problem = error.to_problem();
        Self {
            code: problem.code,
            message: problem.detail,
            reference,
            retry_after: problem.retry_after,
            errors: problem.errors,
        }
    }

    #[must_use]
    pub fn with_reference(mut self, reference: Option<String>) -> Self {
        self.reference = reference;
        self
    }
}

impl From<Rejected> for SocketError {
    fn from(r: Rejected) -> Self {
        Self::new(r.code, r.message).with_reference(r.reference)
    }
}

/// A control message on the wire.
#[derive(Debug, Serialize)]
struct ControlMessage<'a> {
    id: u64,
    ts: DateTime<Utc>,
    #[serde(flatten)]
    control: &'a Control,
}

impl Control {
    /// The message's text, with `id` the socket's current position.
    #[must_use]
    pub fn encode(&self, position: u64) -> String {
        serde_json::to_string(&ControlMessage {
            id: position,
            ts: Utc::now(),
            control: self,
        })
        // Plain structs of strings and numbers always serialise.
        .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_told_apart_by_what_is_wrong() {
        assert_eq!(
            parse_client_message("{nope").unwrap_err().code,
            "invalid_json"
        );
        assert_eq!(
            parse_client_message(r#"{"type": "dance", "ref": "r1"}"#).unwrap_err(),
            Rejected {
                code: "unknown_type",
                message: "Unknown message type `dance`; send `auth`, `comment.create` or `ping`."
                    .into(),
                reference: Some("r1".into()),
            }
        );
        assert_eq!(
            parse_client_message("[1, 2]").unwrap_err().code,
            "invalid_message"
        );
        assert_eq!(
            parse_client_message(r#"{"type": "comment.create"}"#)
                .unwrap_err()
                .code,
            "invalid_message"
        );
        assert_eq!(
            parse_client_message(r#"{"type": "comment.create", "content": "hi", "ref": "a"}"#),
            Ok(ClientMessage::CommentCreate {
                content: "hi".into(),
                reference: Some("a".into())
            })
        );
        assert_eq!(
            parse_client_message(r#"{"type": "ping"}"#),
            Ok(ClientMessage::Ping { reference: None })
        );
    }

    #[test]
    fn control_messages_carry_the_position() {
        let text = Control::Pong(Pong { reference: None }).encode(41);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["type"], "pong");
        assert_eq!(value["id"], 41);
        assert!(value["ts"].is_string());
        assert!(value["data"].is_object());
    }
}
