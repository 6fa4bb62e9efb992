//! Security headers, secrets kept out of caches, the trusted-proxy list, text that cannot
//! disguise itself, the refresh grace for retries and who may reactivate whom.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{PASSWORD, TestApp, field_errors, problem};

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn every_response_carries_the_security_headers(db: PgPool) {
    let app = TestApp::spawn(db).await;

    for path in [
        "/",
        "/api/docs/",
        "/api/streams",
        "/healthz",
        "/api/nothing-here",
    ] {
        let response = app.get(path).await;
        let csp = header(&response, "content-security-policy");
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("object-src 'none'"), "{path}: {csp}");
        assert!(
            csp.contains(&format!(
                "script-src 'self' {}",
                app.state.config.midtrans.snap_url.trim_end_matches('/')
            )),
            "{path}: Snap.js must be allowed: {csp}"
        );
        assert_eq!(
            header(&response, "x-content-type-options"),
            "nosniff",
            "{path}"
        );
        assert_eq!(header(&response, "x-frame-options"), "DENY", "{path}");
        assert_eq!(
            header(&response, "referrer-policy"),
            "strict-origin-when-cross-origin",
            "{path}"
        );
    }
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn answers_carrying_secrets_are_never_stored(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.register("andi").await;

    let login = app
        .post(
            "/api/auth/login",
            &json!({"login": "andi", "password": PASSWORD}),
        )
        .await;
    assert_eq!(header(&login, "cache-control"), "no-store");
    let tokens: Value = login.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = app
        .post(
            "/api/auth/refresh",
            &json!({"refresh_token": tokens["refresh_token"]}),
        )
        .await;
    let key = app
        .post_as("/api/users/me/stream-key", access, &Value::Null)
        .await;
    let overlay = app
        .post_as("/api/users/me/overlay-token", access, &Value::Null)
        .await;
    let me = app.get_as("/api/users/me", access).await;

    for (what, response) in [
        ("refresh", &refresh),
        ("stream key", &key),
        ("overlay token", &overlay),
        ("own account", &me),
    ] {
        assert!(
            response.status().is_success(),
            "{what}: {}",
            response.status()
        );
        assert_eq!(header(response, "cache-control"), "no-store", "{what}");
    }
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn readiness_names_the_missing_dependency_and_nothing_else(db: PgPool) {
    let app = TestApp::spawn_with(db, |c| c.redis_url = "redis://127.0.0.1:1".into()).await;

    let body = problem(
        app.get("/readyz").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "not_ready",
    )
    .await;

    assert_eq!(body["detail"], "PostgreSQL: ok; Redis: down");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn without_trusted_proxies_a_forged_forwarded_for_changes_nothing(db: PgPool) {
    let app = TestApp::spawn_with(db, |c| {
        c.trusted_proxies = siaran::http::proxy::TrustedProxies::default();
    })
    .await;

    // A different made-up address on every attempt: all are counted against the real peer.
    for i in 0..30 {
        let r = app
            .request(reqwest::Method::POST, "/api/auth/login")
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .json(&json!({"login": format!("user{i}"), "password": "guess-guess"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let next = app
        .request(reqwest::Method::POST, "/api/auth/login")
        .header("x-forwarded-for", "198.51.100.200")
        .json(&json!({"login": "someone", "password": "guess-guess"}))
        .send()
        .await
        .unwrap();

    problem(
        next,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_login_attempts",
    )
    .await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn the_deprecated_trust_proxy_switch_trusts_loopback_only(db: PgPool) {
    let app = TestApp::spawn_with(db, |c| {
        c.trusted_proxies = siaran::http::proxy::TrustedProxies::default();
        c.trust_proxy = true;
    })
    .await;
    assert!(app.state.proxies.trusts("127.0.0.1".parse().unwrap()));
    assert!(app.state.proxies.trusts("::1".parse().unwrap()));
    assert!(!app.state.proxies.trusts("10.0.0.1".parse().unwrap()));

    // The test client connects from loopback, so its X-Forwarded-For is believed.
    for i in 0..30 {
        let r = app
            .request(reqwest::Method::POST, "/api/auth/login")
            .header("x-forwarded-for", "203.0.113.50")
            .json(&json!({"login": format!("user{i}"), "password": "guess-guess"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let other_client = app
        .request(reqwest::Method::POST, "/api/auth/login")
        .header("x-forwarded-for", "203.0.113.51")
        .json(&json!({"login": "someone", "password": "guess-guess"}))
        .send()
        .await
        .unwrap();

    assert_eq!(other_client.status(), StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn nul_in_any_text_is_a_field_error_not_a_server_error(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let session = app.signed_up("andi").await;
    let token = &session.access_token;

    let title = app
        .post_as("/api/streams", token, &json!({"title": "a\u{0}b"}))
        .await;
    let description = app
        .post_as(
            "/api/streams",
            token,
            &json!({"title": "ok", "description": "x\u{0}"}),
        )
        .await;
    let names = app
        .patch_as("/api/users/me", token, &json!({"last_name": "\u{0}"}))
        .await;
    let query = app.get_as("/api/streams?live=true%00", token).await;
    let register = app
        .post(
            "/api/auth/register",
            &json!({"username": "bu\u{0}di", "email": "budi@example.com", "password": PASSWORD}),
        )
        .await;

    for (field, response) in [
        ("title", title),
        ("description", description),
        ("last_name", names),
        ("live", query),
        ("username", register),
    ] {
        let body = problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(
            field_errors(&body),
            vec![(field.to_owned(), "invalid_characters".to_owned())]
        );
    }
    let streams: i64 = sqlx::query_scalar("SELECT count(*) FROM streams")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(streams, 0, "nothing half-written");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn titles_and_names_refuse_bidi_and_zero_width_characters(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let session = app.signed_up("andi").await;
    let token = &session.access_token;

    let title = app
        .post_as(
            "/api/streams",
            token,
            &json!({"title": "Free \u{202E}gnp.exe"}),
        )
        .await;
    let name = app
        .patch_as(
            "/api/users/me",
            token,
            &json!({"first_name": "ad\u{200B}min"}),
        )
        .await;
    let emoji = app
        .post_as(
            "/api/streams",
            token,
            &json!({"title": "Keluarga 👨\u{200D}👩\u{200D}👧", "description": "line\u{200B} one\nline two"}),
        )
        .await;

    for (field, response) in [("title", title), ("first_name", name)] {
        let body = problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(
            field_errors(&body),
            vec![(field.to_owned(), "invalid_characters".to_owned())]
        );
    }
    assert_eq!(emoji.status(), StatusCode::CREATED);
    let stream: Value = emoji.json().await.unwrap();
    assert_eq!(stream["title"], "Keluarga 👨\u{200D}👩\u{200D}👧");
    assert_eq!(
        stream["description"], "line one\nline two",
        "stripped, not refused"
    );
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn invisible_characters_do_not_hide_a_blocked_word(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let streamer = app.signed_up("andi").await;
    let donor = app.signed_up("rina").await;
    let stream_id: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO streams (streamer_id, title, is_active, started_at) VALUES ($1, 'Live', true, now())
         RETURNING id",
    )
    .bind(streamer.id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    let words = app
        .request(reqwest::Method::PUT, "/api/users/me/blocked-words")
        .bearer_auth(&streamer.access_token)
        .json(&json!({"words": ["jelek"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(words.status(), StatusCode::OK);
    app.patch_as(
        "/api/users/me/payout",
        &streamer.access_token,
        &json!({"bank_name": "BCA", "account_number": "1234567890", "account_holder": "Andi"}),
    )
    .await;

    let disguised = app
        .post_as(
            &format!("/api/streams/{stream_id}/donations"),
            &donor.access_token,
            &json!({"amount": 10000, "payment_method": "bank_transfer", "message": "je\u{200B}lek"}),
        )
        .await;
    let comment = app
        .post_as(
            &format!("/api/streams/{stream_id}/comments"),
            &donor.access_token,
            &json!({"content": "halo\u{202E} semua\u{200B}"}),
        )
        .await;

    let body = problem(
        disguised,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_errors(&body),
        vec![("message".to_owned(), "blocked_word".to_owned())]
    );
    assert_eq!(comment.status(), StatusCode::CREATED);
    let comment: Value = comment.json().await.unwrap();
    assert_eq!(comment["content"], "halo semua");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn only_a_superuser_may_reactivate_a_superuser(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let staff = app.signed_up("staffer").await;
    app.make_staff(staff.id).await;
    let root = app.signed_up("root").await;
    let other_root = app.signed_up("root2").await;
    sqlx::query("UPDATE users SET is_staff = true, is_superuser = true WHERE id = ANY($1)")
        .bind(vec![root.id, other_root.id])
        .execute(&app.db)
        .await
        .unwrap();
    let deactivated = app
        .post_as(
            &format!("/api/admin/users/{}/deactivate", other_root.id),
            &root.access_token,
            &Value::Null,
        )
        .await;
    assert_eq!(deactivated.status(), StatusCode::OK);

    let by_staff = app
        .post_as(
            &format!("/api/admin/users/{}/reactivate", other_root.id),
            &staff.access_token,
            &Value::Null,
        )
        .await;
    problem(by_staff, StatusCode::FORBIDDEN, "forbidden").await;
    let still: bool = sqlx::query_scalar("SELECT is_active FROM users WHERE id = $1")
        .bind(other_root.id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(!still, "staff reactivated a superuser");
    let by_root = app
        .post_as(
            &format!("/api/admin/users/{}/reactivate", other_root.id),
            &root.access_token,
            &Value::Null,
        )
        .await;
    assert_eq!(by_root.status(), StatusCode::OK);
}

async fn refresh_from(app: &TestApp, token: &str, ip: &str, agent: &str) -> reqwest::Response {
    app.request(reqwest::Method::POST, "/api/auth/refresh")
        .header("x-forwarded-for", ip)
        .header("user-agent", agent)
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .expect("POST /api/auth/refresh")
}

async fn refresh_token_of(response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("token JSON");
    body["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned()
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_retried_refresh_from_the_same_client_gets_a_working_pair(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let session = app.signed_up("budi").await;
    let (ip, agent) = ("203.0.113.10", "Firefox/140");
    // The answer to this refresh is "lost": its token is never used.
    let _lost = refresh_token_of(refresh_from(&app, &session.refresh_token, ip, agent).await).await;

    let retried =
        refresh_token_of(refresh_from(&app, &session.refresh_token, ip, agent).await).await;

    let next = refresh_from(&app, &retried, ip, agent).await;
    assert_eq!(
        next.status(),
        StatusCode::OK,
        "the session survived the retry"
    );
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_used_token_from_another_client_still_ends_the_session(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let session = app.signed_up("budi").await;
    let successor = refresh_token_of(
        refresh_from(&app, &session.refresh_token, "203.0.113.10", "Firefox/140").await,
    )
    .await;

    let other_address =
        refresh_from(&app, &session.refresh_token, "198.51.100.66", "Firefox/140").await;

    problem(
        other_address,
        StatusCode::UNAUTHORIZED,
        "refresh_token_reused",
    )
    .await;
    let after = refresh_from(&app, &successor, "203.0.113.10", "Firefox/140").await;
    problem(after, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_used_token_after_its_successor_was_used_ends_the_session(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let session = app.signed_up("budi").await;
    let (ip, agent) = ("203.0.113.10", "Firefox/140");
    let first = refresh_token_of(refresh_from(&app, &session.refresh_token, ip, agent).await).await;
    let _second = refresh_token_of(refresh_from(&app, &first, ip, agent).await).await;

    let replay = refresh_from(&app, &session.refresh_token, ip, agent).await;

    problem(replay, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_retry_after_the_grace_ends_the_session(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let session = app.signed_up("budi").await;
    let (ip, agent) = ("203.0.113.10", "Firefox/140");
    let _lost = refresh_token_of(refresh_from(&app, &session.refresh_token, ip, agent).await).await;
    sqlx::query(
        "UPDATE refresh_tokens SET used_at = now() - interval '1 minute' WHERE used_at IS NOT NULL",
    )
    .execute(&app.db)
    .await
    .unwrap();

    let late = refresh_from(&app, &session.refresh_token, ip, agent).await;

    problem(late, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;
}
