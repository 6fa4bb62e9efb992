//! The OBS alert overlay: a secret token per streamer, and `/ws/overlay/{token}`, which
//! delivers `donation.received` from whichever of the streamer's streams is live.
//!
//! The token is the only credential of an OBS browser source, so it is treated like a password:
//! 32 random bytes shown once when created (rotating replaces it, and closes sockets that used
//! the old one), stored as its SHA-256, never logged (the HTTP trace redacts overlay paths).
//!
//! The socket follows the streamer: it waits for a stream to go live, forwards that stream's
//! donations, and moves on to the next stream after `stream.ended`. Messages are the stream's
//! event envelopes, which carry `stream_id`; a reconnecting overlay passes the `stream_id` and
//! `last_event_id` it last saw and gets the donations it missed.
//!
//! Nothing here polls: the socket learns that a stream went live or ended, or that its token
//! was replaced, from pushed notices ([`super::notices`]), so an idle overlay costs no query.
//! A token may have [`super::LiveConfig::overlay_max_per_token`] sockets open per process and
//! an address [`super::LiveConfig::overlay_max_per_address`]; more are refused before the
//! upgrade with 429 `too_many_overlays`.

use std::borrow::Cow;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::OwnedSemaphorePermit;
use utoipa::ToSchema;
use uuid::Uuid;

use super::connection::{Connection, Next, SocketMetrics, Stop, configure};
use super::events::EventKind;
use super::hub::{Audience, FrameKind, Subscription};
use super::notices::{CapExceeded, Notice, Slot};
use super::protocol::{
    ClientMessage, Control, OverlayReady, Pong, SocketError, parse_client_message,
};
use super::socket::{admit, replay, websocket_required};
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, ErrorCode, Problem};
use crate::http::extract::{ClientIp, Json, Path, Query};
use crate::state::AppState;
use crate::users::model::PublicUser;

const PREFIX: &str = "sov_";
/// How long a socket waits before trying again to follow a stream whose hub could not start.
const RETRY_ATTACH: Duration = Duration::from_secs(2);
/// What a refused overlay is told to wait before retrying.
const CAP_RETRY_AFTER: Duration = Duration::from_secs(10);
const DONATION: &str = EventKind::DonationReceived.as_str();

/// The request path as logs may show it: overlay tokens (`/ws/overlay/{token}` and the page
/// `/overlay/{token}`) are secrets and are masked.
#[must_use]
pub fn loggable_path(path: &str) -> Cow<'_, str> {
    for prefix in ["/ws/overlay/", "/overlay/"] {
        if path.starts_with(prefix) {
            return Cow::Owned(format!("{prefix}…"));
        }
    }
    Cow::Borrowed(path)
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The last four characters, shown to tell tokens apart.
fn hint(token: &str) -> String {
    let chars: Vec<char> = token.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

fn masked(hint: &str) -> String {
    format!("{PREFIX}…{hint}")
}

/// The new overlay token, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct OverlayToken {
    /// The secret; keep it like a password.
    pub token: String,
    /// The page to add to OBS as a browser source.
    #[schema(example = "http://localhost:8000/overlay/sov_...")]
    pub overlay_url: String,
    /// The socket the overlay page reads donations from.
    #[schema(example = "/ws/overlay/sov_...")]
    pub socket_path: String,
    pub created_at: DateTime<Utc>,
}

/// Whether the user has an overlay token, without revealing it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OverlayStatus {
    pub exists: bool,
    /// The token's prefix and last four characters, e.g. `sov_…x9Qe`.
    pub masked_token: Option<String>,
    /// The overlay URL with the token masked.
    pub masked_url: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

