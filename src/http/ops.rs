//! Operational endpoints: liveness, readiness and Prometheus metrics.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ErrorCode, Problem};
use crate::http::extract::Json;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` when the check passed.
    status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ok`.
    status: &'static str,
    /// `ok`.
    postgres: &'static str,
    /// `ok`.
    redis: &'static str,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// PostgreSQL and Redis are reachable.
///
/// When one is not, the answer names which (`postgres` / `redis`: `down`); the error itself is
/// only logged, since it can carry host names, ports and user names.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready", body = Readiness),
    (status = 503, description = "A dependency is unreachable; `detail` names it", body = Problem,
        content_type = "application/problem+json")))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, Problem> {
    let (postgres, redis) = tokio::join!(crate::db::ping(&state.db), state.redis.ping());
    if let Err(e) = &postgres {
        tracing::warn!(cause = %e, "readiness: PostgreSQL does not answer");
    }
    if let Err(e) = &redis {
        tracing::warn!(cause = %e, "readiness: Redis does not answer");
    }
    let state_of = |ok: bool| if ok { "ok" } else { "down" };
    match (postgres.is_ok(), redis.is_ok()) {
        (true, true) => Ok(Json(Readiness {
            status: "ok",
            postgres: "ok",
            redis: "ok",
        })),
        (postgres, redis) => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NotReady,
            format!(
                "PostgreSQL: {}; Redis: {}",
                state_of(postgres),
                state_of(redis)
            ),
        )),
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
