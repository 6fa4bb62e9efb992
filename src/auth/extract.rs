//! Who is calling: the `Authorization: Bearer <access token>` header turned into a user.
//!
//! The user row is loaded on every request, so deactivating an account takes effect at once,
//! even for access tokens that have not expired yet.

use std::borrow::Cow;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::auth::jwt::TokenError;
use crate::error::{AppError, ErrorCode};
use crate::state::AppState;
use crate::users::model::User;

/// An authenticated, active user. Rejects with 401 when there is no valid token.
#[derive(Debug, Clone)]
pub struct AuthUser(pub User);

/// An authenticated user if the request carries a token; `None` for anonymous requests. A token
/// that is present but invalid is still refused, so a client learns its session is gone.
#[derive(Debug, Clone)]
pub struct MaybeAuthUser(pub Option<User>);

/// An authenticated staff member. 403 for everyone else.
#[derive(Debug, Clone)]
pub struct StaffUser(pub User);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match bearer_token(parts)? {
            Some(token) => authenticate(state, token).await.map(Self),
            None => Err(AppError::Unauthorized {
                code: ErrorCode::NotAuthenticated,
                detail: Cow::Borrowed("Log in to do this."),
            }),
        }
    }
}

impl FromRequestParts<AppState> for MaybeAuthUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match bearer_token(parts)? {
            Some(token) => authenticate(state, token).await.map(|u| Self(Some(u))),
            None => Ok(Self(None)),
        }
    }
}

impl FromRequestParts<AppState> for StaffUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let AuthUser(user) = AuthUser::from_request_parts(parts, state).await?;
        if user.is_staff {
            Ok(Self(user))
        } else {
            Err(AppError::forbidden("Only staff can do this."))
        }
    }
}

fn bearer_token(parts: &Parts) -> Result<Option<&str>, AppError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    token.map(Some).ok_or(AppError::Unauthorized {
        code: ErrorCode::InvalidToken,
        detail: Cow::Borrowed("Send the access token as `Authorization: Bearer <token>`."),
    })
}

/// Resolves an access token to an active user. Shared by the HTTP extractors and the WebSocket.
pub async fn authenticate(state: &AppState, token: &str) -> Result<User, AppError> {
    let claims = state.jwt.verify(token).map_err(|e| match e {
        TokenError::Expired => AppError::Unauthorized {
            code: ErrorCode::TokenExpired,
            detail: Cow::Borrowed("Your session has expired; refresh the token or log in again."),
        },
        TokenError::Invalid => AppError::Unauthorized {
            code: ErrorCode::InvalidToken,
            detail: Cow::Borrowed("The access token is not valid."),
        },
    })?;
    match User::find(&state.db, claims.sub).await? {
        Some(user) if user.is_active => Ok(user),
        Some(_) => Err(AppError::Unauthorized {
            code: ErrorCode::AccountDisabled,
            detail: Cow::Borrowed("This account has been disabled."),
        }),
        None => Err(AppError::Unauthorized {
            code: ErrorCode::InvalidToken,
            detail: Cow::Borrowed("The access token is not valid."),
        }),
    }
}
