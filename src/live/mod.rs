//! Real time: the live events of a stream, carried between server processes by Redis and
//! delivered to viewers over `/ws/stream/{id}/`, the OBS overlay socket, and viewer counts.
//!
//! - [`events`]: publishing (the log in PostgreSQL, the announcement on Redis) — read its header
//!   for why events travel the way they do.
//! - [`relay`]: this process's one Redis subscription, shared by every stream it serves.
//! - [`hub`]: per stream with local sockets, puts events in id order (repairing gaps from the log)
//!   and fans them out in memory.
//! - [`socket`]: the `/ws/stream/{id}/` protocol; [`overlay`]: overlay tokens and
//!   `/ws/overlay/{token}`; [`connection`]: what both sockets share (heartbeats, slow clients).
//! - [`notices`]: what overlays learn about their streamer (live, ended, token replaced), pushed.
//! - [`viewers`]: open sockets per stream across processes, published as `viewers.count`.

pub mod connection;
pub(crate) mod db;
pub mod events;
pub mod hub;
pub mod notices;
pub mod overlay;
pub mod protocol;
pub mod relay;
mod reorder;
pub mod runtime;
pub mod socket;
pub mod viewers;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub use crate::config::LiveConfig;
pub use runtime::Live;

#[derive(OpenApi)]
#[openapi(components(schemas(
    events::Envelope,
    events::EventData,
    protocol::ClientMessage,
    protocol::Control,
)))]
struct LiveDoc;

/// The sockets and the overlay token endpoints.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(LiveDoc::openapi())
        .routes(routes!(socket::stream_socket))
        .routes(routes!(overlay::overlay_socket))
        .routes(routes!(overlay::create_token))
        .routes(routes!(overlay::token_status))
}
