//! Online donations end to end: Siaran ↔ the fake Midtrans over HTTP (Snap, the status
//! endpoint, signed notifications), the job queue on Redis, emails over SMTP, and the live
//! `donation.received` event.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use siaran::payments::midtrans::signature;
use sqlx::PgPool;
use uuid::Uuid;

use crate::donation_support::{
    CLIENT_KEY, NOTIFICATION_PATH, Payments, SERVER_KEY, closed_port, donation_id, order_id,
};
use crate::helpers::problem;

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_settled_payment_completes_the_donation_with_one_alert_and_one_email_each(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;

    let created = env.donate_online(&cast, 50_000).await;
    let id = donation_id(&created);
    assert_eq!(created["donation"]["status"], "pending");
    assert_eq!(created["payment"]["provider"], "midtrans");
    assert_eq!(created["payment"]["client_key"], CLIENT_KEY);
    assert_eq!(
        created["payment"]["snap_js_url"],
        format!("{}/snap/snap.js", env.sandbox.url())
    );
    let token = created["payment"]["snap_token"].as_str().unwrap();
    assert!(
        created["payment"]["redirect_url"]
            .as_str()
            .unwrap()
            .ends_with(token),
        "{created}"
    );
    env.midtrans_action(&order_id(&created), "pay").await;

    env.wait_for_status(&id, "completed").await;
    env.settle().await;
    let events = env.donation_events(cast.stream_id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["donation_id"], id.as_str());
    assert_eq!(events[0]["data"]["amount"], 50_000);
    assert_eq!(events[0]["data"]["message"], "Semangat!");
    assert_eq!(events[0]["data"]["donor_name"], "rina");
    assert_eq!(events[0]["data"]["payment_method"], "midtrans");
    let to_streamer = env.smtp.wait_for("andi@example.com", 1).await;
    let to_donor = env.smtp.wait_for("rina@example.com", 1).await;
    assert_eq!(to_streamer.len(), 1);
    assert_eq!(to_donor.len(), 1);
    assert!(
        to_streamer[0].subject().contains("You received Rp 50.000"),
        "{}",
        to_streamer[0].subject()
    );
    assert!(
        to_donor[0].subject().starts_with("Receipt"),
        "{}",
        to_donor[0].subject()
    );
    for message in [&to_streamer[0], &to_donor[0]] {
        assert!(
            message.data.contains("multipart/alternative"),
            "HTML and text parts"
        );
        assert!(message.data.contains("text/plain") && message.data.contains("text/html"));
    }
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn replayed_and_out_of_order_notifications_change_nothing_twice(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let created = env.donate_online(&cast, 25_000).await;
    let (id, order) = (donation_id(&created), order_id(&created));
    env.midtrans_action(&order, "pay").await;
    env.wait_for_status(&id, "completed").await;
    env.settle().await;

    // The same notification three more times, then stale ones claiming older or worse states.
    let replays = env.notify(&order, &json!({"copies": 3})).await;
    let stale_pending = env
        .notify(&order, &json!({"transaction_status": "pending"}))
        .await;
    let stale_deny = env
        .notify(&order, &json!({"transaction_status": "deny"}))
        .await;
    env.settle().await;

    assert_eq!(replays, vec![Some(200); 3]);
    assert_eq!(stale_pending, vec![Some(200)]);
    assert_eq!(
        stale_deny,
        vec![Some(200)],
        "accepted, then checked against the status endpoint"
    );
    assert_eq!(env.status_of(&id).await, "completed");
    assert_eq!(env.donation_events(cast.stream_id).await.len(), 1);
    assert_eq!(env.smtp.to("andi@example.com").len(), 1);
    assert_eq!(env.smtp.to("rina@example.com").len(), 1);
    let stored: i64 = env
        .count("SELECT count(*) FROM payment_notifications")
        .await;
    assert_eq!(
        stored, 3,
        "every verified notification is kept verbatim, an identical body once"
    );
    let transitions: i64 = env.count("SELECT count(*) FROM donation_transitions").await;
    assert_eq!(transitions, 1);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_denied_payment_fails_the_donation_without_alert_or_email(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let created = env.donate_online(&cast, 10_000).await;

    env.midtrans_action(&order_id(&created), "deny").await;

    env.wait_for_status(&donation_id(&created), "failed").await;
    env.settle().await;
    assert!(env.donation_events(cast.stream_id).await.is_empty());
    assert!(env.smtp.messages().is_empty());
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn an_expired_payment_expires_the_donation(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let created = env.donate_online(&cast, 10_000).await;
    let order = order_id(&created);
    env.midtrans_action(&order, "bank_transfer").await;
    env.wait_for_processed(1).await;
    assert_eq!(
        env.status_of(&donation_id(&created)).await,
        "pending",
        "waiting for the transfer"
    );

    env.midtrans_action(&order, "expire").await;

    env.wait_for_status(&donation_id(&created), "expired").await;
    env.settle().await;
    assert!(env.donation_events(cast.stream_id).await.is_empty());
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_cancelled_payment_fails_the_donation(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let created = env.donate_online(&cast, 10_000).await;
    let order = order_id(&created);
    env.midtrans_action(&order, "bank_transfer").await;
    env.wait_for_processed(1).await;

    env.midtrans_action(&order, "cancel").await;

    env.wait_for_status(&donation_id(&created), "failed").await;
    let reason: String =
        sqlx::query_scalar("SELECT status_reason FROM donations WHERE id = $1::uuid")
            .bind(donation_id(&created))
            .fetch_one(&env.app.db)
            .await
            .unwrap();
    assert_eq!(reason, "Midtrans: cancel");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_card_held_for_fraud_review_completes_only_when_accepted(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let created = env.donate_online(&cast, 75_000).await;
    let (id, order) = (donation_id(&created), order_id(&created));

    env.midtrans_action(&order, "challenge").await;
    env.wait_for_processed(1).await;

    assert_eq!(
        env.status_of(&id).await,
        "pending",
        "capture + challenge is not paid"
    );
    let (provider, fraud): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT provider_status, fraud_status FROM donations WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&env.app.db)
            .await
            .unwrap();
    assert_eq!(
        (provider.as_deref(), fraud.as_deref()),
        (Some("capture"), Some("challenge"))
    );
    assert!(env.donation_events(cast.stream_id).await.is_empty());

    env.midtrans_action(&order, "accept_challenge").await;

    env.wait_for_status(&id, "completed").await;
    env.settle().await;
    assert_eq!(env.donation_events(cast.stream_id).await.len(), 1);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_notification_with_a_forged_signature_is_refused_and_changes_nothing(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let created = env.donate_online(&cast, 10_000).await;
    let order = order_id(&created);

    let forged = env
        .notify(
            &order,
            &json!({"transaction_status": "settlement", "signature_key": "00ff".repeat(32)}),
        )
        .await;
    // Amount edited after signing: the signature no longer matches.
    let signed_for_10k = signature(&order, "200", "10000.00", SERVER_KEY);
    let edited = env
        .app
        .post(
            NOTIFICATION_PATH,
            &json!({"order_id": order, "status_code": "200", "gross_amount": "1.00",
                    "transaction_status": "settlement", "signature_key": signed_for_10k}),
        )
        .await;
    let wrong_key = env
        .app
        .post(
            NOTIFICATION_PATH,
            &json!({"order_id": order, "status_code": "200", "gross_amount": "10000.00",
                    "transaction_status": "settlement",
                    "signature_key": signature(&order, "200", "10000.00", "another-merchant-key")}),
        )
        .await;

    assert_eq!(forged, vec![Some(401)]);
    problem(edited, StatusCode::UNAUTHORIZED, "invalid_signature").await;
    problem(wrong_key, StatusCode::UNAUTHORIZED, "invalid_signature").await;
    let stored: i64 = env
        .count("SELECT count(*) FROM payment_notifications")
        .await;
    assert_eq!(stored, 0);
    assert_eq!(env.status_of(&donation_id(&created)).await, "pending");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_payment_of_a_different_amount_is_flagged_not_completed(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let created = env.donate_online(&cast, 100_000).await;
    let (id, order) = (donation_id(&created), order_id(&created));
    env.tamper_amount(&order, 1_000).await;

    env.midtrans_action(&order, "pay").await;
    env.wait_for_processed(1).await;

    let (status, flagged): (String, bool) =
        sqlx::query_as("SELECT status, amount_mismatch FROM donations WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&env.app.db)
            .await
            .unwrap();
    assert_eq!((status.as_str(), flagged), ("pending", true));
    assert!(env.donation_events(cast.stream_id).await.is_empty());
    assert!(env.smtp.messages().is_empty());
    let seen: Value = env
        .get_json(&format!("/api/donations/{id}"), &cast.streamer)
        .await;
    assert_eq!(seen["donation"]["amount_mismatch"], true);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_notification_for_an_unknown_order_gets_404_so_midtrans_retries(db: PgPool) {
    let env = Payments::spawn(db).await;
    let unknown = Uuid::new_v4().to_string();

    let response = env
        .app
        .post(
            NOTIFICATION_PATH,
            &json!({"order_id": unknown, "status_code": "200", "gross_amount": "10000.00",
                    "transaction_status": "settlement",
                    "signature_key": signature(&unknown, "200", "10000.00", SERVER_KEY)}),
        )
        .await;

    problem(response, StatusCode::NOT_FOUND, "unknown_order").await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn midtrans_retries_a_notification_siaran_could_not_take(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let created = env.donate_online(&cast, 10_000).await;
    let order = order_id(&created);
    // Siaran unreachable for the first delivery: the fake retries on Midtrans' schedule.
    let nowhere = format!("http://127.0.0.1:{}{NOTIFICATION_PATH}", closed_port());
    env.sandbox.set_notification_url(nowhere);
    env.midtrans_action(&order, "pay").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while env.midtrans_order(&order).await["deliveries"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery attempted"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    env.sandbox
        .set_notification_url(env.app.url(NOTIFICATION_PATH));

    env.wait_for_status(&donation_id(&created), "completed")
        .await;
    let deliveries = env.midtrans_order(&order).await["deliveries"].clone();
    let deliveries = deliveries.as_array().unwrap();
    assert_eq!(
        deliveries[0]["response_status"],
        Value::Null,
        "{deliveries:?}"
    );
    assert_eq!(
        deliveries.last().unwrap()["response_status"],
        200,
        "{deliveries:?}"
    );
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn when_midtrans_is_down_the_donor_gets_502_and_the_donation_fails(db: PgPool) {
    let down = format!("http://127.0.0.1:{}", closed_port());
    let env = Payments::spawn_with(db, |c| {
        c.midtrans.snap_url.clone_from(&down);
        c.midtrans.api_url.clone_from(&down);
    })
    .await;
    let cast = env.cast().await;

    let response = env
        .donate(
            &cast.donor,
            cast.stream_id,
            &json!({"amount": 10_000, "payment_method": "midtrans"}),
        )
        .await;

    let body = problem(response, StatusCode::BAD_GATEWAY, "payment_provider_error").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{body}"
    );
    let statuses: Vec<String> = sqlx::query_scalar("SELECT status FROM donations")
        .fetch_all(&env.app.db)
        .await
        .unwrap();
    assert_eq!(
        statuses,
        vec!["failed"],
        "written pending first, then failed"
    );
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn when_midtrans_refuses_the_donor_gets_502_and_the_donation_fails(db: PgPool) {
    let env = Payments::spawn_with(db, |c| {
        c.midtrans.server_key = Some("SB-Mid-server-revoked".to_owned());
    })
    .await;
    let cast = env.cast().await;

    let response = env
        .donate(
            &cast.donor,
            cast.stream_id,
            &json!({"amount": 10_000, "payment_method": "midtrans"}),
        )
        .await;

    problem(response, StatusCode::BAD_GATEWAY, "payment_provider_error").await;
    let status: String = sqlx::query_scalar("SELECT status FROM donations")
        .fetch_one(&env.app.db)
        .await
        .unwrap();
    assert_eq!(status, "failed");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn reconciliation_completes_a_payment_whose_notification_was_lost(db: PgPool) {
    let env = Payments::spawn_with(db, |c| c.donations.reconcile_after_secs = 0).await;
    let cast = env.cast().await;
    let created = env.donate_online(&cast, 20_000).await;
    env.sandbox
        .set_notification_url(format!("http://127.0.0.1:{}/lost", closed_port()));
    env.midtrans_action(&order_id(&created), "pay").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(env.status_of(&donation_id(&created)).await, "pending");

    siaran::donations::jobs::reconcile(&env.app.state.services())
        .await
        .unwrap();

    env.wait_for_status(&donation_id(&created), "completed")
        .await;
    env.settle().await;
    assert_eq!(env.donation_events(cast.stream_id).await.len(), 1);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn reconciliation_expires_an_order_nobody_paid_after_its_expiry(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let created = env.donate_online(&cast, 20_000).await;
    let id = donation_id(&created);
    env.backdate_expiry(&id, "1 minute").await;

    siaran::donations::jobs::reconcile(&env.app.state.services())
        .await
        .unwrap();

    // Midtrans never heard of a payment (no method was chosen) and the time is up.
    env.wait_for_status(&id, "expired").await;
    env.settle().await;
    assert!(
        env.smtp.messages().is_empty(),
        "online payments that expire send no email"
    );
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn the_donor_can_read_back_a_pending_payment(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let created = env.donate_online(&cast, 30_000).await;
    let id = donation_id(&created);

    let mine: Value = env
        .get_json(&format!("/api/donations/{id}"), &cast.donor)
        .await;
    let stranger = env.app.signed_up("eko").await;
    let theirs = env
        .app
        .get_as(&format!("/api/donations/{id}"), &stranger.access_token)
        .await;

    assert_eq!(mine["donation"]["status"], "pending");
    assert_eq!(
        mine["payment"]["snap_token"],
        created["payment"]["snap_token"]
    );
    problem(theirs, StatusCode::NOT_FOUND, "not_found").await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_refund_moves_a_completed_donation_on_and_never_back(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let created = env.donate_online(&cast, 60_000).await;
    let (id, order) = (donation_id(&created), order_id(&created));
    env.midtrans_action(&order, "card").await;
    env.wait_for_status(&id, "completed").await;

    env.midtrans_action(&order, "refund").await;
    env.wait_for_status(&id, "refunded").await;
    env.notify(&order, &json!({"transaction_status": "settlement"}))
        .await;
    env.settle().await;

    assert_eq!(env.status_of(&id).await, "refunded");
    assert_eq!(
        env.donation_events(cast.stream_id).await.len(),
        1,
        "the alert went out once, at completion"
    );
    assert_eq!(
        env.transitions().await,
        vec![
            ("pending".into(), "completed".into()),
            ("completed".into(), "refunded".into())
        ]
    );
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_notification_replayed_hundreds_of_times_costs_a_bounded_number_of_status_calls(
    db: PgPool,
) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let created = env.donate_online(&cast, 35_000).await;
    let (id, order) = (donation_id(&created), order_id(&created));
    env.midtrans_action(&order, "pay").await;
    env.wait_for_status(&id, "completed").await;
    env.settle().await;
    let before = env.midtrans_order(&order).await["status_requests"]
        .as_u64()
        .unwrap();

    // The captured notification 200 times, then edited ones (the status is not signed), each
    // many times over.
    let mut replays = Vec::new();
    for _ in 0..10 {
        replays.extend(env.notify(&order, &json!({"copies": 20})).await);
    }
    let edited = [
        "pending",
        "deny",
        "cancel",
        "expire",
        "failure",
        "refund",
        "capture",
        "authorize",
    ];
    for status in edited {
        env.notify(&order, &json!({"transaction_status": status, "copies": 5}))
            .await;
    }
    env.settle().await;

    assert_eq!(replays, vec![Some(200); 200]);
    let after = env.midtrans_order(&order).await["status_requests"]
        .as_u64()
        .unwrap();
    assert!(
        after - before <= 6,
        "{} status calls for {} notifications",
        after - before,
        200 + 5 * edited.len()
    );
    let stored: i64 = env
        .count("SELECT count(*) FROM payment_notifications")
        .await;
    assert_eq!(stored, 1 + edited.len() as i64, "one row per distinct body");
    assert_eq!(env.status_of(&id).await, "completed");
    assert_eq!(env.donation_events(cast.stream_id).await.len(), 1);
    assert_eq!(env.smtp.to("andi@example.com").len(), 1);
    assert_eq!(env.smtp.to("rina@example.com").len(), 1);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_partial_refund_is_recorded_as_partial(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let created = env.donate_online(&cast, 60_000).await;
    let (id, order) = (donation_id(&created), order_id(&created));
    env.midtrans_action(&order, "card").await;
    env.wait_for_status(&id, "completed").await;

    env.midtrans_action(&order, "partial_refund").await;
    env.wait_for_status(&id, "partially_refunded").await;
    env.settle().await;

    let seen = env
        .get_json(&format!("/api/donations/{id}"), &cast.streamer)
        .await;
    assert_eq!(seen["donation"]["refunded_amount"], 30_000, "{seen}");
    let received = env
        .get_json("/api/donations/received", &cast.streamer)
        .await;
    assert_eq!(received["totals"]["completed_amount"], 30_000, "{received}");
    assert_eq!(received["totals"]["completed_count"], 1);

    env.midtrans_action(&order, "refund").await;
    env.wait_for_status(&id, "refunded").await;
    let seen = env
        .get_json(&format!("/api/donations/{id}"), &cast.streamer)
        .await;
    assert_eq!(seen["donation"]["refunded_amount"], 60_000);
    assert_eq!(
        env.transitions().await,
        vec![
            ("pending".into(), "completed".into()),
            ("completed".into(), "partially_refunded".into()),
            ("partially_refunded".into(), "refunded".into()),
        ]
    );
    assert_eq!(env.donation_events(cast.stream_id).await.len(), 1);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_payment_in_another_currency_is_flagged_not_completed(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let created = env.donate_online(&cast, 50_000).await;
    let (id, order) = (donation_id(&created), order_id(&created));
    let patched = reqwest::Client::new()
        .patch(format!("{}/_sandbox/orders/{order}", env.sandbox.url()))
        .basic_auth(SERVER_KEY, Some(""))
        .json(&json!({"currency": "USD"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::NO_CONTENT);

    env.midtrans_action(&order, "pay").await;
    env.wait_for_processed(1).await;

    let (status, flagged, outcome): (String, bool, String) = sqlx::query_as(
        "SELECT d.status, d.currency_mismatch, n.outcome
           FROM donations d JOIN payment_notifications n ON n.donation_id = d.id
          WHERE d.id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&env.app.db)
    .await
    .unwrap();
    assert_eq!(
        (status.as_str(), flagged, outcome.as_str()),
        ("pending", true, "currency_mismatch")
    );
    assert!(env.donation_events(cast.stream_id).await.is_empty());
    assert!(env.smtp.messages().is_empty());
}
