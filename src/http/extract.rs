//! Request extractors whose rejections are problem documents with field-level detail.
//!
//! Use these instead of axum's `Json`, `Path` and `Query`: a malformed body answers 400
//! `malformed_json`, a wrong content type 415, an oversized body 413, and a body or query of the
//! wrong shape 422 `validation_failed` naming the field — never axum's plain-text rejections.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{AppError, ErrorCode, FieldError};
use crate::state::AppState;

/// JSON request body (and response body).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(&req) {
            return Err(AppError::BadRequest {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code: ErrorCode::UnsupportedMediaType,
                detail: Cow::Borrowed(
                    "Send the body as JSON with `Content-Type: application/json`.",
                ),
            });
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| bytes_rejection(&r))?;
        parse_json(&bytes).map(Json)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn has_json_content_type(req: &Request) -> bool {
    let Some(value) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn bytes_rejection(rejection: &BytesRejection) -> AppError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::BadRequest {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: ErrorCode::PayloadTooLarge,
            detail: Cow::Borrowed("The request body is too large."),
        }
    } else {
        AppError::BadRequest {
            status: StatusCode::BAD_REQUEST,
            code: ErrorCode::UnreadableBody,
            detail: Cow::Borrowed("The request body could not be read."),
        }
    }
}

/// Parses a JSON document, reporting syntax errors as 400 and shape errors as field errors. A
/// string holding NUL (`\u0000`, which PostgreSQL cannot store in text) is a 422 field error
/// for whichever field it is in, so no handler has to think of it.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    if let Some(field) = nul_field(bytes) {
        return Err(AppError::Validation(vec![nul_error(field)]));
    }
    let malformed = |e: &serde_json::Error| AppError::BadRequest {
        status: StatusCode::BAD_REQUEST,
        code: ErrorCode::MalformedJson,
        detail: Cow::Owned(format!("The request body is not valid JSON: {e}.")),
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_data() {
            AppError::Validation(vec![shape_error(&path, &inner.to_string())])
        } else {
            malformed(&inner)
        }
    })?;
    de.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

fn nul_error(field: String) -> FieldError {
    FieldError::new(
        field,
        "invalid_characters",
        "Text cannot contain NUL characters.",
    )
}

/// Where the first string (or key) holding NUL is, if any. NUL can only reach a JSON string as
/// the escape `\u0000`, so documents without that sequence are not looked at twice.
fn nul_field(bytes: &[u8]) -> Option<String> {
    if !bytes.windows(6).any(|w| w == b"\\u0000") {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    find_nul(&value, "")
}

fn find_nul(value: &serde_json::Value, path: &str) -> Option<String> {
    match value {
        serde_json::Value::String(s) => s.contains('\0').then(|| path.to_owned()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| find_nul(item, &format!("{path}[{i}]"))),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if key.contains('\0') {
                Some(child.replace('\0', ""))
            } else {
                find_nul(item, &child)
            }
        }),
        _ => None,
    }
}

/// Turns a serde message into a field error. serde reports a missing field at the parent's path
/// with the name only in the message ("missing field `email`"), so it is lifted out of there.
fn shape_error(path: &str, message: &str) -> FieldError {
    let message = strip_position(message);
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        let field = if path.is_empty() || path == "." {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        };
        return FieldError::new(field, "required", "This field is required.");
    }
    if let Some(name) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        let field = if path.is_empty() || path == "." {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        };
        return FieldError::new(
            field,
            "unknown_field",
            format!("Unknown field `{name}`: it cannot be set here."),
        );
    }
    let field = if path == "." {
        String::new()
    } else {
        path.to_owned()
    };
    FieldError::new(field, "invalid_type", capitalise(&message))
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect::<String>() + ".")
        .unwrap_or_default()
}

/// Query string parameters, with field errors for values of the wrong type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if let Some((key, _)) = form_urlencoded::parse(query.as_bytes())
            .find(|(key, value)| key.contains('\0') || value.contains('\0'))
        {
            return Err(AppError::Validation(vec![nul_error(key.replace('\0', ""))]));
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|err| {
                let path = err.path().to_string();
                AppError::Validation(vec![shape_error(&path, &err.into_inner().to_string())])
            })
    }
}

/// Path parameters. A parameter that does not parse (an id that is not a UUID) cannot name an
/// existing resource, so it answers 404 like any unknown id.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Nothing is named with a NUL in it.
        if parts.uri.path().contains("%00") {
            return Err(AppError::NotFound {
                code: ErrorCode::NotFound,
                detail: Cow::Borrowed("No such resource."),
            });
        }
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => {
                tracing::debug!(%rejection, "path parameters did not parse");
                Err(AppError::NotFound {
                    code: ErrorCode::NotFound,
                    detail: Cow::Borrowed("No such resource."),
                })
            }
        }
    }
}

/// The client's IP address: the TCP peer's, or, when the peer is one of
/// `SIARAN_TRUSTED_PROXIES`, the first address in `X-Forwarded-For` (read from the right)
/// that is not a trusted proxy. See [`crate::http::proxy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([127, 0, 0, 1]), |ConnectInfo(addr)| addr.ip());
        Ok(Self(state.proxies.client_ip(peer, &parts.headers)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        count: u32,
    }

    fn field_errors(e: AppError) -> Vec<FieldError> {
        match e {
            AppError::Validation(errors) => errors,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn missing_field_is_named() {
        let errors = field_errors(parse_json::<Body>(br#"{"name": "x"}"#).unwrap_err());
        assert_eq!(errors[0].field, "count");
        assert_eq!(errors[0].code, "required");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let errors =
            field_errors(parse_json::<Body>(br#"{"name": "x", "count": "many"}"#).unwrap_err());
        assert_eq!(errors[0].field, "count");
        assert_eq!(errors[0].code, "invalid_type");
    }

    #[test]
    fn nul_in_any_string_is_a_field_error_naming_it() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Nested {
            title: String,
            tags: Vec<String>,
        }
        let errors = field_errors(
            parse_json::<Nested>(br#"{"title": "ok", "tags": ["a", "b\u0000c"]}"#).unwrap_err(),
        );
        assert_eq!(errors[0].field, "tags[1]");
        assert_eq!(errors[0].code, "invalid_characters");
        let errors =
            field_errors(parse_json::<Body>(br#"{"name": "\u0000", "count": 1}"#).unwrap_err());
        assert_eq!(errors[0].field, "name");
        // An escaped backslash followed by `u0000` is no NUL.
        let body: Body = parse_json(br#"{"name": "\\u0000", "count": 1}"#).unwrap();
        assert_eq!(body.name, "\\u0000");
    }

    #[test]
    fn syntax_error_is_a_bad_request() {
        let err = parse_json::<Body>(br#"{"name": "#).unwrap_err();
        assert!(matches!(
            err,
            AppError::BadRequest {
                code: ErrorCode::MalformedJson,
                ..
            }
        ));
        let err = parse_json::<Body>(br#"{"name": "x", "count": 1} trailing"#).unwrap_err();
        assert!(matches!(
            err,
            AppError::BadRequest {
                code: ErrorCode::MalformedJson,
                ..
            }
        ));
    }
}
