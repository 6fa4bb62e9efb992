//! `/ws/stream/{stream_id}/`: a stream's events for anyone watching, and comments for those who
//! identify themselves. The protocol is described in `docs/api.md` and the README.
//!
//! A socket joins the stream's hub before the upgrade is answered, so every event committed
//! after the client sees `101 Switching Protocols` reaches it. With `last_event_id`, the events
//! after it are replayed from the log first; then live events follow, each exactly once.

use std::borrow::Cow;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;
use uuid::Uuid;

use super::connection::{Connection, Next, SocketMetrics, Stop, configure};
use super::hub::{Audience, Frame, JoinError, Subscription};
use super::protocol::{
    Authenticated, ClientMessage, Control, MAX_CLIENT_MESSAGE, Pong, Ready, SocketError,
    parse_client_message,
};
use crate::auth::extract::authenticate;
use crate::comments;
use crate::error::{AppError, AppResult, ErrorCode, Problem};
use crate::http::extract::{Path, Query};
use crate::state::AppState;
use crate::users::model::PublicUser;

/// Most events replayed to a resuming socket; a client further behind reloads instead.
pub const MAX_REPLAY: u64 = 5_000;
/// Events read from the log per query while replaying.
const REPLAY_PAGE: u32 = 500;

// Derived by path: utoipa names `utoipa::IntoParams` in code spanned at the handler argument,
// which an imported `IntoParams` would make an unnecessary qualification.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SocketParams {
    /// An access token, to post comments over the socket. Invalid or expired: an `error`
    /// message, and the socket stays read-only. (A first message `{"type": "auth", "token"}`
    /// does the same without putting the token in the URL.)
    token: Option<String>,
    /// The `id` of the last message received before a disconnect: the events after it are
    /// sent first (from the last hour, at most 5,000), then live ones.
    last_event_id: Option<u64>,
}

