//! Donating (validation), the streamer's settings, and donation history.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::donation_support::{Payments, donation_id};
use crate::helpers::{field_errors, problem};

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn every_invalid_field_is_reported_at_once(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;

    let response = env
        .donate(
            &cast.donor,
            cast.stream_id,
            &json!({"amount": 9_999, "message": "x".repeat(256), "payment_method": "midtrans"}),
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
            ("amount".into(), "too_small".into()),
            ("message".into(), "too_long".into())
        ]
    );
    let count: i64 = env.count("SELECT count(*) FROM donations").await;
    assert_eq!(count, 0, "nothing written");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn streams_that_are_missing_offline_or_ones_own_are_refused(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let offline: Uuid = sqlx::query_scalar(
        "INSERT INTO streams (streamer_id, title) VALUES ($1, 'Nanti malam') RETURNING id",
    )
    .bind(cast.streamer.id)
    .fetch_one(&env.app.db)
    .await
    .unwrap();
    let body = json!({"amount": 10_000, "payment_method": "midtrans"});

    let cases = [
        (
            env.donate(&cast.donor, Uuid::new_v4(), &body).await,
            "not_found",
        ),
        (env.donate(&cast.donor, offline, &body).await, "not_live"),
        (
            env.donate(&cast.streamer, cast.stream_id, &body).await,
            "own_stream",
        ),
    ];

    for (response, code) in cases {
        let problem = problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(field_errors(&problem), vec![("stream".into(), code.into())]);
    }
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn amounts_must_be_whole_rupiah_within_limits(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;

    let cases = [
        (json!(10_000.5), "invalid_type"),
        (json!("10000"), "invalid_type"),
        (json!(100_000_001), "too_large"),
        (json!(-5), "too_small"),
    ];
    for (amount, code) in cases {
        let response = env
            .donate(
                &cast.donor,
                cast.stream_id,
                &json!({"amount": amount, "payment_method": "midtrans"}),
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
            vec![("amount".into(), code.into())],
            "{amount}"
        );
    }
    let unknown_method = env
        .donate(
            &cast.donor,
            cast.stream_id,
            &json!({"amount": 10_000, "payment_method": "cash"}),
        )
        .await;
    let body = problem(
        unknown_method,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(field_errors(&body)[0].0, "payment_method");
    let anonymous = env
        .app
        .post(
            &format!("/api/streams/{}/donations", cast.stream_id),
            &json!({}),
        )
        .await;
    problem(anonymous, StatusCode::UNAUTHORIZED, "not_authenticated").await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn messages_with_the_streamers_blocked_words_are_refused(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let put = env
        .app
        .request(reqwest::Method::PUT, "/api/users/me/blocked-words")
        .bearer_auth(&cast.streamer.access_token)
        .json(&json!({"words": ["  Judi ", "slot   gacor", "judi"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let stored: Value = put.json().await.unwrap();
    assert_eq!(stored["words"], json!(["judi", "slot gacor"]));

    let blocked = env
        .donate(
            &cast.donor,
            cast.stream_id,
            &json!({"amount": 10_000, "message": "Ayo main SLOT GACOR!", "payment_method": "bank_transfer"}),
        )
        .await;
    let allowed = env
        .donate(
            &cast.donor,
            cast.stream_id,
            &json!({"amount": 10_000, "message": "Perjudian itu buruk", "payment_method": "bank_transfer"}),
        )
        .await;

    let body = problem(
        blocked,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_errors(&body),
        vec![("message".into(), "blocked_word".into())]
    );
    assert_eq!(allowed.status(), StatusCode::CREATED, "whole words only");
    let listed: Value = env
        .get_json("/api/users/me/blocked-words", &cast.streamer)
        .await;
    assert_eq!(listed["words"], json!(["judi", "slot gacor"]));
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn invalid_blocked_words_are_named(db: PgPool) {
    let env = Payments::spawn(db).await;
    let user = env.app.signed_up("andi").await;

    let response = env
        .app
        .request(reqwest::Method::PUT, "/api/users/me/blocked-words")
        .bearer_auth(&user.access_token)
        .json(&json!({"words": ["ok", "  ", "x".repeat(51)]}))
        .send()
        .await
        .unwrap();

    let body = problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_errors(&body),
        vec![
            ("words[1]".into(), "required".into()),
            ("words[2]".into(), "too_long".into())
        ]
    );
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn payout_details_are_set_in_full_first_then_changed_in_part(db: PgPool) {
    let env = Payments::spawn(db).await;
    let user = env.app.signed_up("andi").await;

    let none = env
        .app
        .get_as("/api/users/me/payout", &user.access_token)
        .await;
    let partial = env
        .app
        .patch_as(
            "/api/users/me/payout",
            &user.access_token,
            &json!({"bank_name": "BCA"}),
        )
        .await;
    let invalid = env
        .app
        .patch_as(
            "/api/users/me/payout",
            &user.access_token,
            &json!({"bank_name": "BCA", "account_number": "12ab", "account_holder": "A"}),
        )
        .await;
    let full = env
        .app
        .patch_as(
            "/api/users/me/payout",
            &user.access_token,
            &json!({"bank_name": "BCA", "account_number": "123 456-7890", "account_holder": "Andi Wijaya"}),
        )
        .await;
    let changed = env
        .app
        .patch_as(
            "/api/users/me/payout",
            &user.access_token,
            &json!({"bank_name": "Mandiri"}),
        )
        .await;

    problem(none, StatusCode::NOT_FOUND, "payout_details_missing").await;
    let body = problem(
        partial,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_errors(&body),
        vec![
            ("account_number".into(), "required".into()),
            ("account_holder".into(), "required".into())
        ]
    );
    let body = problem(
        invalid,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_errors(&body),
        vec![
            ("account_number".into(), "invalid".into()),
            ("account_holder".into(), "too_short".into())
        ]
    );
    assert_eq!(full.status(), StatusCode::OK);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["bank_name"], "Mandiri");
    assert_eq!(changed["account_number"], "1234567890");
    let read: Value = env.get_json("/api/users/me/payout", &user).await;
    assert_eq!(read["account_holder"], "Andi Wijaya");
}

/// Donations in several states, written directly so history has something to show.
async fn history_fixture(env: &Payments) -> (crate::donation_support::Cast, Vec<String>) {
    let cast = env.cast().await;
    let mut ids = Vec::new();
    for (amount, anonymous, message) in [
        (10_000, false, "pertama"),
        (20_000, true, "=HYPERLINK(\"http://x\")"),
        (30_000, false, "ketiga"),
    ] {
        let created: Value = env
            .donate(
                &cast.donor,
                cast.stream_id,
                &json!({"amount": amount, "message": message, "payment_method": "bank_transfer", "anonymous": anonymous}),
            )
            .await
            .json()
            .await
            .expect("donation JSON");
        ids.push(donation_id(&created));
    }
    for id in &ids[..2] {
        let r = env.confirm(&cast.streamer, id).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    (cast, ids)
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn history_pages_filters_and_totals(db: PgPool) {
    let env = Payments::spawn(db).await;
    let (cast, ids) = history_fixture(&env).await;

    let sent: Value = env
        .get_json("/api/donations/sent?per_page=2", &cast.donor)
        .await;
    let received: Value = env
        .get_json("/api/donations/received?status=completed", &cast.streamer)
        .await;
    let other_stream: Value = env
        .get_json(
            &format!("/api/donations/received?stream_id={}", Uuid::new_v4()),
            &cast.streamer,
        )
        .await;
    let future: Value = env
        .get_json("/api/donations/received?from=2999-01-01", &cast.streamer)
        .await;
    let bad = env
        .app
        .get_as(
            "/api/donations/sent?status=paid&from=yesterday",
            &cast.donor.access_token,
        )
        .await;
    let not_mine: Value = env.get_json("/api/donations/received", &cast.donor).await;

    assert_eq!(sent["total"], 3);
    assert_eq!(sent["items"].as_array().unwrap().len(), 2);
    assert_eq!(sent["items"][0]["id"], ids[2].as_str(), "newest first");
    assert_eq!(sent["totals"]["completed_amount"], 30_000);
    assert_eq!(sent["totals"]["completed_count"], 2);
    assert_eq!(
        sent["items"][1]["donor"]["username"], "rina",
        "the donor sees themselves"
    );
    assert_eq!(
        sent["items"][0]["streamer"]["username"],
        cast.streamer.username.as_str(),
        "the donor's history names whose stream it was"
    );
    assert_eq!(
        sent["items"][0]["streamer"]["id"],
        cast.streamer.id.to_string()
    );
    assert_eq!(received["total"], 2);
    let anonymous = received["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["anonymous"] == true)
        .unwrap();
    assert_eq!(
        anonymous["donor"],
        Value::Null,
        "the streamer does not see anonymous donors"
    );
    assert_eq!(anonymous["donor_name"], "Anonymous");
    assert_eq!(other_stream["total"], 0);
    assert_eq!(future["total"], 0);
    assert_eq!(future["totals"]["completed_amount"], 0);
    let body = problem(bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(
        field_errors(&body),
        vec![
            ("status".into(), "invalid".into()),
            ("from".into(), "invalid".into())
        ]
    );
    assert_eq!(not_mine["total"], 0);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn the_streamer_exports_received_donations_as_csv(db: PgPool) {
    let env = Payments::spawn(db).await;
    let (cast, _) = history_fixture(&env).await;

    let response = env
        .app
        .get_as(
            "/api/donations/received?format=csv",
            &cast.streamer.access_token,
        )
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let text = response.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header[0], "id");
    assert!(header.contains(&"amount".to_owned()) && header.contains(&"message".to_owned()));
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    let message = header.iter().position(|h| h == "message").unwrap();
    let donor = header.iter().position(|h| h == "donor").unwrap();
    let formula = rows
        .iter()
        .find(|r| r[message].contains("HYPERLINK"))
        .unwrap();
    assert!(
        formula[message].starts_with('\''),
        "formula defused: {:?}",
        &formula[message]
    );
    assert_eq!(&formula[donor], "Anonymous");
    let sent_csv = env
        .app
        .get_as("/api/donations/sent?format=csv", &cast.donor.access_token)
        .await;
    problem(
        sent_csv,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_streams_public_list_shows_completed_donations_newest_first(db: PgPool) {
    let env = Payments::spawn(db).await;
    let (cast, ids) = history_fixture(&env).await;

    let response = env
        .app
        .get(&format!("/api/streams/{}/donations", cast.stream_id))
        .await;
    let unknown = env
        .app
        .get(&format!("/api/streams/{}/donations", Uuid::new_v4()))
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["total"], 2, "pending ones are not shown");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items[0]["id"], ids[1].as_str(), "the last confirmed first");
    assert_eq!(items[0]["donor"], Value::Null);
    assert_eq!(items[0]["donor_name"], "Anonymous");
    assert_eq!(items[1]["donor"]["username"], "rina");
    assert!(items[1].get("reference_code").is_none(), "nothing private");
    problem(unknown, StatusCode::NOT_FOUND, "not_found").await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn the_history_filters_are_documented(db: PgPool) {
    let env = Payments::spawn(db).await;

    let doc: Value = env.app.get("/api/openapi.json").await.json().await.unwrap();

    for path in ["/api/donations/sent", "/api/donations/received"] {
        let names: Vec<&str> = doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{path} has no parameters"))
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for expected in [
            "page",
            "per_page",
            "status",
            "stream_id",
            "from",
            "to",
            "format",
        ] {
            assert!(
                names.contains(&expected),
                "{path} lacks {expected}: {names:?}"
            );
        }
    }
    let public = doc["paths"]["/api/streams/{id}/donations"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect::<Vec<_>>();
    assert!(
        public.contains(&"page") && public.contains(&"id"),
        "{public:?}"
    );
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_stored_status_or_method_this_build_does_not_know_fails_loudly(db: PgPool) {
    use siaran::donations::model::{DonationStatus, PaymentMethod};

    let known: (DonationStatus, PaymentMethod) =
        sqlx::query_as("SELECT 'partially_refunded'::text, 'bank_transfer'::text")
            .fetch_one(&db)
            .await
            .unwrap();
    let status = sqlx::query_scalar::<_, DonationStatus>("SELECT 'on_hold'::text")
        .fetch_one(&db)
        .await;
    let method = sqlx::query_scalar::<_, PaymentMethod>("SELECT 'cash'::text")
        .fetch_one(&db)
        .await;

    assert_eq!(
        known,
        (
            DonationStatus::PartiallyRefunded,
            PaymentMethod::BankTransfer
        )
    );
    let status = status.expect_err("an unknown status is not read as another one");
    assert!(
        status
            .to_string()
            .contains("unknown donation status \"on_hold\""),
        "{status}"
    );
    let method = method.expect_err("an unknown method is not read as another one");
    assert!(
        method
            .to_string()
            .contains("unknown payment method \"cash\""),
        "{method}"
    );
}
