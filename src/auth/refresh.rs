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
    let id = sqlx::query_scalar(
        "INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at)
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(user_id)
    .bind(family_id)
    .bind(hash(&token))
    .bind(expires_at)
    .fetch_one(conn)
    .await?;
    Ok((id, token))
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: Uuid,
    user_id: Uuid,
    family_id: Uuid,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    replaced_by: Option<Uuid>,
    used_by_client: Option<Vec<u8>>,
    /// `used_at` is within the grace.
    in_grace: bool,
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
    sqlx::query_scalar("SELECT user_id FROM refresh_tokens WHERE token_hash = $1")
        .bind(hash(token))
        .fetch_optional(db)
        .await
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
    let row: Option<TokenRow> = sqlx::query_as(
        "SELECT id, user_id, family_id, expires_at, used_at, revoked_at, replaced_by, used_by_client,
                coalesce(used_at > now() - make_interval(secs => $2), false) AS in_grace
         FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(hash(token))
    .bind(grace.as_secs_f64())
    .fetch_optional(&mut *tx)
    .await?;
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
        revoke_family_in(&mut tx, row.family_id).await?;
        tx.commit().await?;
        tracing::warn!(user_id = %row.user_id, family_id = %row.family_id, "refresh token reused; session revoked");
        return Err(RefreshError::Reused);
    }
    if row.expires_at <= Utc::now() {
        return Err(RefreshError::Invalid);
    }
    let (next_id, next) = insert(&mut tx, row.user_id, row.family_id).await?;
    sqlx::query(
        "UPDATE refresh_tokens SET used_at = now(), replaced_by = $2, used_by_client = $3 WHERE id = $1",
    )
    .bind(row.id)
    .bind(next_id)
    .bind(&client.0)
    .execute(&mut *tx)
    .await?;
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
    let untouched: Option<bool> = sqlx::query_scalar(
        "SELECT used_at IS NULL AND revoked_at IS NULL FROM refresh_tokens WHERE id = $1 FOR UPDATE",
    )
    .bind(successor)
    .fetch_optional(&mut *tx)
    .await?;
    if untouched != Some(true) {
        return Ok(None);
    }
    sqlx::query("UPDATE refresh_tokens SET revoked_at = now() WHERE id = $1")
        .bind(successor)
        .execute(&mut *tx)
        .await?;
    let (next_id, next) = insert(tx, row.user_id, row.family_id).await?;
    sqlx::query("UPDATE refresh_tokens SET replaced_by = $2 WHERE id = $1")
        .bind(row.id)
        .bind(next_id)
        .execute(&mut *tx)
        .await?;
    Ok(Some(next))
}

/// Revokes the session the token belongs to. Unknown tokens are ignored (logging out twice is fine).
pub async fn revoke(db: &PgPool, token: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now()
         WHERE revoked_at IS NULL
           AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)",
    )
    .bind(hash(token))
    .execute(db)
    .await?;
    Ok(())
}

/// Revokes every session of a user (on deactivation).
pub async fn revoke_all_for_user(db: impl sqlx::PgExecutor<'_>, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .execute(db)
    .await?;
    Ok(())
}

async fn revoke_family_in(conn: &mut PgConnection, family_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
    )
    .bind(family_id)
    .execute(conn)
    .await?;
    Ok(())
}
