//! Cross-cutting HTTP layers: request metrics, security headers, and the guarantee that every
//! error response is a problem document, whichever layer or extractor produced it.

use std::any::Any;
use std::borrow::Cow;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::Config;
use crate::error::{ErrorCode, PROBLEM_JSON, Problem};

/// The Content-Security-Policy of every response: the app's own scripts, styles, media and
/// sockets; Snap.js and its payment frame from the configured Midtrans origins (the real ones,
/// or the local fake's); no plugins, no framing by other sites (tokens live in `localStorage`,
/// so an injected script is the thing to keep out, and clickjacking the donate button the
/// thing to prevent).
///
/// - `style-src 'unsafe-inline'`: Vue's and Swagger UI's style attributes; styles cannot run code.
/// - `img-src data: blob:`: Swagger UI's inline SVG icons; `media-src`/`worker-src blob:`: hls.js
///   feeds the video element through Media Source Extensions and transmuxes in a blob worker.
/// - `connect-src`: the API and the WebSockets of this origin (and the public URL's, should the
///   app be reached under another name), and Snap's origins.
#[must_use]
pub fn content_security_policy(config: &Config) -> String {
    let snap = origin(&config.midtrans.snap_url);
    let api = origin(&config.midtrans.api_url);
    let public = origin(config.public_base());
    let socket = public.as_deref().map(|o| {
        o.replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1)
    });
    let list = |extra: &[Option<&str>]| {
        let mut sources = vec!["'self'"];
        sources.extend(extra.iter().flatten());
        sources.dedup();
        sources.join(" ")
    };
    let frames = snap.as_deref().map_or("'none'".to_owned(), str::to_owned);
    format!(
        "default-src 'self'; script-src {scripts}; style-src 'self' 'unsafe-inline'; \
         img-src {images} data: blob:; media-src 'self' blob:; worker-src 'self' blob:; \
         connect-src {connect}; frame-src {frames}; font-src 'self' data:; object-src 'none'; \
         base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
        scripts = list(&[snap.as_deref()]),
        images = list(&[snap.as_deref()]),
        connect = list(&[
            public.as_deref(),
            socket.as_deref(),
            snap.as_deref(),
            api.as_deref()
        ]),
    )
}

/// `scheme://host[:port]` of a URL, if it is one.
fn origin(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let origin = parsed.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// Records `http_requests_total` and `http_request_duration_seconds` by route template (never the
/// raw path, which would let clients create unbounded label values) and status.
pub async fn track_metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().map_or_else(
        || Cow::Borrowed("unmatched"),
        |p| Cow::Owned(p.as_str().to_owned()),
    );
    let method = req.method().as_str().to_owned();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [
        ("method", method),
        ("route", route.into_owned()),
        ("status", status),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels[..2])
        .record(started.elapsed().as_secs_f64());
    response
}

/// `Cache-Control: no-store` on every API answer that does not say otherwise: tokens, stream
/// keys, overlay addresses and payment details are answers of the API, and neither a shared
/// cache nor the browser's should keep them. One rule for the whole API rather than one per
/// handler, so a new route carrying a secret cannot forget it. The API's documentation is
/// exempt.
pub async fn no_store_api(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let api = (path.starts_with("/api/") && !path.starts_with("/api/docs"))
        && path != "/api/openapi.json";
    let mut response = next.run(req).await;
    if api && !response.headers().contains_key(header::CACHE_CONTROL) {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Rewrites any error response that is not already a problem document (axum's own 405, a
/// `ServeDir` 404, a timeout) into one, keeping its status and headers such as `Allow`.
pub async fn ensure_problem_json(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_problem(&response) {
        return response;
    }
    let (mut parts, _body) = response.into_parts();
    let (code, detail) = generic_problem(status);
    let problem = Problem::new(status, code, detail).into_response();
    let (problem_parts, body) = problem.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in &problem_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, body)
}

fn is_problem(response: &Response) -> bool {
    response.headers().get(header::CONTENT_TYPE) == Some(&HeaderValue::from_static(PROBLEM_JSON))
}

fn generic_problem(status: StatusCode) -> (ErrorCode, &'static str) {
    match status {
        StatusCode::BAD_REQUEST => (
            ErrorCode::BadRequest,
            "The request could not be understood.",
        ),
        StatusCode::UNAUTHORIZED => (ErrorCode::Unauthorized, "Authentication is required."),
        StatusCode::FORBIDDEN => (ErrorCode::Forbidden, "You are not allowed to do this."),
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, "No such resource."),
        StatusCode::METHOD_NOT_ALLOWED => (
            ErrorCode::MethodNotAllowed,
            "This method is not allowed on this resource.",
        ),
        StatusCode::REQUEST_TIMEOUT => (ErrorCode::RequestTimeout, "The request took too long."),
        StatusCode::PAYLOAD_TOO_LARGE => {
            (ErrorCode::PayloadTooLarge, "The request body is too large.")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            ErrorCode::UnsupportedMediaType,
            "This content type is not supported.",
        ),
        StatusCode::UPGRADE_REQUIRED => (
            ErrorCode::UpgradeRequired,
            "This endpoint speaks WebSocket only.",
        ),
        StatusCode::SERVICE_UNAVAILABLE => (
            ErrorCode::ServiceUnavailable,
            "The service is temporarily unavailable.",
        ),
        s if s.is_server_error() => (
            ErrorCode::InternalError,
            "Something went wrong on our side.",
        ),
        _ => (ErrorCode::BadRequest, "The request could not be processed."),
    }
}

/// Answers a panicking handler with a generic 500 problem (the panic itself is logged).
#[allow(clippy::needless_pass_by_value)] // the signature CatchPanicLayer asks for
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    tracing::error!(panic = message, "handler panicked");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::InternalError,
        "Something went wrong on our side.",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_snap_origins_and_forbids_framing() {
        let mut config = Config::from_args(["siaran"]).expect("defaults");
        config.midtrans.snap_url = "http://127.0.0.1:4010/".to_owned();
        config.midtrans.api_url = "https://api.sandbox.midtrans.com".to_owned();
        config.public_url = "https://live.example.com/".to_owned();

        let csp = content_security_policy(&config);

        assert!(
            csp.contains("script-src 'self' http://127.0.0.1:4010;"),
            "{csp}"
        );
        assert!(csp.contains("frame-src http://127.0.0.1:4010;"), "{csp}");
        assert!(
            csp.contains("connect-src 'self' https://live.example.com wss://live.example.com http://127.0.0.1:4010 https://api.sandbox.midtrans.com;"),
            "{csp}"
        );
        assert!(csp.ends_with("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("object-src 'none'"), "{csp}");
        assert!(
            !csp.contains("'unsafe-eval'") && !csp.contains("script-src 'self' 'unsafe-inline'")
        );
    }
}
