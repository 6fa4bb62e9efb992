//! Errors as the API shows them: every failure becomes an RFC 9457 problem
//! (`application/problem+json`) with a stable machine-readable `code`.
//!
//! Handlers return `Result<_, AppError>`. Client mistakes map to 4xx with a specific code;
//! internal failures are logged here with their cause and answered with a generic 500 (or 503
//! when a backing service is down) that leaks nothing.

use std::borrow::Cow;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Declares [`ErrorCode`]: the variants and the text each one is in a problem document.
macro_rules! error_codes {
    ($($variant:ident => $code:literal,)*) => {
        /// Every `code` a problem document can carry, in one list (the README's table is
        /// checked against it). The status is the error's; most codes go with one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            pub const ALL: &'static [Self] = &[$(Self::$variant,)*];

            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)*
                }
            }
        }
    };
}

error_codes! {
    // 400
    MalformedJson => "malformed_json",
    UnreadableBody => "unreadable_body",
    BadRequest => "bad_request",
    HlsTooFarAhead => "hls_too_far_ahead",
    // 401
    Unauthorized => "unauthorized",
    NotAuthenticated => "not_authenticated",
    InvalidToken => "invalid_token",
    TokenExpired => "token_expired",
    AccountDisabled => "account_disabled",
    InvalidCredentials => "invalid_credentials",
    InvalidRefreshToken => "invalid_refresh_token",
    RefreshTokenReused => "refresh_token_reused",
    InvalidSignature => "invalid_signature",
    // 403
    Forbidden => "forbidden",
    NotAStreamer => "not_a_streamer",
    // 404
    NotFound => "not_found",
    RouteNotFound => "route_not_found",
    UnknownOrder => "unknown_order",
    // 404 and 409
    PayoutDetailsMissing => "payout_details_missing",
    // 405
    MethodNotAllowed => "method_not_allowed",
    // 408
    RequestTimeout => "request_timeout",
    // 409
    NotBankTransfer => "not_bank_transfer",
    DonationExpired => "donation_expired",
    DonationNotPending => "donation_not_pending",
    StreamNotLive => "stream_not_live",
    CannotDeactivateSelf => "cannot_deactivate_self",
    // 413
    PayloadTooLarge => "payload_too_large",
    // 415
    UnsupportedMediaType => "unsupported_media_type",
    // 422
    ValidationFailed => "validation_failed",
    // 426
    WebsocketRequired => "websocket_required",
    UpgradeRequired => "upgrade_required",
    // 429
    TooManyLoginAttempts => "too_many_login_attempts",
    TooManyRegistrations => "too_many_registrations",
    TooManyRefreshes => "too_many_refreshes",
    DonationRateLimited => "donation_rate_limited",
    CommentRateLimited => "comment_rate_limited",
    TooManyOverlays => "too_many_overlays",
    // 500
    InternalError => "internal_error",
    // 502
    PaymentProviderError => "payment_provider_error",
    // 503
    ServiceUnavailable => "service_unavailable",
    NotReady => "not_ready",
    ServiceBusy => "service_busy",
    TooManyConnections => "too_many_connections",
    HlsNotReady => "hls_not_ready",
}

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's name as it appears in the request (`email`, `amount`, ...).
    pub field: Cow<'static, str>,
    /// Stable machine-readable reason (`required`, `too_short`, `taken`, ...).
    pub code: Cow<'static, str>,
    /// Human sentence for the person who filled the form.
    pub message: Cow<'static, str>,
}

impl FieldError {
    pub fn new(
        field: impl Into<Cow<'static, str>>,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            field: field.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The body of every error response (RFC 9457 problem details).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:siaran:problem:validation_failed",
    "title": "Unprocessable Entity",
    "status": 422,
    "detail": "The request has invalid fields.",
    "code": "validation_failed",
    "errors": [{"field": "email", "code": "invalid", "message": "Enter a valid email address."}]
}))]
pub struct Problem {
    /// `urn:siaran:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary: the HTTP reason phrase.
    pub title: Cow<'static, str>,
    /// The HTTP status code.
    pub status: u16,
    /// Human explanation of this occurrence.
    pub detail: Cow<'static, str>,
    /// Stable machine-readable error code.
    pub code: Cow<'static, str>,
    /// Per-field errors, for validation failures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Seconds to wait before retrying, for rate limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl Problem {
    #[must_use]
    pub fn new(status: StatusCode, code: ErrorCode, detail: impl Into<Cow<'static, str>>) -> Self {
        let code = Cow::Borrowed(code.as_str());
        Self {
            kind: format!("urn:siaran:problem:{code}"),
            title: Cow::Borrowed(status.canonical_reason().unwrap_or("Error")),
            status: status.as_u16(),
            detail: detail.into(),
            code,
            errors: Vec::new(),
            retry_after: None,
        }
    }

    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = self.retry_after;
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// One or more fields are invalid (422).
    #[error("validation failed")]
    Validation(Vec<FieldError>),

