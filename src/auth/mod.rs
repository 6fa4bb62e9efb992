//! Accounts and sessions: registration, login with throttling, access tokens (JWT) and rotating
//! refresh tokens.

pub(crate) mod db;
pub mod extract;
pub mod jwt;
pub mod password;
pub mod refresh;

use std::borrow::Cow;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::ACCESS_TOKEN_TTL;
use crate::error::{AppError, AppResult, ErrorCode, FieldError, Problem, constraint};
use crate::http::extract::{ClientIp, Json};
use crate::ratelimit::{RateLimiter, address_key};
use crate::state::AppState;
use crate::users::domain::{Email, Password, Username, parse_name};
use crate::users::model::{User, UserView};

pub use extract::{AuthUser, MaybeAuthUser, StaffUser};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh_session))
        .routes(routes!(logout))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// 3–30 letters, digits, `_`, `.` or `-`.
    #[schema(
        example = "budi",
        min_length = 3,
        max_length = 30,
        pattern = "^[A-Za-z0-9_.-]{3,30}$"
    )]
    pub username: String,
    #[schema(example = "budi@example.com", format = Email, max_length = 254)]
    pub email: String,
    /// 8–128 characters, not only digits, not the username or the email.
    #[schema(example = "correct-horse-battery", min_length = 8, max_length = 128)]
    pub password: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
}

/// A registration whose every field is valid.
struct NewAccount {
    username: Username,
    email: Email,
    password: Password,
    first_name: String,
    last_name: String,
}

impl RegisterRequest {
    /// Validates every field, reporting all problems at once.
    fn parse(self) -> Result<NewAccount, Vec<FieldError>> {
        let username = Username::parse(&self.username);
        let email = Email::parse(&self.email);
        let password = Password::parse(&self.password, &self.username, &self.email);
        let first_name = parse_name("first_name", self.first_name.as_deref().unwrap_or_default());
        let last_name = parse_name("last_name", self.last_name.as_deref().unwrap_or_default());
        match (username, email, password, first_name, last_name) {
            (Ok(username), Ok(email), Ok(password), Ok(first_name), Ok(last_name)) => {
                Ok(NewAccount {
                    username,
                    email,
                    password,
                    first_name,
                    last_name,
                })
            }
            (u, e, p, f, l) => Err([u.err(), e.err(), p.err(), f.err(), l.err()]
                .into_iter()
                .flatten()
                .collect()),
        }
    }
}

/// Creates an account.
///
/// At most `SIARAN_LIMIT_REGISTER_ADDRESS` (default 20 an hour) attempts from one address;
/// more get 429 `too_many_registrations` with `Retry-After`.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterRequest, responses(
    (status = 201, description = "Account created", body = UserView),
    (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
    (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "Invalid or taken fields (`errors` lists each)", body = Problem,
        content_type = "application/problem+json"),
    (status = 429, description = "`too_many_registrations` from this address; see `Retry-After`", body = Problem,
        content_type = "application/problem+json"),
    (status = 503, description = "`service_busy`: every password hashing slot stayed busy; see `Retry-After`",
        body = Problem, content_type = "application/problem+json"),
))]
async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<RegisterRequest>,
) -> AppResult<(StatusCode, Json<UserView>)> {
    let limiter = RateLimiter::new(state.redis.clone());
    let address = format!("register:ip:{}", address_key(ip));
    limiter
        .acquire(&[(&address, state.config.limits.register_address)])
        .await
        .map_err(|refused| AppError::TooManyRequests {
            code: ErrorCode::TooManyRegistrations,
            detail: Cow::Owned(format!(
                "Too many accounts were registered from your address. Try again in {}.",
                wait_in_words(refused.retry_after)
            )),
            retry_after: refused.retry_after,
        })?;
    let NewAccount {
        username,
        email,
        password,
        first_name,
        last_name,
    } = body.parse().map_err(AppError::Validation)?;
    let taken = taken_fields(&state, &username, &email).await?;
    if !taken.is_empty() {
        return Err(AppError::Validation(taken));
    }
    let hash = state.passwords.hash(password.into_inner()).await?;
    let user = db::insert_user(
        &state.db,
        username.as_str(),
        email.as_str(),
        &hash,
        &first_name,
        &last_name,
    )
    .await
    // Two registrations racing for the same name: the loser gets the same answer as if it had
    // come second.
    .map_err(|e| match constraint(&e) {
        Some("users_username_key") => username_taken().into(),
        Some("users_email_key") => email_taken().into(),
        _ => AppError::from(e),
    })?;
    tracing::info!(user_id = %user.id, username = %user.username, "account registered");
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// "3 minute(s)", "1 hour(s)" for a retry delay.
fn wait_in_words(wait: Duration) -> String {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    if minutes > 90 {
        format!("{} hour(s)", minutes.div_ceil(60))
    } else {
        format!("{minutes} minute(s)")
    }
}

fn username_taken() -> FieldError {
    FieldError::new("username", "taken", "This username is already taken.")
}

fn email_taken() -> FieldError {
    FieldError::new(
        "email",
        "taken",
        "An account with this email already exists.",
    )
}

async fn taken_fields(
    state: &AppState,
    username: &Username,
    email: &Email,
) -> AppResult<Vec<FieldError>> {
    let (username_taken_, email_taken_) =
        db::names_taken(&state.db, username.as_str(), email.as_str()).await?;
    let mut errors = Vec::new();
    if username_taken_ {
        errors.push(username_taken());
    }
    if email_taken_ {
        errors.push(email_taken());
    }
    Ok(errors)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Username or email address.
    #[schema(example = "budi")]
    pub login: String,
    #[schema(example = "correct-horse-battery")]
    pub password: String,
}

/// A fresh pair of tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// JWT for `Authorization: Bearer`, valid for `expires_in` seconds.
    pub access_token: String,
    /// Opaque; exchange it at `/api/auth/refresh` for a new pair. Single use.
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    pub expires_in: u64,
    pub user: UserView,
}

