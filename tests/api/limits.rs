//! Rate limits that hold under concurrency, and the bound on password hashing.

use std::time::{Duration, Instant};

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{PASSWORD, TestApp, problem};

const PATIENCE: Duration = Duration::from_secs(30);

fn from(app: &TestApp, ip: &str, path: &str) -> reqwest::RequestBuilder {
    app.request(reqwest::Method::POST, path)
        .header("x-forwarded-for", ip)
}

fn statuses(responses: &[reqwest::Response]) -> Vec<StatusCode> {
    responses.iter().map(reqwest::Response::status).collect()
}

fn count(statuses: &[StatusCode], status: StatusCode) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn concurrent_registrations_from_one_address_get_exactly_the_limit(db: PgPool) {
    let app = TestApp::spawn_with(db, |c| {
        c.limits.register_address = "5/1h".parse().unwrap();
    })
    .await;

    let attempts =
        (0..40).map(|i| {
            from(&app, "203.0.113.9", "/api/auth/register")
            .json(&json!({"username": format!("flood{i}"), "email": format!("flood{i}@example.com"),
                          "password": PASSWORD}))
            .send()
        });
    let responses: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    let statuses = statuses(&responses);
    assert_eq!(count(&statuses, StatusCode::CREATED), 5, "{statuses:?}");
    assert_eq!(
        count(&statuses, StatusCode::TOO_MANY_REQUESTS),
        35,
        "{statuses:?}"
    );
    let created: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(created, 5);
    let refused = from(&app, "203.0.113.9", "/api/auth/register")
        .json(&json!({"username": "late", "email": "late@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(refused.headers().contains_key("retry-after"));
    problem(
        refused,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_registrations",
    )
    .await;
    let elsewhere = from(&app, "198.51.100.4", "/api/auth/register")
        .json(&json!({"username": "other", "email": "other@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::CREATED);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn parallel_guesses_get_no_more_turns_than_the_account_limit(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.register("budi").await;

    // 30 guesses at once, each from its own address: only the account limit (5) applies.
    let guesses = (0..30).map(|i| {
        from(&app, &format!("198.51.100.{}", i + 1), "/api/auth/login")
            .json(&json!({"login": "budi", "password": format!("guess-{i}")}))
            .send()
    });
    let responses: Vec<_> = join_all(guesses)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    let statuses = statuses(&responses);
    assert_eq!(
        count(&statuses, StatusCode::UNAUTHORIZED),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        count(&statuses, StatusCode::TOO_MANY_REQUESTS),
        25,
        "{statuses:?}"
    );
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn username_and_email_share_one_count(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.register("budi").await;

    for login in [
        "budi",
        "budi@example.com",
        "BUDI",
        "Budi@Example.com",
        "budi",
    ] {
        let r = app
            .post(
                "/api/auth/login",
                &json!({"login": login, "password": "wrong-password"}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{login}");
    }
    let by_email = app
        .post(
            "/api/auth/login",
            &json!({"login": "budi@example.com", "password": PASSWORD}),
        )
        .await;

    problem(
        by_email,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_login_attempts",
    )
    .await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn ipv6_clients_are_counted_per_64(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.register("budi").await;

    // 30 failures over 30 different accounts, each from another address of one /64.
    for i in 0..30 {
        let r = from(
            &app,
            &format!("2001:db8:7:7::{:x}", i + 1),
            "/api/auth/login",
        )
        .json(&json!({"login": format!("user{i}"), "password": "guess-guess"}))
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let same_64 = from(&app, "2001:db8:7:7:ffff:1:2:3", "/api/auth/login")
        .json(&json!({"login": "budi", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let next_64 = from(&app, "2001:db8:7:8::1", "/api/auth/login")
        .json(&json!({"login": "budi", "password": PASSWORD}))
        .send()
        .await
        .unwrap();

    problem(
        same_64,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_login_attempts",
    )
    .await;
    assert_eq!(next_64.status(), StatusCode::OK);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_successful_login_gives_its_turn_back(db: PgPool) {
    let app = TestApp::spawn_with(db, |c| {
        c.limits.login_address = "3/15m".parse().unwrap();
    })
    .await;
    app.register("budi").await;

    // Far more successful logins than the address allows failures.
    for _ in 0..6 {
        app.login("budi").await;
    }
    let failures = (0..3).map(|_| {
        app.request(reqwest::Method::POST, "/api/auth/login")
            .json(&json!({"login": "nobody", "password": "guess-guess"}))
            .send()
    });
    let statuses: Vec<_> = join_all(failures)
        .await
        .into_iter()
        .map(|r| r.unwrap().status())
        .collect();
    let after = app
        .post(
            "/api/auth/login",
            &json!({"login": "budi", "password": PASSWORD}),
        )
        .await;

    assert_eq!(
        count(&statuses, StatusCode::UNAUTHORIZED),
        3,
        "{statuses:?}"
    );
    problem(
        after,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_login_attempts",
    )
    .await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn refreshes_are_limited_per_account(db: PgPool) {
    let app = TestApp::spawn_with(db, |c| {
        c.limits.refresh_account = "3/1m".parse().unwrap();
    })
    .await;
    let session = app.signed_up("budi").await;

    let mut token = session.refresh_token.clone();
    for _ in 0..3 {
        let body: Value = app
            .post("/api/auth/refresh", &json!({"refresh_token": token}))
            .await
            .json()
            .await
            .unwrap();
        token = body["refresh_token"]
            .as_str()
            .expect("a new token")
            .to_owned();
    }
    let fourth = app
        .post("/api/auth/refresh", &json!({"refresh_token": token}))
        .await;

    assert!(fourth.headers().contains_key("retry-after"));
    problem(fourth, StatusCode::TOO_MANY_REQUESTS, "too_many_refreshes").await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn limits_let_requests_through_while_redis_is_down(db: PgPool) {
    let app = TestApp::spawn_with(db, |c| {
        c.redis_url = "redis://127.0.0.1:1".into();
        c.limits.register_address = "1/1h".parse().unwrap();
    })
    .await;

    // Over the configured limit, but nothing can be counted: the limits fail open.
    let first = app.signed_up("budi").await;
    let second = app.signed_up("sari").await;

    assert_ne!(first.id, second.id);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_busy_hasher_answers_503_service_busy_and_creates_nothing(db: PgPool) {
    let app = TestApp::spawn_with(db, |c| {
        c.server.password_hash_concurrency = 1;
        c.server.password_hash_wait_ms = 300;
    })
    .await;
    let held = app.state.passwords.occupy_all().await;

    let response = app
        .post(
            "/api/auth/register",
            &json!({"username": "budi", "email": "budi@example.com", "password": PASSWORD}),
        )
        .await;

    assert!(response.headers().contains_key("retry-after"));
    problem(response, StatusCode::SERVICE_UNAVAILABLE, "service_busy").await;
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(users, 0);
    assert_eq!(app.state.passwords.started(), 0);
    drop(held);
    app.register("budi").await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_request_whose_client_left_is_never_hashed(db: PgPool) {
    let app = TestApp::spawn_with(db, |c| {
        c.server.password_hash_concurrency = 1;
        c.server.password_hash_wait_ms = 60_000;
    })
    .await;
    let hasher = app.state.passwords.clone();
    let held = hasher.occupy_all().await;

    // The client gives up while its registration waits for a hashing slot.
    let request = app
        .request(reqwest::Method::POST, "/api/auth/register")
        .json(&json!({"username": "budi", "email": "budi@example.com", "password": PASSWORD}))
        .send();
    let waiting = async {
        let deadline = Instant::now() + PATIENCE;
        while hasher.waiting() == 0 {
            assert!(Instant::now() < deadline, "the request never waited");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        _ = request => panic!("the request finished while every slot was taken"),
        () = waiting => {}
    }
    // Dropping the request closed its connection; the server drops the waiting future.
    let deadline = Instant::now() + PATIENCE;
    while hasher.waiting() > 0 {
        assert!(
            Instant::now() < deadline,
            "the abandoned request kept waiting"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(held);

    assert_eq!(hasher.started(), 0, "an abandoned request was hashed");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(users, 0);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn many_concurrent_registrations_hash_within_the_bound(db: PgPool) {
    let app = TestApp::spawn_with(db, |c| {
        c.server.password_hash_concurrency = 2;
        // However slow a busy test machine hashes, none of them gives up waiting.
        c.server.password_hash_wait_ms = 600_000;
        c.limits.register_address = "1000/1h".parse().unwrap();
    })
    .await;

    let attempts = (0..24).map(|i| {
        app.request(reqwest::Method::POST, "/api/auth/register")
            .json(
                &json!({"username": format!("many{i}"), "email": format!("many{i}@example.com"),
                          "password": PASSWORD}),
            )
            .send()
    });
    let statuses: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().status())
        .collect();

    assert!(
        statuses.iter().all(|s| *s == StatusCode::CREATED),
        "{statuses:?}"
    );
    assert_eq!(app.state.passwords.size(), 2);
    assert_eq!(app.state.passwords.started(), 24);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn donations_are_limited_per_donor(db: PgPool) {
    let app = TestApp::spawn_with(db, |c| {
        c.limits.donation_account = "2/1m".parse().unwrap();
    })
    .await;
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
    app.patch_as(
        "/api/users/me/payout",
        &streamer.access_token,
        &json!({"bank_name": "BCA", "account_number": "1234567890", "account_holder": "Andi"}),
    )
    .await;
    let path = format!("/api/streams/{stream_id}/donations");
    let body = json!({"amount": 10000, "payment_method": "bank_transfer"});

    let first = app.post_as(&path, &donor.access_token, &body).await;
    let second = app.post_as(&path, &donor.access_token, &body).await;
    let third = app.post_as(&path, &donor.access_token, &body).await;

    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(second.status(), StatusCode::CREATED);

    problem(
        third,
        StatusCode::TOO_MANY_REQUESTS,
        "donation_rate_limited",
    )
    .await;
    let donations: i64 = sqlx::query_scalar("SELECT count(*) FROM donations")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(donations, 2);
}
