//! Opaque refresh tokens with rotation and reuse detection.
//!
//! A token is 32 random bytes (base64url, prefixed `srt_` so secret scanners recognise it); only
//! its SHA-256 is stored. Logging in starts a *family*. Each refresh uses up the presented token
//! and issues its successor in the same family. A used or revoked token presented again means a
//! copy is in someone else's hands, so the whole family (the session) is revoked.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::db;
use crate::config::REFRESH_TOKEN_TTL;

const PREFIX: &str = "srt_";

/// Why a refresh token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("unknown or expired refresh token")]
    Invalid,
    #[error("refresh token reused; its session was revoked")]
    Reused,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

async fn insert(
    conn: &mut PgConnection,
    user_id: Uuid,
    family_id: Uuid,
) -> sqlx::Result<(Uuid, String)> {
    let token = generate();
    let expires_at = Utc::now() + REFRESH_TOKEN_TTL;
    let id = db::insert_refresh_token(conn, user_id, family_id, &hash(&token), expires_at).await?;
    Ok((id, token))
}

/// A row of `refresh_tokens`, as a refresh reads it.
pub(crate) struct TokenRow {
    pub(crate) id: Uuid,
    pub(crate) user_id: Uuid,
    pub(crate) family_id: Uuid,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) used_at: Option<DateTime<Utc>>,
    pub(crate) revoked_at: Option<DateTime<Utc>>,
    pub(crate) replaced_by: Option<Uuid>,
    pub(crate) used_by_client: Option<Vec<u8>>,
    /// `used_at` is within the grace.
    pub(crate) in_grace: bool,
}

/// Who presents a refresh token, as far as the grace for retries is concerned: a SHA-256 of the
/// client's address (per /64 for IPv6) and its `User-Agent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFingerprint(Vec<u8>);

impl ClientFingerprint {
    #[must_use]
    pub fn new(ip: std::net::IpAddr, user_agent: &[u8]) -> Self {
        let mut digest = Sha256::new();
        digest.update(crate::ratelimit::address_key(ip).as_bytes());
        digest.update(b"\n");
        digest.update(user_agent);
        Self(digest.finalize().to_vec())
    }
}

/// Starts a new session (token family) for the user and returns its first token.
pub async fn start_family(db: &PgPool, user_id: Uuid) -> sqlx::Result<String> {
    let mut conn = db.acquire().await?;
    insert(&mut conn, user_id, Uuid::new_v4())
        .await
        .map(|(_, token)| token)
}

/// Whose token this is, if it exists (used or not): to count refreshes per account.
pub async fn owner(db: &PgPool, token: &str) -> sqlx::Result<Option<Uuid>> {
    db::refresh_token_owner(db, &hash(token)).await
}

/// Uses up `token` and returns the user it belongs to with the successor token. A retry by
/// `client` within `grace` of the first use gets a fresh successor (see the module's notes).
pub async fn rotate(
    db: &PgPool,
    token: &str,
    client: &ClientFingerprint,
    grace: Duration,
) -> Result<(Uuid, String), RefreshError> {
    let mut tx = db.begin().await?;
    // The row lock makes two concurrent refreshes with the same token serialise: the second
    // sees it used (and is either a retry within the grace or reuse).
    let row = db::lock_refresh_token(&mut *tx, &hash(token), grace.as_secs_f64()).await?;
    let Some(row) = row else {
        return Err(RefreshError::Invalid);
    };
    if row.revoked_at.is_none()
        && row.used_at.is_some()
        && let Some(next) = retry_within_grace(&mut tx, &row, client).await?
    {
        tx.commit().await?;
        tracing::info!(user_id = %row.user_id, family_id = %row.family_id, "refresh retried within the grace");
        return Ok((row.user_id, next));
    }
    if row.used_at.is_some() || row.revoked_at.is_some() {
        db::revoke_family(&mut *tx, row.family_id).await?;
        tx.commit().await?;
        tracing::warn!(user_id = %row.user_id, family_id = %row.family_id, "refresh token reused; session revoked");
        return Err(RefreshError::Reused);
    }
    if row.expires_at <= Utc::now() {
        return Err(RefreshError::Invalid);
    }
    let (next_id, next) = insert(&mut tx, row.user_id, row.family_id).await?;
    db::mark_refresh_token_used(&mut *tx, row.id, next_id, &client.0).await?;
    tx.commit().await?;
    Ok((row.user_id, next))
}

/// A used token presented again: a new successor if this is the same client retrying within
/// the grace and the successor it was given has not been used; `None` (reuse) otherwise.
async fn retry_within_grace(
    tx: &mut PgConnection,
    row: &TokenRow,
    client: &ClientFingerprint,
) -> sqlx::Result<Option<String>> {
    let same_client = row
        .used_by_client
        .as_deref()
        .is_some_and(|used_by| bool::from(used_by.ct_eq(&client.0)));
    let (true, true, Some(successor)) = (row.in_grace, same_client, row.replaced_by) else {
        return Ok(None);
    };
    let untouched = db::lock_refresh_token_untouched(&mut *tx, successor).await?;
    if untouched != Some(true) {
        return Ok(None);
    }
    db::revoke_refresh_token(&mut *tx, successor).await?;
    let (next_id, next) = insert(tx, row.user_id, row.family_id).await?;
    db::set_refresh_token_replaced_by(&mut *tx, row.id, next_id).await?;
    Ok(Some(next))
}

/// Revokes the session the token belongs to. Unknown tokens are ignored (logging out twice is fine).
pub async fn revoke(db: &PgPool, token: &str) -> sqlx::Result<()> {
    db::revoke_family_of_token(db, &hash(token)).await
}

/// Revokes every session of a user (on deactivation).
pub async fn revoke_all_for_user(db: impl sqlx::PgExecutor<'_>, user_id: Uuid) -> sqlx::Result<()> {
    db::revoke_all_for_user(db, user_id).await
}