/// Creates the signed-in streamer's overlay token, or replaces it.
///
/// The token is returned only here, once; a previous token stops working at once (overlays
/// using it are disconnected).
#[utoipa::path(post, path = "/api/users/me/overlay-token", tag = "live", security(("bearer" = [])),
    responses(
        (status = 201, description = "The new token (shown only now)", body = OverlayToken),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a streamer (`not_a_streamer`)", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub(crate) async fn create_token(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> AppResult<Response> {
    if !user.is_streamer {
        return Err(AppError::Forbidden {
            code: ErrorCode::NotAStreamer,
            detail: Cow::Borrowed("Only streamers have an overlay; opt in to streaming first."),
        });
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let created_at =
        super::db::save_overlay_token(&state.db, user.id, &hash(&token), &hint(&token)).await?;
    tracing::info!(user_id = %user.id, "overlay token created");
    // Sockets on the replaced token close; those on the new one (none yet) would stay.
    state.live.close_overlays(user.id).await;
    let body = OverlayToken {
        overlay_url: format!("{}/overlay/{token}", state.config.public_base()),
        socket_path: format!("/ws/overlay/{token}"),
        token,
        created_at,
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Whether the signed-in user has an overlay token, masked.
#[utoipa::path(get, path = "/api/users/me/overlay", tag = "live", security(("bearer" = [])),
    responses(
        (status = 200, description = "Whether a token exists", body = OverlayStatus),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn token_status(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> AppResult<Json<OverlayStatus>> {
    let row = super::db::overlay_token_of(&state.db, user.id).await?;
    Ok(Json(match row {
        Some((hint, created_at)) => OverlayStatus {
            exists: true,
            masked_url: Some(format!(
                "{}/overlay/{}",
                state.config.public_base(),
                masked(&hint)
            )),
            masked_token: Some(masked(&hint)),
            created_at: Some(created_at),
        },
        None => OverlayStatus {
            exists: false,
            masked_token: None,
            masked_url: None,
            created_at: None,
        },
    }))
}

// Derived by path: utoipa names `utoipa::IntoParams` in code spanned at the handler argument,
// which an imported `IntoParams` would make an unnecessary qualification.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OverlayParams {
    /// With `last_event_id`: the stream of the last donation message received before a
    /// disconnect, to receive the donations missed since.
    stream_id: Option<Uuid>,
    /// The `id` of that message.
    last_event_id: Option<u64>,
}

/// Donation alerts for an OBS overlay, over WebSocket.
///
/// Upgrade to WebSocket. The server sends `overlay.ready`, then every `donation.received` of the
/// token owner's live stream (envelopes as on the stream socket, with `stream_id`). An unknown or
/// replaced token gets an `error` with code `invalid_overlay_token` and the socket is closed with
/// 1008. Clients may send `ping`.
#[utoipa::path(get, path = "/ws/overlay/{token}", tag = "live",
    params(("token" = String, Path, description = "The overlay token"), OverlayParams),
    responses(
        (status = 101, description = "Switching to WebSocket; messages are `Envelope` (donations) and `Control`"),
        (status = 426, description = "Not a WebSocket request (`websocket_required`)", body = Problem,
            content_type = "application/problem+json"),
        (status = 429, description = "The token or the address has as many overlay sockets open as allowed (`too_many_overlays`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many open sockets", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn overlay_socket(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(params): Query<OverlayParams>,
    ClientIp(address): ClientIp,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> AppResult<Response> {
    let upgrade = upgrade.map_err(|e| websocket_required(&e))?;
    let permit = admit(&state)?;
    let token_hash = hash(&token);
    let streamer = super::db::overlay_token_owner(&state.db, &token_hash).await?;
    // The slot (and with it the notices) exists before the first look at the live stream, so
    // a stream going live in between is not missed.
    let hubs = state.live.hubs();
    let slot = hubs
        .overlays
        .admit(
            token_hash.clone(),
            address,
            streamer.as_ref().map(|s| s.id),
            hubs.relay(),
            &state.events.overlay_channel(),
        )
        .map_err(|cap| AppError::TooManyRequests {
            code: ErrorCode::TooManyOverlays,
            detail: Cow::Borrowed(match cap {
                CapExceeded::Token => {
                    "This overlay link has as many overlays open as allowed; close one first."
                }
                CapExceeded::Address => {
                    "This address has as many overlays open as allowed; close one first."
                }
            }),
            retry_after: CAP_RETRY_AFTER,
        })?;
    let tasks = state.tasks.clone();
    Ok(configure(upgrade).on_upgrade(move |socket| {
        let session = OverlaySession {
            state,
            token_hash,
            _permit: permit,
        };
        tasks.track_future(session.run(socket, streamer, params, slot))
    }))
}

struct OverlaySession {
    state: AppState,
    token_hash: Vec<u8>,
    _permit: OwnedSemaphorePermit,
}

/// Why an attached overlay let go of its stream.
enum Detach {
    /// The stream ended; look for the next one.
    StreamEnded,
    Stop(Stop),
}

impl OverlaySession {
    async fn run(
        self,
        socket: WebSocket,
        streamer: Option<PublicUser>,
        params: OverlayParams,
        mut slot: Slot,
    ) {
        let metrics = SocketMetrics::open("overlay");
        let config = &self.state.live.hubs().config;
        let mut conn = Connection::new(socket, config, 0, &self.state.shutdown);
        let stop = match streamer {
            Some(streamer) => self.serve(&mut conn, streamer, params, &mut slot).await,
            None => {
                refuse(&mut conn).await;
                Stop::ClientLeft
            }
        };
        tracing::debug!(?stop, "overlay socket closed");
        metrics.closed(&stop);
    }

    async fn serve(
        &self,
        conn: &mut Connection,
        streamer: PublicUser,
        params: OverlayParams,
        slot: &mut Slot,
    ) -> Stop {
        let streamer_id = streamer.id;
        // Attach to the live stream before saying ready, so that every donation after
        // `overlay.ready` is shown.
        let mut attached = match self.check(conn, streamer_id).await {
            Ok(Some(stream_id)) => self.attach(stream_id).await,
            Ok(None) => None,
            Err(stop) => return stop,
        };
        let ready = OverlayReady {
            streamer,
            stream_id: attached.as_ref().map(|s| s.hub.stream_id),
        };
        if let Err(stop) = conn.send_control(&Control::OverlayReady(ready)).await {
            return stop;
        }
        // Where to start on the first stream: where the client left off, or (without a resume
        // point) from now. Streams found later went live while this socket was open, so all
        // their donations are new to it.
        let mut resume = params.stream_id.zip(params.last_event_id);
        // Only a stream live before `overlay.ready` starts from now; one found afterwards went
        // live while the socket was open, and a donation made before this socket has joined its
        // hub must still be shown.
        let mut from_now = resume.is_none() && attached.is_some();
        loop {
            let mut subscription = match attached.take() {
                Some(subscription) => subscription,
                None => {
                    let stream_id = match self.wait_for_live_stream(conn, streamer_id, slot).await {
                        Ok(stream_id) => stream_id,
                        Err(stop) => return stop,
                    };
                    match self.attach(stream_id).await {
                        Some(subscription) => subscription,
                        None => {
                            if let Err(stop) = self.pause(conn).await {
                                return stop;
                            }
                            continue;
                        }
                    }
                }
            };
            let stream_id = subscription.hub.stream_id;
            let start = match resume.take() {
                Some((resumed, after)) if resumed == stream_id => Start::After(after),
                Some((previous, after)) => {
                    // Finish the previous stream first.
                    let up_to = self.state.events.last_id(previous).await.unwrap_or(after);
                    conn.position = after;
                    if let Err(stop) =
                        replay(conn, &self.state, previous, after, up_to, Some(DONATION)).await
                    {
                        return stop;
                    }
                    Start::After(0)
                }
                None if from_now => Start::Now,
                None => Start::After(0),
            };
            from_now = false;
            conn.position = match start {
                Start::Now => subscription.position,
                Start::After(after) => after,
            };
            if let Start::After(after) = start
                && let Err(stop) = replay(
                    conn,
                    &self.state,
                    stream_id,
                    after,
                    subscription.position,
                    Some(DONATION),
                )
                .await
            {
                return stop;
            }
            match self
                .follow(conn, streamer_id, &mut subscription, slot)
                .await
            {
                Detach::StreamEnded => {}
                Detach::Stop(stop) => return stop,
            }
        }
    }

    /// Joins a stream's hub as an overlay (not counted as a viewer).
    async fn attach(&self, stream_id: Uuid) -> Option<Subscription> {
        match self
            .state
            .live
            .hubs()
            .join(stream_id, Audience::Overlay)
            .await
        {
            Ok(subscription) => Some(subscription),
            Err(e) => {
                tracing::warn!(%stream_id, cause = %e, "an overlay cannot follow its stream yet");
                None
            }
        }
    }

    /// Forwards the stream's donations until it ends.
    async fn follow(
        &self,
        conn: &mut Connection,
        streamer_id: Uuid,
        subscription: &mut Subscription,
        slot: &mut Slot,
    ) -> Detach {
        let stream_id = subscription.hub.stream_id;
        loop {
            let mut ended = false;
            let result = tokio::select! {
                next = conn.next(Some(&mut subscription.receiver)) => match next {
                    Next::Stop(stop) => return Detach::Stop(stop),
                    Next::Event(event) => {
                        if matches!(&event, Ok(frame) if frame.kind == FrameKind::StreamEnded) {
                            ended = true;
                        }
                        conn.on_event(event, |frame| {
                            frame.kind == FrameKind::DonationReceived
                        })
                        .await
                    }
                    Next::Client(message) => answer(conn, &message).await,
                },
                notice = slot.next() => match notice {
                    Notice::Ended(id) if id == stream_id => return Detach::StreamEnded,
                    // Another of the streamer's streams went live: follow the newest.
                    Notice::Live(id) if id != stream_id => return Detach::StreamEnded,
                    Notice::Live(_) | Notice::Ended(_) => Ok(()),
                    Notice::Revoked => self.check_token(conn, streamer_id).await,
                    Notice::Recheck => match self.check(conn, streamer_id).await {
                        Ok(Some(live)) if live == stream_id => Ok(()),
                        Ok(_) => return Detach::StreamEnded,
                        Err(stop) => Err(stop),
                    },
                },
            };
            if let Err(stop) = result {
                return Detach::Stop(stop);
            }
            if ended {
                return Detach::StreamEnded;
            }
        }
    }

    /// Waits until one of the streamer's streams is live: looks once, then waits for notices.
    async fn wait_for_live_stream(
        &self,
        conn: &mut Connection,
        streamer_id: Uuid,
        slot: &mut Slot,
    ) -> Result<Uuid, Stop> {
        if let Some(stream_id) = self.check(conn, streamer_id).await? {
            return Ok(stream_id);
        }
        loop {
            tokio::select! {
                next = conn.next(None) => match next {
                    Next::Stop(stop) => return Err(stop),
                    Next::Client(message) => answer(conn, &message).await?,
                    Next::Event(_) => {}
                },
                notice = slot.next() => match notice {
                    Notice::Live(stream_id) => return Ok(stream_id),
                    Notice::Ended(_) => {}
                    Notice::Revoked => self.check_token(conn, streamer_id).await?,
                    Notice::Recheck => {
                        if let Some(stream_id) = self.check(conn, streamer_id).await? {
                            return Ok(stream_id);
                        }
                    }
                },
            }
        }
    }

    /// Keeps the socket alive (heartbeats, pings) for a moment before attaching again.
    async fn pause(&self, conn: &mut Connection) -> Result<(), Stop> {
        let wake = tokio::time::sleep(RETRY_ATTACH);
        tokio::pin!(wake);
        loop {
            tokio::select! {
                () = &mut wake => return Ok(()),
                next = conn.next(None) => match next {
                    Next::Stop(stop) => return Err(stop),
                    Next::Client(message) => answer(conn, &message).await?,
                    Next::Event(_) => {}
                },
            }
        }
    }

    /// Closes the socket if its token is no longer the streamer's. A database hiccup changes
    /// nothing.
    async fn check_token(&self, conn: &mut Connection, streamer_id: Uuid) -> Result<(), Stop> {
        match super::db::overlay_token_owner(&self.state.db, &self.token_hash).await {
            Ok(Some(user)) if user.id == streamer_id => Ok(()),
            Ok(_) => {
                refuse(conn).await;
                Err(Stop::ClientLeft)
            }
            Err(e) => {
                tracing::warn!(cause = %e, "cannot check an overlay token");
                Ok(())
            }
        }
    }

    /// Checks that the token is still the streamer's (closing the socket if not) and returns
    /// the streamer's live stream. A database hiccup changes nothing.
    async fn check(&self, conn: &mut Connection, streamer_id: Uuid) -> Result<Option<Uuid>, Stop> {
        self.check_token(conn, streamer_id).await?;
        match crate::streams::db::live_stream_of(&self.state.db, streamer_id).await {
            Ok(live) => Ok(live),
            Err(e) => {
                tracing::warn!(cause = %e, "cannot look up the streamer's live stream");
                Ok(None)
            }
        }
    }
}

/// Where an overlay starts on a stream.
#[derive(Debug, Clone, Copy)]
enum Start {
    Now,
    After(u64),
}

/// Says why the token is refused and closes.
async fn refuse(conn: &mut Connection) {
    let _ = conn
        .send_error(SocketError::new(
            "invalid_overlay_token",
            "This overlay link is not valid (it may have been replaced); copy the current one from your dashboard.",
        ))
        .await;
    conn.close(1008, "invalid overlay token").await;
}

/// Answers what an overlay client sends: `ping` only.
async fn answer(conn: &mut Connection, message: &Message) -> Result<(), Stop> {
    let Message::Text(text) = message else {
        return conn
            .send_error(SocketError::new(
                "unsupported_frame",
                "Send JSON text messages.",
            ))
            .await;
    };
    match parse_client_message(text.as_str()) {
        Ok(ClientMessage::Ping { reference }) => {
            conn.send_control(&Control::Pong(Pong { reference })).await
        }
        Ok(_) => {
            conn.send_error(SocketError::new(
                "unknown_type",
                "The overlay socket accepts `ping` only.",
            ))
            .await
        }
        Err(rejected) => conn.send_error(rejected.into()).await,
    }
}
