//! The signed-in user's own account.

pub(crate) mod db;
pub mod domain;
pub mod model;

use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, Problem};
use crate::http::extract::Json;
use crate::state::AppState;
use domain::parse_name;
use model::UserView;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me, update_me))
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/users/me", tag = "users", security(("bearer" = [])), responses(
    (status = 200, description = "The account", body = UserView),
    (status = 401, description = "Not logged in, token invalid or expired, or account disabled", body = Problem,
        content_type = "application/problem+json"),
))]
async fn me(AuthUser(user): AuthUser) -> Json<UserView> {
    Json(user.into())
}

/// Fields the user may change on their own account. Anything else (`is_staff`, `email`) is refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Opt in to streaming (creating a stream also does this).
    pub is_streamer: Option<bool>,
}

/// Updates names or opts in to streaming.
#[utoipa::path(patch, path = "/api/users/me", tag = "users", security(("bearer" = [])), request_body = UpdateMe,
    responses(
        (status = 200, description = "The updated account", body = UserView),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid or unknown fields", body = Problem,
            content_type = "application/problem+json"),
))]
async fn update_me(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Json(body): Json<UpdateMe>,
) -> AppResult<Json<UserView>> {
    let first_name = body
        .first_name
        .as_deref()
        .map(|v| parse_name("first_name", v))
        .transpose();
    let last_name = body
        .last_name
        .as_deref()
        .map(|v| parse_name("last_name", v))
        .transpose();
    let (first_name, last_name) = match (first_name, last_name) {
        (Ok(f), Ok(l)) => (f, l),
        (f, l) => {
            return Err(AppError::Validation(
                [f.err(), l.err()].into_iter().flatten().collect(),
            ));
        }
    };
    let updated = db::update_profile(
        &state.db,
        user.id,
        first_name.as_deref(),
        last_name.as_deref(),
        body.is_streamer,
    )
    .await?;
    Ok(Json(updated.into()))
}
