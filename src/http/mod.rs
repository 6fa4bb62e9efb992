//! The HTTP surface: every feature's router merged in one place, the OpenAPI document built
//! from the same routes, and the layers every request passes through.

pub mod extract;
pub mod middleware;
pub mod ops;
pub mod pagination;
pub mod proxy;
pub mod server;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::CorsLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::{ErrorCode, Problem};
use crate::state::AppState;
use crate::{admin, auth, comments, donations, live, openapi, streams, users};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every documented route, with the OpenAPI document describing exactly those routes.
pub fn api() -> (Router<AppState>, OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(openapi::base())
        .merge(ops::router())
        .merge(auth::router())
        .merge(users::router())
        .merge(admin::router())
        .merge(streams::router())
        .merge(donations::router())
        .merge(comments::router())
        .merge(live::router())
        .split_for_parts();
    openapi::complete(&mut doc);
    (router, doc)
}

/// The whole application: API, docs, fallbacks and layers.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = api();
    let max_body = state.config.max_body_bytes;
    // Requests (not WebSocket sessions, which are upgraded before this applies) must have their
    // response head within this; bodies are bounded by the server's write timeout.
    let request_timeout = Duration::from_secs(state.config.server.request_timeout_secs.max(1));
    let csp = HeaderValue::from_str(&middleware::content_security_policy(&state.config))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"));
    api.merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", openapi))
        .fallback(frontend_or_not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(middleware::ensure_problem_json))
        .layer(axum::middleware::from_fn(middleware::no_store_api))
        .layer(axum::middleware::from_fn(middleware::track_metrics))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, request_timeout))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        // Every response: the Content-Security-Policy, no MIME sniffing, no framing by other
        // sites, and no path (an overlay address holds its token) in referrers to other origins.
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, csp))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        ))
        .layer(CorsLayer::permissive())
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let request_id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
            tracing::info_span!("http", method = %req.method(), path = %live::overlay::loggable_path(req.uri().path()), request_id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

fn route_not_found() -> Response {
    Problem::new(
        StatusCode::NOT_FOUND,
        ErrorCode::RouteNotFound,
        "There is nothing at this address.",
    )
    .into_response()
}

/// Serves the built frontend for every path that is not the API's: its files, and `index.html`
/// for client-side routes (`/streams/…`, `/dashboard`). Unknown `/api`, `/hls` and `/ws` paths stay
/// problem documents.
async fn frontend_or_not_found(State(state): State<AppState>, req: Request) -> Response {
    let path = req.uri().path();
    let reserved = ["/api", "/hls", "/ws"].iter().any(|prefix| {
        path == *prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    });
    if reserved || !matches!(*req.method(), Method::GET | Method::HEAD) {
        return route_not_found();
    }
    let immutable = path.starts_with("/assets/");
    // Client-side routes have no file extension; a missing file (an old asset, `/Cargo.toml`)
    // is a 404, not the app's HTML with a 200 that the browser would try to run as a script.
    let wants_file = path
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'));
    let dir = &state.config.frontend_dir;
    let served = if wants_file {
        ServeDir::new(dir).oneshot(req).await
    } else {
        ServeDir::new(dir)
            .fallback(ServeFile::new(dir.join("index.html")))
            .oneshot(req)
            .await
    };
    let mut response = match served {
        Ok(response) => response.map(Body::new),
        Err(infallible) => match infallible {},
    };
    if response.status() == StatusCode::NOT_FOUND {
        return route_not_found();
    }
    // Vite fingerprints everything under /assets; the HTML that names them must be revalidated.
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}
