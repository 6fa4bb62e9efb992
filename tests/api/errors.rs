//! Every error, including axum's own rejections, is a problem document.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{TestApp, field_errors, problem};

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn malformed_json_is_a_bad_request(db: PgPool) {
    let app = TestApp::spawn(db).await;

    let response = app
        .request(Method::POST, "/api/auth/login")
        .header("content-type", "application/json")
        .body(r#"{"login": "budi", "password": "#)
        .send()
        .await
        .unwrap();

    problem(response, StatusCode::BAD_REQUEST, "malformed_json").await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_body_that_is_not_json_is_unsupported(db: PgPool) {
    let app = TestApp::spawn(db).await;

    let form = app
        .request(Method::POST, "/api/auth/login")
        .form(&[("login", "budi")])
        .send()
        .await
        .unwrap();
    let none = app
        .request(Method::POST, "/api/auth/login")
        .send()
        .await
        .unwrap();

    problem(
        form,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    problem(
        none,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_field_of_the_wrong_type_is_named(db: PgPool) {
    let app = TestApp::spawn(db).await;

    let response = app
        .post("/api/auth/login", &json!({"login": 42, "password": "x"}))
        .await;

    let body = problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_errors(&body),
        vec![("login".into(), "invalid_type".into())]
    );
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn an_oversized_body_is_refused(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let huge = "x".repeat(200 * 1024);

    let response = app
        .post(
            "/api/auth/register",
            &json!({"username": huge, "email": "a@b.co", "password": "x"}),
        )
        .await;

    problem(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn an_unknown_route_is_a_problem(db: PgPool) {
    let app = TestApp::spawn(db).await;

    problem(
        app.get("/api/nothing-here").await,
        StatusCode::NOT_FOUND,
        "route_not_found",
    )
    .await;
    problem(
        app.get("/hls/nothing-here").await,
        StatusCode::NOT_FOUND,
        "route_not_found",
    )
    .await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_wrong_method_is_a_problem_that_lists_the_allowed_ones(db: PgPool) {
    let app = TestApp::spawn(db).await;

    let response = app
        .request(Method::DELETE, "/api/auth/login")
        .send()
        .await
        .unwrap();

    let allow = response
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned());
    problem(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    assert_eq!(allow.as_deref(), Some("POST"));
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_database_outage_is_service_unavailable(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let session = app.signed_up("budi").await;
    app.state.db.close().await;

    let response = app.get_as("/api/users/me", &session.access_token).await;

    let body = problem(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    )
    .await;
    assert!(
        !body["detail"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("pool"),
        "leaks nothing: {body}"
    );
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn every_response_carries_a_request_id(db: PgPool) {
    let app = TestApp::spawn(db).await;

    let response = app.get("/healthz").await;

    assert!(response.headers().contains_key("x-request-id"));
}
