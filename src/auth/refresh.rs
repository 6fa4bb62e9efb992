//! Opaque refresh tokens with rotation and reuse detection.
//!
//! A token is 32 random bytes (base64url, prefixed `srt_` so secret scanners recognise it); only
//! its SHA-256 is stored. Logging in starts a *family*. Each refresh uses up the presented token
//! and issues its successor in the same family. A used or revoked token presented again means a
//! copy is in someone else's hands, so the whole family (the session) is revoked.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
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

async fn insert(conn: &mut PgConnection, user_id: Uuid, family_id: Uuid) -> sqlx::Result<String> {
    let token = generate();
    let expires_at = Utc::now() + REFRESH_TOKEN_TTL;
    sqlx::query("INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(user_id)
        .bind(family_id)
        .bind(hash(&token))
        .bind(expires_at)
        .execute(conn)
        .await?;
    Ok(token)
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: Uuid,
    user_id: Uuid,
    family_id: Uuid,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

/// Starts a new session (token family) for the user and returns its first token.
pub async fn start_family(db: &PgPool, user_id: Uuid) -> sqlx::Result<String> {
    let mut conn = db.acquire().await?;
    insert(&mut conn, user_id, Uuid::new_v4()).await
}

/// Uses up `token` and returns the user it belongs to with the successor token.
pub async fn rotate(db: &PgPool, token: &str) -> Result<(Uuid, String), RefreshError> {
    let mut tx = db.begin().await?;
    // The row lock makes two concurrent refreshes with the same token serialise: the second
    // sees it used and is treated as reuse.
    let row: Option<TokenRow> = sqlx::query_as(
        "SELECT id, user_id, family_id, expires_at, used_at, revoked_at FROM refresh_tokens
         WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(hash(token))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(TokenRow {
        id,
        user_id,
        family_id,
        expires_at,
        used_at,
        revoked_at,
    }) = row
    else {
        return Err(RefreshError::Invalid);
    };
    if used_at.is_some() || revoked_at.is_some() {
        revoke_family_in(&mut tx, family_id).await?;
        tx.commit().await?;
        tracing::warn!(%user_id, %family_id, "refresh token reused; session revoked");
        return Err(RefreshError::Reused);
    }
    if expires_at <= Utc::now() {
        return Err(RefreshError::Invalid);
    }
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let next = insert(&mut tx, user_id, family_id).await?;
    tx.commit().await?;
    Ok((user_id, next))
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
