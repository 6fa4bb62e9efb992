use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestApp, field_errors, problem};

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn the_signed_in_user_sees_their_account(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let session = app.signed_up("budi").await;

    let me: Value = app
        .get_as("/api/users/me", &session.access_token)
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(me["id"], session.id.to_string());
    assert_eq!(me["username"], "budi");
    assert_eq!(me["email"], "budi@example.com");
    assert!(me["last_login"].is_string());
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn users_can_change_names_and_opt_in_to_streaming(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let session = app.signed_up("budi").await;
    let before: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT updated_at FROM users WHERE id = $1")
            .bind(session.id)
            .fetch_one(&app.db)
            .await
            .unwrap();

    let response = app
        .patch_as(
            "/api/users/me",
            &session.access_token,
            &json!({"first_name": " Budi ", "is_streamer": true}),
        )
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["first_name"], "Budi");
    assert_eq!(me["last_name"], "");
    assert_eq!(me["is_streamer"], true);
    let after: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT updated_at FROM users WHERE id = $1")
            .bind(session.id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(after > before, "updated_at maintained by the database");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn users_cannot_grant_themselves_staff(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let session = app.signed_up("budi").await;

    let response = app
        .patch_as(
            "/api/users/me",
            &session.access_token,
            &json!({"is_staff": true}),
        )
        .await;

    let body = problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("is_staff"),
        "{body}"
    );
    let staff: bool = sqlx::query_scalar("SELECT is_staff FROM users WHERE id = $1")
        .bind(session.id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(!staff);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn overlong_names_are_refused(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let session = app.signed_up("budi").await;

    let response = app
        .patch_as(
            "/api/users/me",
            &session.access_token,
            &json!({"first_name": "x".repeat(151), "last_name": "y".repeat(151)}),
        )
        .await;

    let body = problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_errors(&body),
        vec![
            ("first_name".into(), "too_long".into()),
            ("last_name".into(), "too_long".into())
        ]
    );
}
