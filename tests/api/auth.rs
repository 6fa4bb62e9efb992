use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use serde_json::{Value, json};
use siaran::auth::jwt::JwtKeys;
use sqlx::PgPool;

use crate::helpers::{PASSWORD, TEST_JWT_SECRET, TestApp, field_errors, problem};

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn registering_returns_the_new_account_without_secrets(db: PgPool) {
    let app = TestApp::spawn(db).await;

    let response = app
        .post(
            "/api/auth/register",
            &json!({"username": "Budi", "email": "budi@example.com", "password": PASSWORD,
                    "first_name": "Budi", "last_name": "Santoso"}),
        )
        .await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let user: Value = response.json().await.unwrap();
    assert_eq!(user["username"], "Budi");
    assert_eq!(user["email"], "budi@example.com");
    assert_eq!(user["first_name"], "Budi");
    assert_eq!(user["is_active"], true);
    assert_eq!(user["is_streamer"], false);
    assert_eq!(user["is_staff"], false);
    assert!(user.get("password_hash").is_none() && user.get("password").is_none());
    let stored: String =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE username = 'Budi'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(stored.starts_with("$argon2id$"), "stored as argon2id");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn registering_reports_every_invalid_field_at_once(db: PgPool) {
    let app = TestApp::spawn(db).await;

    let response = app
        .post(
            "/api/auth/register",
            &json!({"username": "a b", "email": "not-an-email", "password": "123"}),
        )
        .await;

    let body = problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let errors = field_errors(&body);
    assert!(
        errors.contains(&("username".into(), "invalid_characters".into())),
        "{errors:?}"
    );
    assert!(
        errors.contains(&("email".into(), "invalid".into())),
        "{errors:?}"
    );
    assert!(
        errors.contains(&("password".into(), "too_short".into())),
        "{errors:?}"
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing written");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn weak_passwords_are_refused_with_a_reason(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let cases = [
        ("12345678901", "entirely_numeric"),
        ("Siti_Nurhaliza", "too_similar"),
        ("siti@example.com", "too_similar"),
        (&*"x".repeat(129), "too_long"),
    ];
    for (password, code) in cases {
        let response = app
            .post(
                "/api/auth/register",
                &json!({"username": "siti_nurhaliza", "email": "siti@example.com", "password": password}),
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
            vec![("password".to_owned(), code.to_owned())],
            "{password}"
        );
    }
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn usernames_and_emails_are_unique_regardless_of_case(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.register("budi").await;

    let response = app
        .post(
            "/api/auth/register",
            &json!({"username": "BUDI", "email": "Budi@Example.COM", "password": PASSWORD}),
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
            ("username".into(), "taken".into()),
            ("email".into(), "taken".into())
        ]
    );
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn missing_fields_are_named(db: PgPool) {
    let app = TestApp::spawn(db).await;

    let response = app
        .post("/api/auth/register", &json!({"username": "budi"}))
        .await;

    let body = problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(field_errors(&body)[0], ("email".into(), "required".into()));
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn login_works_with_username_or_email_in_any_case(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.register("budi").await;

    for login in ["budi", "BUDI", "budi@example.com", "Budi@Example.com"] {
        let response = app
            .post(
                "/api/auth/login",
                &json!({"login": login, "password": PASSWORD}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{login}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 900);
        assert_eq!(body["user"]["username"], "budi");
        assert!(body["refresh_token"].as_str().unwrap().starts_with("srt_"));
        let me = app
            .get_as("/api/users/me", body["access_token"].as_str().unwrap())
            .await;
        assert_eq!(me.status(), StatusCode::OK);
    }
    let last_login: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_login FROM users WHERE username = 'budi'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(last_login.is_some(), "last_login recorded");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn wrong_username_and_wrong_password_get_the_same_answer(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.register("budi").await;

    let wrong_password = app
        .post(
            "/api/auth/login",
            &json!({"login": "budi", "password": "nope-nope"}),
        )
        .await;
    let wrong_user = app
        .post(
            "/api/auth/login",
            &json!({"login": "nobody", "password": PASSWORD}),
        )
        .await;

    let a = problem(
        wrong_password,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let b = problem(wrong_user, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(a, b);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn repeated_failures_lock_the_account_with_retry_after(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.register("budi").await;
    app.register("sari").await;

    for _ in 0..5 {
        let r = app
            .post(
                "/api/auth/login",
                &json!({"login": "budi", "password": "wrong-password"}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // Even the right password is refused while locked.
    let locked = app
        .post(
            "/api/auth/login",
            &json!({"login": "BUDI", "password": PASSWORD}),
        )
        .await;

    let retry_after: u64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    let body = problem(
        locked,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_login_attempts",
    )
    .await;
    assert_eq!(body["retry_after"], retry_after);
    // Another account from the same address is unaffected.
    let other = app
        .post(
            "/api/auth/login",
            &json!({"login": "sari", "password": PASSWORD}),
        )
        .await;
    assert_eq!(other.status(), StatusCode::OK);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn one_address_spraying_many_accounts_is_refused(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.register("budi").await;
    let from = |ip: &'static str| {
        app.request(reqwest::Method::POST, "/api/auth/login")
            .header("x-forwarded-for", ip)
    };

    for i in 0..30 {
        let r = from("203.0.113.7")
            .json(&json!({"login": format!("user{i}"), "password": "guess-guess"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let blocked = from("203.0.113.7")
        .json(&json!({"login": "budi", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let elsewhere = from("198.51.100.1")
        .json(&json!({"login": "budi", "password": PASSWORD}))
        .send()
        .await
        .unwrap();

    problem(
        blocked,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_login_attempts",
    )
    .await;
    assert_eq!(elsewhere.status(), StatusCode::OK);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn expired_forged_and_missing_tokens_are_refused(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let session = app.signed_up("budi").await;
    let keys = JwtKeys::new(TEST_JWT_SECRET.as_bytes());
    let expired = keys.issue_at(
        session.id,
        SystemTime::now() - Duration::from_secs(3600),
        Duration::from_secs(900),
    );
    let forged = JwtKeys::new(b"some-other-secret-some-other-secret!!").issue(session.id);

    problem(
        app.get_as("/api/users/me", &expired).await,
        StatusCode::UNAUTHORIZED,
        "token_expired",
    )
    .await;
    problem(
        app.get_as("/api/users/me", &forged).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    problem(
        app.get("/api/users/me").await,
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
    )
    .await;
    let wrong_scheme = app
        .request(reqwest::Method::GET, "/api/users/me")
        .header("authorization", format!("Token {}", session.access_token))
        .send()
        .await
        .unwrap();
    problem(wrong_scheme, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn refreshing_rotates_the_refresh_token(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let session = app.signed_up("budi").await;

    let response = app
        .post(
            "/api/auth/refresh",
            &json!({"refresh_token": session.refresh_token}),
        )
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let next = body["refresh_token"].as_str().unwrap();
    assert_ne!(next, session.refresh_token);
    assert_eq!(body["user"]["username"], "budi");
    assert_eq!(
        app.get_as("/api/users/me", body["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
    let again = app
        .post("/api/auth/refresh", &json!({"refresh_token": next}))
        .await;
    assert_eq!(again.status(), StatusCode::OK, "the successor works");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn reusing_a_refresh_token_revokes_the_whole_session(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let session = app.signed_up("budi").await;
    let other_session = app.login("budi").await;
    let rotated: Value = app
        .post(
            "/api/auth/refresh",
            &json!({"refresh_token": session.refresh_token}),
        )
        .await
        .json()
        .await
        .unwrap();
    let successor = rotated["refresh_token"].as_str().unwrap();

    // Someone elsewhere presents the used token (the same client retrying within a few seconds
    // gets a grace: tests/api/security.rs).
    let replay = app
        .request(reqwest::Method::POST, "/api/auth/refresh")
        .header("x-forwarded-for", "198.51.100.66")
        .json(&json!({"refresh_token": session.refresh_token}))
        .send()
        .await
        .unwrap();

    problem(replay, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;
    let after = app
        .post("/api/auth/refresh", &json!({"refresh_token": successor}))
        .await;
    problem(after, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;
    let unrelated = app
        .post(
            "/api/auth/refresh",
            &json!({"refresh_token": other_session.refresh_token}),
        )
        .await;
    assert_eq!(unrelated.status(), StatusCode::OK, "other sessions survive");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn unknown_and_expired_refresh_tokens_are_refused(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let session = app.signed_up("budi").await;
    sqlx::query("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'")
        .execute(&app.db)
        .await
        .unwrap();

    let expired = app
        .post(
            "/api/auth/refresh",
            &json!({"refresh_token": session.refresh_token}),
        )
        .await;
    let unknown = app
        .post(
            "/api/auth/refresh",
            &json!({"refresh_token": "srt_nonsense"}),
        )
        .await;

    problem(expired, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    problem(unknown, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn logging_out_revokes_the_refresh_token(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let session = app.signed_up("budi").await;

    let response = app
        .post(
            "/api/auth/logout",
            &json!({"refresh_token": session.refresh_token}),
        )
        .await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let refresh = app
        .post(
            "/api/auth/refresh",
            &json!({"refresh_token": session.refresh_token}),
        )
        .await;
    assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);
    let twice = app
        .post(
            "/api/auth/logout",
            &json!({"refresh_token": session.refresh_token}),
        )
        .await;
    assert_eq!(twice.status(), StatusCode::NO_CONTENT, "idempotent");
    let unknown = app
        .post("/api/auth/logout", &json!({"refresh_token": "srt_unknown"}))
        .await;
    assert_eq!(unknown.status(), StatusCode::NO_CONTENT, "reveals nothing");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_disabled_user_is_locked_out_everywhere(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let session = app.signed_up("budi").await;
    sqlx::query("UPDATE users SET is_active = false WHERE id = $1")
        .bind(session.id)
        .execute(&app.db)
        .await
        .unwrap();

    let with_token = app.get_as("/api/users/me", &session.access_token).await;
    let login = app
        .post(
            "/api/auth/login",
            &json!({"login": "budi", "password": PASSWORD}),
        )
        .await;
    let refresh = app
        .post(
            "/api/auth/refresh",
            &json!({"refresh_token": session.refresh_token}),
        )
        .await;

    problem(with_token, StatusCode::UNAUTHORIZED, "account_disabled").await;
    problem(login, StatusCode::UNAUTHORIZED, "account_disabled").await;
    problem(refresh, StatusCode::UNAUTHORIZED, "account_disabled").await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_disabled_user_with_a_wrong_password_learns_nothing(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let session = app.signed_up("budi").await;
    sqlx::query("UPDATE users SET is_active = false WHERE id = $1")
        .bind(session.id)
        .execute(&app.db)
        .await
        .unwrap();

    let login = app
        .post(
            "/api/auth/login",
            &json!({"login": "budi", "password": "wrong-password"}),
        )
        .await;

    problem(login, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}