/// The stream's live events over WebSocket.
///
/// Upgrade to WebSocket. The server sends `ready`, then (with `last_event_id`) the missed events,
/// then every new event as `{"type", "id", "ts", "stream_id", "data"}`; `id` grows by one per
/// event of the stream. Clients may send `auth`, `comment.create` and `ping` (see the
/// `ClientMessage` schema); anything else is answered with an `error` message. The full protocol
/// is in the API description above.
#[utoipa::path(get, path = "/ws/stream/{stream_id}/", tag = "live",
    params(("stream_id" = Uuid, Path, description = "The stream"), SocketParams),
    responses(
        (status = 101, description = "Switching to WebSocket; messages are `Envelope` (events) and `Control`"),
        (status = 404, description = "No such stream", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`last_event_id` is not a number", body = Problem,
            content_type = "application/problem+json"),
        (status = 426, description = "Not a WebSocket request (`websocket_required`)", body = Problem,
            content_type = "application/problem+json"),
        (status = 503, description = "Too many open sockets, or the event log is unreachable", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub(crate) async fn stream_socket(
    State(state): State<AppState>,
    Path(stream_id): Path<Uuid>,
    Query(params): Query<SocketParams>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> AppResult<Response> {
    let upgrade = upgrade.map_err(|e| websocket_required(&e))?;
    let permit = admit(&state)?;
    let hubs = state.live.hubs();
    if !hubs.serves(stream_id) && !stream_exists(&state, stream_id).await? {
        return Err(AppError::not_found("Stream"));
    }
    let subscription = hubs
        .join(stream_id, Audience::Viewer)
        .await
        .map_err(join_failed)?;
    let tasks = state.tasks.clone();
    Ok(configure(upgrade).on_upgrade(move |socket| {
        let session = Session {
            state,
            stream_id,
            user: None,
            token: None,
            _permit: permit,
        };
        tasks.track_future(session.run(socket, subscription, params))
    }))
}

/// Answer to a plain HTTP request on a socket's address.
pub(crate) fn websocket_required(rejection: &WebSocketUpgradeRejection) -> AppError {
    tracing::debug!(%rejection, "not a WebSocket upgrade");
    AppError::BadRequest {
        status: StatusCode::UPGRADE_REQUIRED,
        code: ErrorCode::WebsocketRequired,
        detail: Cow::Borrowed(
            "This address speaks WebSocket only: send a WebSocket upgrade request.",
        ),
    }
}

/// A slot for one more socket, or 503.
pub(crate) fn admit(state: &AppState) -> AppResult<OwnedSemaphorePermit> {
    state
        .live
        .hubs()
        .admit()
        .ok_or_else(|| AppError::BadRequest {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: ErrorCode::TooManyConnections,
            detail: Cow::Borrowed(
                "This server has as many open sockets as it accepts; try again shortly.",
            ),
        })
}

pub(crate) fn join_failed(e: JoinError) -> AppError {
    AppError::Unavailable(anyhow::Error::new(e))
}

async fn stream_exists(state: &AppState, stream_id: Uuid) -> AppResult<bool> {
    Ok(crate::streams::db::exists(&state.db, stream_id).await?)
}

/// One viewer's socket.
struct Session {
    state: AppState,
    stream_id: Uuid,
    /// Who the socket is authenticated as, and the token that proved it (checked again for
    /// every comment, so an expired token or a disabled account stops commenting).
    user: Option<PublicUser>,
    token: Option<String>,
    _permit: OwnedSemaphorePermit,
}

impl Session {
    async fn run(
        mut self,
        socket: WebSocket,
        mut subscription: Subscription,
        params: SocketParams,
    ) {
        let metrics = SocketMetrics::open("stream");
        let config = &self.state.live.hubs().config;
        let mut conn = Connection::new(socket, config, subscription.position, &self.state.shutdown);
        let stop = match self.open(&mut conn, &mut subscription, params).await {
            Ok(()) => self.serve(&mut conn, &mut subscription).await,
            Err(stop) => stop,
        };
        tracing::debug!(stream_id = %self.stream_id, ?stop, "stream socket closed");
        metrics.closed(&stop);
    }

    /// Authenticates from the query, says `ready`, and replays what a resuming client missed.
    async fn open(
        &mut self,
        conn: &mut Connection,
        subscription: &mut Subscription,
        params: SocketParams,
    ) -> Result<(), Stop> {
        if let Some(token) = params.token
            && let Err(error) = self.authenticate(token).await
        {
            conn.send_error(SocketError::from_app(&error, None)).await?;
        }
        let live_position = subscription.position;
        let mut replay_from = None;
        if let Some(after) = params.last_event_id {
            if after <= live_position {
                conn.position = after;
                replay_from = Some(after);
            } else if after
                <= self
                    .state
                    .events
                    .last_id(self.stream_id)
                    .await
                    .unwrap_or(after)
            {
                // Another process may have delivered events this one has yet to: skip them.
                conn.position = after;
            } else {
                conn.send_error(SocketError::new(
                    "invalid_last_event_id",
                    "`last_event_id` is beyond the stream's latest event; starting from now.",
                ))
                .await?;
            }
        }
        let ready = Ready {
            stream_id: self.stream_id,
            user: self.user.clone(),
            viewer_count: subscription.hub.viewer_count(),
        };
        conn.send_control(&Control::Ready(ready)).await?;
        if let Some(after) = replay_from {
            replay(
                conn,
                &self.state,
                self.stream_id,
                after,
                live_position,
                None,
            )
            .await?;
        }
        Ok(())
    }

    async fn serve(&mut self, conn: &mut Connection, subscription: &mut Subscription) -> Stop {
        loop {
            let result = match conn.next(Some(&mut subscription.receiver)).await {
                Next::Stop(stop) => return stop,
                Next::Event(event) => conn.on_event(event, |_| true).await,
                Next::Client(Message::Text(text)) => self.handle(conn, text.as_str()).await,
                Next::Client(_) => {
                    conn.send_error(SocketError::new(
                        "unsupported_frame",
                        "Send JSON text messages; binary frames are not understood.",
                    ))
                    .await
                }
            };
            if let Err(stop) = result {
                return stop;
            }
        }
    }

    /// Acts on one client message. Mistakes are answered with an `error`; only a broken
    /// connection ends the socket.
    async fn handle(&mut self, conn: &mut Connection, text: &str) -> Result<(), Stop> {
        if text.len() > MAX_CLIENT_MESSAGE {
            return conn
                .send_error(SocketError::new(
                    "message_too_large",
                    format!("Messages are limited to {MAX_CLIENT_MESSAGE} bytes."),
                ))
                .await;
        }
        let message = match parse_client_message(text) {
            Ok(message) => message,
            Err(rejected) => return conn.send_error(rejected.into()).await,
        };
        match message {
            ClientMessage::Ping { reference } => {
                conn.send_control(&Control::Pong(Pong { reference })).await
            }
            ClientMessage::Auth { token, reference } => match self.authenticate(token).await {
                Ok(user) => {
                    conn.send_control(&Control::Authenticated(Authenticated { user }))
                        .await
                }
                Err(error) => {
                    conn.send_error(SocketError::from_app(&error, reference))
                        .await
                }
            },
            ClientMessage::CommentCreate { content, reference } => {
                match self.comment(&content).await {
                    // The comment arrives as `comment.created`, like everyone else's.
                    Ok(()) => Ok(()),
                    Err(error) => {
                        conn.send_error(SocketError::from_app(&error, reference))
                            .await
                    }
                }
            }
        }
    }

    /// Identifies the socket's user. A failure leaves the socket read-only, whoever it was
    /// before: a client that sends a bad token must not keep commenting under an old one.
    async fn authenticate(&mut self, token: String) -> Result<PublicUser, AppError> {
        self.user = None;
        self.token = None;
        let user = authenticate(&self.state, &token).await?;
        let public = PublicUser {
            id: user.id,
            username: user.username,
        };
        self.user = Some(public.clone());
        self.token = Some(token);
        Ok(public)
    }

    async fn comment(&self, content: &str) -> Result<(), AppError> {
        let Some(token) = &self.token else {
            return Err(AppError::Unauthorized {
                code: ErrorCode::NotAuthenticated,
                detail: Cow::Borrowed(
                    "Send an access token (`token` in the URL or an `auth` message) to comment.",
                ),
            });
        };
        // Checked again each time: the token may have expired, the account been disabled.
        let author = authenticate(&self.state, token).await?;
        comments::post(&self.state, &author, self.stream_id, content).await?;
        Ok(())
    }
}

/// Sends the logged events in `(after, up_to]` (of one kind, if given), at most
/// [`MAX_REPLAY`]; warns the client with `history_truncated` when some are no longer kept.
pub(crate) async fn replay(
    conn: &mut Connection,
    state: &AppState,
    stream_id: Uuid,
    after: u64,
    up_to: u64,
    kind: Option<&str>,
) -> Result<(), Stop> {
    if after >= up_to {
        return Ok(());
    }
    let oldest = match state.events.oldest_id(stream_id).await {
        Ok(oldest) => oldest,
        Err(e) => return replay_failed(conn, stream_id, &e).await,
    };
    // Nothing kept means everything up to `up_to` is gone.
    let first_kept = oldest.unwrap_or(up_to + 1);
    let mut from = after
        .max(up_to.saturating_sub(MAX_REPLAY))
        .max(first_kept.saturating_sub(1));
    if from > after {
        conn.send_error(SocketError::new(
            "history_truncated",
            "Some events since `last_event_id` are no longer kept; reload the comments to catch up.",
        ))
        .await?;
    }
    from = from.min(up_to);
    loop {
        let page = match state
            .events
            .history(stream_id, from, Some(up_to), kind, REPLAY_PAGE)
            .await
        {
            Ok(page) => page,
            Err(e) => return replay_failed(conn, stream_id, &e).await,
        };
        let Some(last) = page.last() else { break };
        from = last.id;
        let full = page.len() == REPLAY_PAGE as usize;
        for event in page {
            conn.replay(Frame::from_logged(event)).await?;
        }
        conn.flush().await?;
        if !full {
            break;
        }
    }
    // Filtered replays stop short of `up_to`; the position is where live delivery resumes.
    conn.position = conn.position.max(up_to);
    Ok(())
}

async fn replay_failed(
    conn: &mut Connection,
    stream_id: Uuid,
    e: &sqlx::Error,
) -> Result<(), Stop> {
    tracing::warn!(%stream_id, cause = %e, "cannot read the event log to replay missed events");
    conn.send_error(SocketError::new(
        "history_truncated",
        "Missed events could not be read right now; reload the comments to catch up.",
    ))
    .await
}
