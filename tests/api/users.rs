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

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn create_superuser_applies_the_password_rules_of_registration(db: PgPool) {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://siaran:siaran@127.0.0.1:5432/siaran".to_owned());
    let mut url = reqwest::Url::parse(&base).unwrap();
    url.set_path(db.connect_options().get_database().unwrap());
    let create = |password: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_siaran"))
            .args(["create-superuser", "--username", "rootadmin"])
            .args(["--email", "root@example.com", "--password", password])
            .env("DATABASE_URL", url.as_str())
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };

    let numeric = create("12345678");
    let same_as_username = create("RootAdmin");
    let good = create("correct-horse-battery");

    let said = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(!numeric.status.success());
    assert!(
        said(&numeric).contains("cannot be entirely numeric"),
        "{}",
        said(&numeric)
    );
    assert!(!same_as_username.status.success());
    assert!(
        said(&same_as_username).contains("cannot be the same as your username"),
        "{}",
        said(&same_as_username)
    );
    assert!(good.status.success(), "{}", said(&good));
    let superusers: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE is_superuser")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(superusers, 1);
}