    /// The request itself could not be understood: malformed JSON, wrong content type (400/415/413).
    #[error("{detail}")]
    BadRequest {
        status: StatusCode,
        code: ErrorCode,
        detail: Cow<'static, str>,
    },

    /// No valid credentials (401).
    #[error("{detail}")]
    Unauthorized {
        code: ErrorCode,
        detail: Cow<'static, str>,
    },

    /// Credentials are valid but do not allow this (403).
    #[error("{detail}")]
    Forbidden {
        code: ErrorCode,
        detail: Cow<'static, str>,
    },

    /// The thing does not exist, or the caller may not know it does (404).
    #[error("{detail}")]
    NotFound {
        code: ErrorCode,
        detail: Cow<'static, str>,
    },

    /// The request conflicts with the current state (409).
    #[error("{detail}")]
    Conflict {
        code: ErrorCode,
        detail: Cow<'static, str>,
    },

    /// Too many attempts; retry after the given time (429).
    #[error("{detail}")]
    TooManyRequests {
        code: ErrorCode,
        detail: Cow<'static, str>,
        retry_after: Duration,
    },

    /// An upstream service (the payment gateway) failed or refused (502).
    #[error("{detail}")]
    BadGateway {
        code: ErrorCode,
        detail: Cow<'static, str>,
    },

    /// The server is too busy for this request right now; retry after the given time (503).
    #[error("{detail}")]
    Busy {
        code: ErrorCode,
        detail: Cow<'static, str>,
        retry_after: Duration,
    },

    /// A backing service (PostgreSQL, Redis) is unreachable (503).
    #[error("service unavailable: {0:#}")]
    Unavailable(anyhow::Error),

    /// A bug or an unexpected failure (500). Logged, never shown.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl AppError {
    pub fn not_found(what: &'static str) -> Self {
        Self::NotFound {
            code: ErrorCode::NotFound,
            detail: Cow::Owned(format!("{what} not found.")),
        }
    }

    pub fn forbidden(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::Forbidden {
            code: ErrorCode::Forbidden,
            detail: detail.into(),
        }
    }