fn token_response(state: &AppState, user: User, refresh_token: String) -> TokenResponse {
    TokenResponse {
        access_token: state.jwt.issue(user.id),
        refresh_token,
        token_type: "Bearer",
        expires_in: ACCESS_TOKEN_TTL.as_secs(),
        user: user.into(),
    }
}

fn invalid_credentials() -> AppError {
    AppError::Unauthorized {
        code: ErrorCode::InvalidCredentials,
        detail: Cow::Borrowed("The username/email or password is incorrect."),
    }
}

fn account_disabled() -> AppError {
    AppError::Unauthorized {
        code: ErrorCode::AccountDisabled,
        detail: Cow::Borrowed("This account has been disabled."),
    }
}

fn too_many_attempts(retry_after: Duration) -> AppError {
    AppError::TooManyRequests {
        code: ErrorCode::TooManyLoginAttempts,
        detail: Cow::Owned(format!(
            "Too many failed logins. Try again in {}.",
            wait_in_words(retry_after)
        )),
        retry_after,
    }
}

/// Logs in with username or email and password.
///
/// After 5 failures for one account (by username or email alike), or 30 from one address,
/// within 15 minutes, further attempts are refused with 429 and `Retry-After` until the window
/// ends. Every attempt counts the moment it arrives (a correct password gives its turn back), so
/// parallel guesses get no more turns than sequential ones.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, description = "Logged in", body = TokenResponse),
    (status = 401, description = "`invalid_credentials` or `account_disabled`", body = Problem,
        content_type = "application/problem+json"),
    (status = 422, description = "Missing fields", body = Problem, content_type = "application/problem+json"),
    (status = 429, description = "Too many failed attempts; see `Retry-After`", body = Problem,
        content_type = "application/problem+json"),
    (status = 503, description = "`service_busy`: every password hashing slot stayed busy; see `Retry-After`",
        body = Problem, content_type = "application/problem+json"),
))]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<LoginRequest>,
) -> AppResult<Json<TokenResponse>> {
    let login = body.login.trim().to_lowercase();
    if login.is_empty() {
        return Err(FieldError::new("login", "required", "Enter your username or email.").into());
    }
    let user = User::find_by_login(&state.db, &login).await?;
    // One count per account, whichever of its names is tried; a name without an account
    // counts by itself (it may be registered meanwhile, but then the guesser gains nothing).
    let account_key = match &user {
        Some(user) => format!("login:attempts:user:{}", user.id),
        None => format!("login:attempts:name:{login}"),
    };
    let address_key = format!("login:attempts:ip:{}", address_key(ip));
    let limits = &state.config.limits;
    let limiter = RateLimiter::new(state.redis.clone());
    limiter
        .acquire(&[
            (&account_key, limits.login_account),
            (&address_key, limits.login_address),
        ])
        .await
        .map_err(|refused| too_many_attempts(refused.retry_after))?;

    let verified = state
        .passwords
        .verify(
            body.password,
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await;
    let matches = match verified {
        Ok(matches) => matches,
        Err(e) => {
            // Never judged: the turn is given back.
            limiter.refund(&account_key).await;
            limiter.refund(&address_key).await;
            return Err(e.into());
        }
    };
    let user = match user {
        Some(user) if matches => user,
        _ => {
            tracing::info!(%ip, "failed login");
            return Err(invalid_credentials());
        }
    };
    // The right password is no failure: the account starts afresh and the address gets its
    // turn back.
    limiter.clear(&account_key).await;
    limiter.refund(&address_key).await;
    if !user.is_active {
        return Err(account_disabled());
    }
    let user = db::record_login(&state.db, user.id).await?;
    let refresh_token = refresh::start_family(&state.db, user.id).await?;
    tracing::info!(user_id = %user.id, "logged in");
    Ok(Json(token_response(&state, user, refresh_token)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Exchanges a refresh token for a new pair (the old one is used up).
///
/// Presenting a refresh token that was already used revokes its whole session — except a retry
/// by the same client (address and `User-Agent`) within `SIARAN_REFRESH_GRACE_SECS` (20 s) of
/// the first use while the token issued then is still unused, which gets a new pair (the
/// answer to the first attempt was lost). At most 20 refreshes per account and 120 per
/// address a minute (429 `too_many_refreshes`).
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshRequest, responses(
    (status = 200, description = "New tokens", body = TokenResponse),
    (status = 401, description = "`invalid_refresh_token`, `refresh_token_reused` or `account_disabled`",
        body = Problem, content_type = "application/problem+json"),
    (status = 429, description = "`too_many_refreshes`; see `Retry-After`", body = Problem,
        content_type = "application/problem+json"),
))]
async fn refresh_session(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Json(body): Json<RefreshRequest>,
) -> AppResult<Json<TokenResponse>> {
    let token = body.refresh_token.trim();
    let limits = &state.config.limits;
    let address = format!("refresh:ip:{}", address_key(ip));
    let account = refresh::owner(&state.db, token)
        .await?
        .map(|user_id| format!("refresh:user:{user_id}"));
    let mut charges = vec![(address.as_str(), limits.refresh_address)];
    if let Some(account) = &account {
        charges.push((account.as_str(), limits.refresh_account));
    }
    RateLimiter::new(state.redis.clone())
        .acquire(&charges)
        .await
        .map_err(|refused| AppError::TooManyRequests {
            code: ErrorCode::TooManyRefreshes,
            detail: Cow::Borrowed("Too many token refreshes; wait a moment."),
            retry_after: refused.retry_after,
        })?;
    let user_agent = headers
        .get(header::USER_AGENT)
        .map_or(&[][..], |v| v.as_bytes());
    let client = refresh::ClientFingerprint::new(ip, user_agent);
    let grace = Duration::from_secs(state.config.server.refresh_grace_secs);
    let (user_id, next) = refresh::rotate(&state.db, token, &client, grace)
        .await
        .map_err(|e| match e {
            refresh::RefreshError::Invalid => AppError::Unauthorized {
                code: ErrorCode::InvalidRefreshToken,
                detail: Cow::Borrowed("The refresh token is not valid; log in again."),
            },
            refresh::RefreshError::Reused => AppError::Unauthorized {
                code: ErrorCode::RefreshTokenReused,
                detail: Cow::Borrowed(
                    "This refresh token was already used; the session has been ended for safety.",
                ),
            },
            refresh::RefreshError::Db(e) => e.into(),
        })?;
    match User::find(&state.db, user_id).await? {
        Some(user) if user.is_active => Ok(Json(token_response(&state, user, next))),
        _ => {
            refresh::revoke(&state.db, &next).await?;
            Err(account_disabled())
        }
    }
}

/// Ends the session the refresh token belongs to. Always 204, even for unknown tokens.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", request_body = RefreshRequest, responses(
    (status = 204, description = "Logged out"),
    (status = 422, description = "Missing `refresh_token`", body = Problem, content_type = "application/problem+json"),
))]
async fn logout(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> AppResult<StatusCode> {
    refresh::revoke(&state.db, body.refresh_token.trim()).await?;
    Ok(StatusCode::NO_CONTENT)
}
