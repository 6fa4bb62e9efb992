//! The users feature's persistence: every statement on `users` that the account itself owns.

use sqlx::PgExecutor;
use uuid::Uuid;

use super::model::User;

impl User {
    /// Finds a user by id.
    pub async fn find(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Self>> {
        sqlx::query_as!(
            User,
            "SELECT id, username, email, password_hash, first_name, last_name, is_active, is_staff,
                    is_superuser, is_streamer, last_login, date_joined, updated_at
             FROM users WHERE id = $1",
            id
        )
        .fetch_optional(db)
        .await
    }

    /// Finds a user by username or email, case-insensitively.
    pub async fn find_by_login(db: impl PgExecutor<'_>, login: &str) -> sqlx::Result<Option<Self>> {
        sqlx::query_as!(
            User,
            "SELECT id, username, email, password_hash, first_name, last_name, is_active, is_staff,
                    is_superuser, is_streamer, last_login, date_joined, updated_at
             FROM users WHERE lower(username) = lower($1) OR lower(email) = lower($1) LIMIT 1",
            login.trim()
        )
        .fetch_optional(db)
        .await
    }
}

/// Changes the names and the streaming opt-in the owner gave (`None` keeps the stored value);
/// returns the updated account.
pub(crate) async fn update_profile(
    db: impl PgExecutor<'_>,
    id: Uuid,
    first_name: Option<&str>,
    last_name: Option<&str>,
    is_streamer: Option<bool>,
) -> sqlx::Result<User> {
    sqlx::query_as!(
        User,
        "UPDATE users SET first_name = COALESCE($2, first_name), last_name = COALESCE($3, last_name),
                          is_streamer = COALESCE($4, is_streamer)
         WHERE id = $1
         RETURNING id, username, email, password_hash, first_name, last_name, is_active, is_staff,
                   is_superuser, is_streamer, last_login, date_joined, updated_at",
        id,
        first_name,
        last_name,
        is_streamer
    )
    .fetch_one(db)
    .await
}

/// Inserts an administrator (staff and superuser); `false` when the username or email is
/// already taken (nothing is inserted then).
pub(crate) async fn insert_superuser(
    db: impl PgExecutor<'_>,
    username: &str,
    email: &str,
    password_hash: &str,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query!(
        "INSERT INTO users (username, email, password_hash, is_staff, is_superuser)
         VALUES ($1, $2, $3, true, true) ON CONFLICT DO NOTHING",
        username,
        email,
        password_hash
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(inserted > 0)
}