    pub fn conflict(code: ErrorCode, detail: impl Into<Cow<'static, str>>) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
        }
    }

    /// A single-field validation error.
    pub fn invalid(
        field: impl Into<Cow<'static, str>>,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::Validation(vec![FieldError::new(field, code, message)])
    }

    /// Converts the error into the problem document the client sees, logging internal causes.
    #[must_use]
    pub fn to_problem(&self) -> Problem {
        match self {
            Self::Validation(errors) => {
                let mut p = Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ErrorCode::ValidationFailed,
                    match errors.as_slice() {
                        [one] => Cow::Owned(one.message.to_string()),
                        _ => Cow::Borrowed("The request has invalid fields."),
                    },
                );
                p.errors.clone_from(errors);
                p
            }
            Self::BadRequest {
                status,
                code,
                detail,
            } => Problem::new(*status, *code, detail.clone()),
            Self::Unauthorized { code, detail } => {
                Problem::new(StatusCode::UNAUTHORIZED, *code, detail.clone())
            }
            Self::Forbidden { code, detail } => {
                Problem::new(StatusCode::FORBIDDEN, *code, detail.clone())
            }
            Self::NotFound { code, detail } => {
                Problem::new(StatusCode::NOT_FOUND, *code, detail.clone())
            }
            Self::Conflict { code, detail } => {
                Problem::new(StatusCode::CONFLICT, *code, detail.clone())
            }
            Self::TooManyRequests {
                code,
                detail,
                retry_after,
            } => {
                let mut p = Problem::new(StatusCode::TOO_MANY_REQUESTS, *code, detail.clone());
                p.retry_after = Some(retry_after.as_secs().max(1));
                p
            }
            Self::BadGateway { code, detail } => {
                Problem::new(StatusCode::BAD_GATEWAY, *code, detail.clone())
            }
            Self::Busy {
                code,
                detail,
                retry_after,
            } => {
                let mut p = Problem::new(StatusCode::SERVICE_UNAVAILABLE, *code, detail.clone());
                p.retry_after = Some(retry_after.as_secs().max(1));
                p
            }
            Self::Unavailable(cause) => {
                tracing::error!(cause = format!("{cause:#}"), "backing service unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::ServiceUnavailable,
                    "The service is temporarily unavailable. Please try again shortly.",
                )
            }
            Self::Internal(cause) => {
                tracing::error!(cause = format!("{cause:#}"), "internal error");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::InternalError,
                    "Something went wrong on our side.",
                )
            }
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.to_problem().into_response()
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        if is_unavailable(&e) {
            Self::Unavailable(e.into())
        } else if is_unstorable_text(&e) {
            // The extractors refuse NUL in bodies and query strings with the field's name; this
            // is the backstop for text that reached a query some other way.
            tracing::info!(cause = %e, "text PostgreSQL cannot store");
            Self::invalid(
                "",
                "invalid_characters",
                "The request contains characters that cannot be stored (such as NUL).",
            )
        } else {
            Self::Internal(e.into())
        }
    }
}

/// Whether PostgreSQL refused a value because of what its text contains: NUL in `text`
/// (`22021`, invalid byte sequence) or in `jsonb` (`22P05`, untranslatable character). A
/// client's mistake, never the server's.
fn is_unstorable_text(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("22021" | "22P05")))
}

impl From<crate::auth::password::HashError> for AppError {
    fn from(e: crate::auth::password::HashError) -> Self {
        match e {
            crate::auth::password::HashError::Busy { retry_after } => Self::Busy {
                code: ErrorCode::ServiceBusy,
                detail: Cow::Borrowed(
                    "The server is busy checking passwords; please try again in a moment.",
                ),
                retry_after,
            },
            crate::auth::password::HashError::Failed(e) => Self::Internal(e),
        }
    }
}

impl From<redis::RedisError> for AppError {
    fn from(e: redis::RedisError) -> Self {
        if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
        {
            Self::Unavailable(e.into())
        } else {
            Self::Internal(e.into())
        }
    }
}

impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<sqlx::Error>() {
            Ok(sqlx) => sqlx.into(),
            Err(e) => Self::Internal(e),
        }
    }
}

/// Whether a database error means "the database is not there" rather than "the query is wrong".
fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
    )
}

/// The name of the constraint a database error violated, if any. Handlers match on it to turn
/// unique violations into field errors, so that a race between two registrations with the same
/// name answers 422, not 500 (as realworld-axum-sqlx's `on_constraint` does).
#[must_use]
pub fn constraint(e: &sqlx::Error) -> Option<&str> {
    match e {
        sqlx::Error::Database(db) => db.constraint(),
        _ => None,
    }
}

impl From<FieldError> for AppError {
    fn from(e: FieldError) -> Self {
        Self::Validation(vec![e])
    }
}

/// Result alias for handlers.
pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_lists_every_error_code_and_no_other() {
        let readme = include_str!("../README.md");
        let table = readme
            .split("| status | codes | when |")
            .nth(1)
            .expect("the README's table of error codes");
        let listed: std::collections::BTreeSet<&str> = table
            .lines()
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .filter_map(|row| row.split('|').nth(2))
            .flat_map(|codes| codes.split(','))
            .map(|code| code.trim().trim_matches('`'))
            .collect();
        let known: std::collections::BTreeSet<&str> =
            ErrorCode::ALL.iter().map(|code| code.as_str()).collect();

        let undocumented: Vec<_> = known.difference(&listed).collect();
        let unknown: Vec<_> = listed.difference(&known).collect();
        assert!(
            undocumented.is_empty(),
            "codes the README does not list: {undocumented:?}"
        );
        assert!(
            unknown.is_empty(),
            "README codes no error carries: {unknown:?}"
        );
    }
}
