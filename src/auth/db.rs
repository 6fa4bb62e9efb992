//! The auth feature's persistence: registration and login on `users`, and `refresh_tokens`.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::refresh::TokenRow;
use crate::users::model::User;

// ---------------------------------------------------------------------------------------------
// Registration and login

/// Whether the username and the email (each case-insensitively) already belong to an account.
pub(crate) async fn names_taken(
    db: impl PgExecutor<'_>,
    username: &str,
    email: &str,
) -> sqlx::Result<(bool, bool)> {
    let row = sqlx::query!(
        r#"SELECT EXISTS (SELECT 1 FROM users WHERE lower(username) = lower($1)) AS "username_taken!",
                  EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($2)) AS "email_taken!""#,
        username,
        email
    )
    .fetch_one(db)
    .await?;
    Ok((row.username_taken, row.email_taken))
}

/// Inserts a registered account; a taken name fails on `users_username_key` / `users_email_key`.
pub(crate) async fn insert_user(
    db: impl PgExecutor<'_>,
    username: &str,
    email: &str,
    password_hash: &str,
    first_name: &str,
    last_name: &str,
) -> sqlx::Result<User> {
    sqlx::query_as!(
        User,
        "INSERT INTO users (username, email, password_hash, first_name, last_name)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING id, username, email, password_hash, first_name, last_name, is_active, is_staff,
                   is_superuser, is_streamer, last_login, date_joined, updated_at",
        username,
        email,
        password_hash,
        first_name,
        last_name
    )
    .fetch_one(db)
    .await
}

/// Stamps the account's `last_login` with now and returns the account.
pub(crate) async fn record_login(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<User> {
    sqlx::query_as!(
        User,
        "UPDATE users SET last_login = now() WHERE id = $1
         RETURNING id, username, email, password_hash, first_name, last_name, is_active, is_staff,
                   is_superuser, is_streamer, last_login, date_joined, updated_at",
        id
    )
    .fetch_one(db)
    .await
}

// ---------------------------------------------------------------------------------------------
// Refresh tokens

/// Stores a refresh token (by its hash) in a family; returns its id.
pub(crate) async fn insert_refresh_token(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    family_id: Uuid,
    token_hash: &[u8],
    expires_at: DateTime<Utc>,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        "INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at)
         VALUES ($1, $2, $3, $4) RETURNING id",
        user_id,
        family_id,
        token_hash,
        expires_at
    )
    .fetch_one(db)
    .await
}

/// Whose token this hash is, if it exists (used or not).
pub(crate) async fn refresh_token_owner(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "SELECT user_id FROM refresh_tokens WHERE token_hash = $1",
        token_hash
    )
    .fetch_optional(db)
    .await
}

/// The token with this hash, locked (`FOR UPDATE`) so concurrent refreshes with it serialise;
/// `in_grace` says its `used_at` is within `grace_secs`.
pub(crate) async fn lock_refresh_token(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
    grace_secs: f64,
) -> sqlx::Result<Option<TokenRow>> {
    sqlx::query_as!(
        TokenRow,
        r#"SELECT id, user_id, family_id, expires_at, used_at, revoked_at, replaced_by, used_by_client,
                  coalesce(used_at > now() - make_interval(secs => $2), false) AS "in_grace!"
           FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE"#,
        token_hash,
        grace_secs
    )
    .fetch_optional(db)
    .await
}

/// Whether the token with this id is neither used nor revoked (`None`: no such token); locks it
/// (`FOR UPDATE`).
pub(crate) async fn lock_refresh_token_untouched(
    db: impl PgExecutor<'_>,
    id: Uuid,
) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar!(
        r#"SELECT used_at IS NULL AND revoked_at IS NULL AS "untouched!"
           FROM refresh_tokens WHERE id = $1 FOR UPDATE"#,
        id
    )
    .fetch_optional(db)
    .await
}

/// Marks a token used now by `client`, replaced by `replaced_by`.
pub(crate) async fn mark_refresh_token_used(
    db: impl PgExecutor<'_>,
    id: Uuid,
    replaced_by: Uuid,
    client: &[u8],
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE refresh_tokens SET used_at = now(), replaced_by = $2, used_by_client = $3 WHERE id = $1",
        id,
        replaced_by,
        client
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Sets which token replaced this one.
pub(crate) async fn set_refresh_token_replaced_by(
    db: impl PgExecutor<'_>,
    id: Uuid,
    replaced_by: Uuid,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE refresh_tokens SET replaced_by = $2 WHERE id = $1",
        id,
        replaced_by
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Revokes one token by id.
pub(crate) async fn revoke_refresh_token(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE id = $1",
        id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Revokes the not yet revoked tokens of the family the token with this hash belongs to.
pub(crate) async fn revoke_family_of_token(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE refresh_tokens SET revoked_at = now()
         WHERE revoked_at IS NULL
           AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)",
        token_hash
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Revokes the not yet revoked tokens of a family.
pub(crate) async fn revoke_family(db: impl PgExecutor<'_>, family_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
        family_id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Revokes the not yet revoked tokens of every family of a user.
pub(crate) async fn revoke_all_for_user(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
        user_id
    )
    .execute(db)
    .await?;
    Ok(())
}
