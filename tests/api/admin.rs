//! The staff console's API: only staff get in; deactivation locks an account out at once.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{PASSWORD, Session, TestApp, field_errors, problem};

/// A logged-in staff member.
async fn staff(app: &TestApp) -> Session {
    let session = app.signed_up("staffer").await;
    app.make_staff(session.id).await;
    session
}

async fn json_of(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("JSON body")
}

/// The (field, code) pairs of a 422 validation problem.
async fn invalid_fields(response: reqwest::Response) -> Vec<(String, String)> {
    let body = problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    field_errors(&body)
}

fn usernames(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|u| u["username"].as_str().expect("username"))
        .collect()
}

/// Inserts a stream owned by `streamer`, live or ended.
async fn insert_stream(app: &TestApp, streamer: Uuid, title: &str, live: bool) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO streams (streamer_id, title, is_active, started_at, ended_at)
         VALUES ($1, $2, $3, now() - interval '5 minutes', CASE WHEN $3 THEN NULL ELSE now() END)
         RETURNING id",
    )
    .bind(streamer)
    .bind(title)
    .bind(live)
    .fetch_one(&app.db)
    .await
    .expect("inserting a stream")
}

async fn insert_donation(app: &TestApp, stream: Uuid, donor: Uuid, amount: i64, status: &str) {
    sqlx::query(
        "INSERT INTO donations (stream_id, donor_id, amount, message, payment_method, status)
         VALUES ($1, $2, $3, 'semangat', 'midtrans', $4)",
    )
    .bind(stream)
    .bind(donor)
    .bind(rust_decimal::Decimal::from(amount))
    .bind(status)
    .execute(&app.db)
    .await
    .expect("inserting a donation");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn only_staff_may_use_the_admin_api(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let viewer = app.signed_up("rina").await;
    let id = viewer.id;

    for (method, path) in [
        ("GET", "/api/admin/users".to_owned()),
        ("POST", format!("/api/admin/users/{id}/deactivate")),
        ("POST", format!("/api/admin/users/{id}/reactivate")),
        ("GET", "/api/admin/streams".to_owned()),
        ("POST", format!("/api/admin/streams/{id}/end")),
        ("GET", "/api/admin/donations".to_owned()),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let anonymous = app.request(method.clone(), &path).send().await.unwrap();
        problem(anonymous, StatusCode::UNAUTHORIZED, "not_authenticated").await;
        let as_viewer = app
            .request(method, &path)
            .bearer_auth(&viewer.access_token)
            .send()
            .await
            .unwrap();
        problem(as_viewer, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let still_active: bool = sqlx::query_scalar("SELECT is_active FROM users WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(still_active);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn staff_find_users_by_part_of_their_name_or_email(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let admin = staff(&app).await;
    app.register("budi_santoso").await;
    app.register("sari").await;
    app.register("budiman").await;

    let found = json_of(
        app.get_as("/api/admin/users?q=BUDI", &admin.access_token)
            .await,
    )
    .await;
    let mut names = usernames(&found);
    names.sort_unstable();
    assert_eq!(names, ["budi_santoso", "budiman"]);
    assert_eq!(found["total"], 2);

    let by_email = json_of(
        app.get_as("/api/admin/users?q=sari@example", &admin.access_token)
            .await,
    )
    .await;
    assert_eq!(usernames(&by_email), ["sari"]);

    // `_` is a literal underscore, not "any character".
    let literal = json_of(
        app.get_as("/api/admin/users?q=i_s", &admin.access_token)
            .await,
    )
    .await;
    assert_eq!(usernames(&literal), ["budi_santoso"]);

    let paged = json_of(
        app.get_as("/api/admin/users?per_page=2&page=2", &admin.access_token)
            .await,
    )
    .await;
    assert_eq!(paged["total"], 4);
    assert_eq!(paged["items"].as_array().unwrap().len(), 2);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn bad_list_parameters_are_field_errors(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let admin = staff(&app).await;

    let response = app
        .get_as("/api/admin/users?per_page=500", &admin.access_token)
        .await;
    assert_eq!(
        invalid_fields(response).await,
        [("per_page".to_owned(), "out_of_range".to_owned())]
    );

    let response = app
        .get_as("/api/admin/users?is_active=maybe", &admin.access_token)
        .await;
    assert_eq!(invalid_fields(response).await[0].0, "is_active");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn deactivating_a_user_ends_their_sessions_and_blocks_login(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let admin = staff(&app).await;
    let eko = app.signed_up("eko").await;

    let response = app
        .post_as(
            &format!("/api/admin/users/{}/deactivate", eko.id),
            &admin.access_token,
            &json!({}),
        )
        .await;

    let user = json_of(response).await;
    assert_eq!(user["username"], "eko");
    assert_eq!(user["is_active"], false);
    // The access token they still hold stops working at once...
    let me = app.get_as("/api/users/me", &eko.access_token).await;
    problem(me, StatusCode::UNAUTHORIZED, "account_disabled").await;
    // ...their refresh token was revoked, not merely refused...
    let refreshed = app
        .post(
            "/api/auth/refresh",
            &json!({"refresh_token": eko.refresh_token}),
        )
        .await;
    assert_eq!(refreshed.status(), StatusCode::UNAUTHORIZED);
    let live_tokens: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(eko.id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(live_tokens, 0);
    // ...and they cannot log in again.
    let login = app
        .post(
            "/api/auth/login",
            &json!({"login": "eko", "password": PASSWORD}),
        )
        .await;
    problem(login, StatusCode::UNAUTHORIZED, "account_disabled").await;
    // Staff can filter for deactivated accounts.
    let inactive = json_of(
        app.get_as("/api/admin/users?is_active=false", &admin.access_token)
            .await,
    )
    .await;
    assert_eq!(usernames(&inactive), ["eko"]);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_reactivated_user_can_log_in_again(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let admin = staff(&app).await;
    let eko = app.signed_up("eko").await;
    let path = format!("/api/admin/users/{}", eko.id);
    json_of(
        app.post_as(
            &format!("{path}/deactivate"),
            &admin.access_token,
            &json!({}),
        )
        .await,
    )
    .await;

    let user = json_of(
        app.post_as(
            &format!("{path}/reactivate"),
            &admin.access_token,
            &json!({}),
        )
        .await,
    )
    .await;

    assert_eq!(user["is_active"], true);
    app.login("eko").await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn staff_cannot_lock_themselves_or_a_superuser_out(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let admin = staff(&app).await;
    let root = app.signed_up("root").await;
    sqlx::query("UPDATE users SET is_staff = true, is_superuser = true WHERE id = $1")
        .bind(root.id)
        .execute(&app.db)
        .await
        .unwrap();

    let own = app
        .post_as(
            &format!("/api/admin/users/{}/deactivate", admin.id),
            &admin.access_token,
            &json!({}),
        )
        .await;
    problem(own, StatusCode::CONFLICT, "cannot_deactivate_self").await;

    let superuser = app
        .post_as(
            &format!("/api/admin/users/{}/deactivate", root.id),
            &admin.access_token,
            &json!({}),
        )
        .await;
    problem(superuser, StatusCode::FORBIDDEN, "forbidden").await;

    let unknown = app
        .post_as(
            &format!("/api/admin/users/{}/deactivate", Uuid::new_v4()),
            &admin.access_token,
            &json!({}),
        )
        .await;
    problem(unknown, StatusCode::NOT_FOUND, "not_found").await;
    app.login("root").await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn staff_list_streams_live_first_and_end_a_live_one(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let admin = staff(&app).await;
    let andi = app.signed_up("andi").await;
    let old = insert_stream(&app, andi.id, "Kemarin", false).await;
    let live = insert_stream(&app, andi.id, "Main game malam", true).await;

    let streams = json_of(app.get_as("/api/admin/streams", &admin.access_token).await).await;
    let ids: Vec<&str> = streams["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [live.to_string(), old.to_string()]);
    assert_eq!(streams["items"][0]["is_live"], true);
    assert_eq!(streams["items"][0]["streamer"]["username"], "andi");

    let ended = json_of(
        app.post_as(
            &format!("/api/admin/streams/{live}/end"),
            &admin.access_token,
            &json!({}),
        )
        .await,
    )
    .await;

    assert_eq!(ended["is_live"], false);
    assert!(ended["ended_at"].is_string(), "{ended}");
    let still_live = json_of(
        app.get_as("/api/admin/streams?live=true", &admin.access_token)
            .await,
    )
    .await;
    assert_eq!(still_live["total"], 0);
    let again = app
        .post_as(
            &format!("/api/admin/streams/{live}/end"),
            &admin.access_token,
            &json!({}),
        )
        .await;
    problem(again, StatusCode::CONFLICT, "stream_not_live").await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn staff_search_donations_and_filter_by_status(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let admin = staff(&app).await;
    let andi = app.signed_up("andi").await;
    let rina = app.signed_up("rina").await;
    let dewi = app.signed_up("dewi").await;
    let stream = insert_stream(&app, andi.id, "Ngobrol santai", true).await;
    insert_donation(&app, stream, rina.id, 25_000, "completed").await;
    insert_donation(&app, stream, rina.id, 10_000, "pending").await;
    insert_donation(&app, stream, dewi.id, 50_000, "completed").await;

    let completed = json_of(
        app.get_as("/api/admin/donations?status=completed", &admin.access_token)
            .await,
    )
    .await;
    assert_eq!(completed["total"], 2);
    let mut amounts: Vec<i64> = completed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["amount"].as_i64().unwrap())
        .collect();
    amounts.sort_unstable();
    assert_eq!(amounts, [25_000, 50_000]);

    let rinas = json_of(
        app.get_as("/api/admin/donations?q=rina", &admin.access_token)
            .await,
    )
    .await;
    assert_eq!(rinas["total"], 2);
    let first = &rinas["items"][0];
    assert_eq!(first["donor"]["username"], "rina");
    assert_eq!(first["streamer"]["username"], "andi");
    assert_eq!(first["stream_title"], "Ngobrol santai");

    let rinas_pending = json_of(
        app.get_as(
            "/api/admin/donations?q=rina&status=pending",
            &admin.access_token,
        )
        .await,
    )
    .await;
    assert_eq!(rinas_pending["total"], 1);
    assert_eq!(rinas_pending["items"][0]["amount"], 10_000);

    let unknown = app
        .get_as("/api/admin/donations?status=paid", &admin.access_token)
        .await;
    assert_eq!(
        invalid_fields(unknown).await,
        [("status".to_owned(), "invalid_choice".to_owned())]
    );
}

/// Every status a donation can have is a filter staff can use (the admin module once kept its
/// own list of statuses, without `partially_refunded`, and refused that filter with 422).
#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn staff_can_filter_donations_by_every_status(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let admin = staff(&app).await;
    for status in [
        "pending",
        "completed",
        "failed",
        "expired",
        "rejected",
        "refunded",
        "partially_refunded",
    ] {
        let response = app
            .get_as(
                &format!("/api/admin/donations?status={status}"),
                &admin.access_token,
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "status={status}");
    }
}
