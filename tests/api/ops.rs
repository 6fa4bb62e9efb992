use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{TestApp, problem};

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn health_and_readiness_answer(db: PgPool) {
    let app = TestApp::spawn(db).await;

    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["status"], "ok");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn readiness_fails_without_redis_while_the_api_keeps_serving(db: PgPool) {
    let app = TestApp::spawn_with(db, |c| c.redis_url = "redis://127.0.0.1:1".into()).await;

    let body = problem(
        app.get("/readyz").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "not_ready",
    )
    .await;

    assert!(
        body["detail"].as_str().unwrap().contains("PostgreSQL: ok"),
        "{body}"
    );
    let session = app.signed_up("budi").await;
    assert_eq!(
        app.get_as("/api/users/me", &session.access_token)
            .await
            .status(),
        StatusCode::OK
    );
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn metrics_count_requests_by_route_template(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.get("/healthz").await;

    let text = app.get("/metrics").await.text().await.unwrap();

    assert!(
        text.lines()
            .any(|l| l.starts_with("http_requests_total{") && l.contains(r#"route="/healthz""#)),
        "{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
}
