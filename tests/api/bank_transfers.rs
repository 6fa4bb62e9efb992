//! Bank transfers: instructions for the donor, and the streamer confirming or rejecting.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::donation_support::{Payments, donation_id};
use crate::helpers::problem;

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_bank_transfer_comes_with_instructions_and_a_unique_reference(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;

    let first = env.donate_by_transfer(&cast, 150_000).await;
    let second = env.donate_by_transfer(&cast, 150_000).await;

    let payment = &first["payment"];
    assert_eq!(payment["provider"], "bank_transfer");
    assert_eq!(payment["bank_name"], "BCA");
    assert_eq!(payment["account_number"], "1234567890");
    assert_eq!(payment["account_holder"], "Andi Wijaya");
    assert_eq!(payment["amount"], 150_000);
    let code = payment["reference_code"].as_str().unwrap();
    assert!(code.starts_with("SRN-") && code.len() == 10, "{code}");
    assert_ne!(code, second["payment"]["reference_code"].as_str().unwrap());
    assert_eq!(first["donation"]["reference_code"], code);
    let expires: chrono::DateTime<chrono::Utc> =
        payment["expires_at"].as_str().unwrap().parse().unwrap();
    let hours = (expires - chrono::Utc::now()).num_minutes() as f64 / 60.0;
    assert!((47.9..=48.0).contains(&hours), "{hours} h");
    assert_eq!(first["donation"]["status"], "pending");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_bank_transfer_needs_the_streamers_account(db: PgPool) {
    let env = Payments::spawn(db).await;
    let streamer = env.app.signed_up("sari").await;
    let donor = env.app.signed_up("dewi").await;
    let stream_id = env.live_stream(&streamer).await;

    let response = env
        .donate(
            &donor,
            stream_id,
            &json!({"amount": 20_000, "payment_method": "bank_transfer"}),
        )
        .await;

    problem(response, StatusCode::CONFLICT, "payout_details_missing").await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn confirming_completes_once_however_often_it_is_clicked(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let id = donation_id(&env.donate_by_transfer(&cast, 40_000).await);
    let path = format!("/api/donations/{id}/confirm");

    let first = env
        .app
        .post_as(&path, &cast.streamer.access_token, &json!({}))
        .await;
    let second = env
        .app
        .post_as(&path, &cast.streamer.access_token, &json!({}))
        .await;

    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["status"], "completed");
    env.settle().await;
    let events = env.donation_events(cast.stream_id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["data"]["payment_method"], "bank_transfer");
    assert_eq!(events[0]["data"]["amount"], 40_000);
    assert_eq!(env.smtp.wait_for("andi@example.com", 1).await.len(), 1);
    assert_eq!(env.smtp.wait_for("rina@example.com", 1).await.len(), 1);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn two_concurrent_confirmations_complete_it_once(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let id = donation_id(&env.donate_by_transfer(&cast, 40_000).await);
    let path = format!("/api/donations/{id}/confirm");

    let empty = json!({});
    let (a, b) = tokio::join!(
        env.app.post_as(&path, &cast.streamer.access_token, &empty),
        env.app.post_as(&path, &cast.streamer.access_token, &empty),
    );

    assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::OK));
    env.settle().await;
    let transitions: i64 = env.count("SELECT count(*) FROM donation_transitions").await;
    assert_eq!(transitions, 1);
    assert_eq!(env.donation_events(cast.stream_id).await.len(), 1);
    assert_eq!(env.smtp.wait_for("andi@example.com", 1).await.len(), 1);
    assert_eq!(env.smtp.to("rina@example.com").len(), 1);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn only_the_streamer_of_the_stream_may_confirm(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let id = donation_id(&env.donate_by_transfer(&cast, 40_000).await);
    let other_streamer = env.app.signed_up("budi").await;
    env.app.make_staff(other_streamer.id).await;

    let by_donor = env.confirm(&cast.donor, &id).await;
    let by_other = env.decide(&other_streamer, &id, "reject", &json!({})).await;
    let anonymous = env
        .app
        .post(&format!("/api/donations/{id}/confirm"), &json!({}))
        .await;
    let unknown = env
        .app
        .post_as(
            &format!("/api/donations/{}/confirm", uuid::Uuid::new_v4()),
            &cast.streamer.access_token,
            &json!({}),
        )
        .await;

    problem(by_donor, StatusCode::FORBIDDEN, "forbidden").await;
    problem(by_other, StatusCode::FORBIDDEN, "forbidden").await;
    problem(anonymous, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    problem(unknown, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(env.status_of(&id).await, "pending");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn confirming_an_expired_transfer_is_refused_and_the_donor_is_told(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let id = donation_id(&env.donate_by_transfer(&cast, 40_000).await);
    env.backdate_expiry(&id, "1 second").await;

    let response = env.confirm(&cast.streamer, &id).await;

    problem(response, StatusCode::CONFLICT, "donation_expired").await;
    assert_eq!(env.status_of(&id).await, "expired");
    let emails = env.smtp.wait_for("rina@example.com", 1).await;
    assert_eq!(emails.len(), 1);
    assert!(
        emails[0].subject().contains("expired"),
        "{}",
        emails[0].subject()
    );
    env.settle().await;
    assert!(env.donation_events(cast.stream_id).await.is_empty());
    assert!(env.smtp.to("andi@example.com").is_empty());
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn rejecting_tells_the_donor_why_and_is_final(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let id = donation_id(&env.donate_by_transfer(&cast, 40_000).await);

    let rejected = env
        .decide(
            &cast.streamer,
            &id,
            "reject",
            &json!({"reason": "Tidak ada transfer masuk"}),
        )
        .await;
    let confirm_after = env.confirm(&cast.streamer, &id).await;

    assert_eq!(rejected.status(), StatusCode::OK);
    let body: Value = rejected.json().await.unwrap();
    assert_eq!(body["status"], "rejected");
    assert_eq!(body["status_reason"], "Tidak ada transfer masuk");
    problem(confirm_after, StatusCode::CONFLICT, "donation_not_pending").await;
    let emails = env.smtp.wait_for("rina@example.com", 1).await;
    assert_eq!(emails.len(), 1);
    assert!(emails[0].data.contains("Tidak ada transfer masuk"));
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn online_donations_cannot_be_confirmed_by_hand(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let id = donation_id(&env.donate_online(&cast, 10_000).await);

    let response = env.confirm(&cast.streamer, &id).await;

    problem(response, StatusCode::CONFLICT, "not_bank_transfer").await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn reconciliation_expires_overdue_transfers_and_emails_the_donor(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let overdue = donation_id(&env.donate_by_transfer(&cast, 40_000).await);
    let fresh = donation_id(&env.donate_by_transfer(&cast, 50_000).await);
    env.backdate_expiry(&overdue, "1 hour").await;

    siaran::donations::jobs::reconcile(&env.app.state.services())
        .await
        .unwrap();

    assert_eq!(env.status_of(&overdue).await, "expired");
    assert_eq!(env.status_of(&fresh).await, "pending");
    assert_eq!(env.smtp.wait_for("rina@example.com", 1).await.len(), 1);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_transfer_that_arrived_late_is_recorded_with_its_own_transition(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let id = donation_id(&env.donate_by_transfer(&cast, 40_000).await);
    env.backdate_expiry(&id, "1 hour").await;

    let plain = env.confirm(&cast.streamer, &id).await;
    let late = env
        .decide(&cast.streamer, &id, "confirm", &json!({"late": true}))
        .await;
    let again = env
        .decide(&cast.streamer, &id, "confirm", &json!({"late": true}))
        .await;

    problem(plain, StatusCode::CONFLICT, "donation_expired").await;
    assert_eq!(late.status(), StatusCode::OK);
    assert_eq!(again.status(), StatusCode::OK, "idempotent");
    assert_eq!(env.status_of(&id).await, "completed");
    let history: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT from_status, to_status, source FROM donation_transitions ORDER BY id",
    )
    .fetch_all(&env.app.db)
    .await
    .unwrap();
    assert_eq!(
        history,
        vec![
            ("pending".into(), "expired".into(), "expiry".into()),
            ("expired".into(), "completed".into(), "streamer".into()),
        ]
    );
    env.settle().await;
    assert_eq!(env.donation_events(cast.stream_id).await.len(), 1);
    assert_eq!(env.smtp.wait_for("andi@example.com", 1).await.len(), 1);
    let to_donor = env.smtp.wait_for("rina@example.com", 2).await;
    let subjects: Vec<String> = to_donor.iter().map(|m| m.subject()).collect();
    assert_eq!(to_donor.len(), 2, "expired, then the receipt: {subjects:?}");
    assert!(
        subjects.iter().any(|s| s.starts_with("Receipt")),
        "{subjects:?}"
    );
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn only_bank_transfers_can_be_confirmed_late(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let created = env.donate_online(&cast, 40_000).await;
    let id = donation_id(&created);
    sqlx::query("UPDATE donations SET status = 'expired' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&env.app.db)
        .await
        .unwrap();

    let late = env
        .decide(&cast.streamer, &id, "confirm", &json!({"late": true}))
        .await;

    problem(late, StatusCode::CONFLICT, "not_bank_transfer").await;
    assert_eq!(env.status_of(&id).await, "expired");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn instructions_keep_the_account_the_donor_was_given(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let id = donation_id(&env.donate_by_transfer(&cast, 75_000).await);

    let changed = env
        .app
        .patch_as(
            "/api/users/me/payout",
            &cast.streamer.access_token,
            &json!({"bank_name": "Mandiri", "account_number": "9999999999", "account_holder": "Andi W"}),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let read_back = env
        .get_json(&format!("/api/donations/{id}"), &cast.donor)
        .await;
    let later = env.donate_by_transfer(&cast, 75_000).await;

    let payment = &read_back["payment"];
    assert_eq!(payment["bank_name"], "BCA", "{read_back}");
    assert_eq!(payment["account_number"], "1234567890");
    assert_eq!(payment["account_holder"], "Andi Wijaya");
    assert_eq!(later["payment"]["account_number"], "9999999999");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn strangers_cannot_tell_a_donation_exists_by_deciding_it(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let id = donation_id(&env.donate_by_transfer(&cast, 30_000).await);
    let stranger = env.app.signed_up("siti").await;

    for decision in ["confirm", "reject"] {
        let theirs = env.decide(&stranger, &id, decision, &json!({})).await;
        let missing = env
            .decide(
                &stranger,
                &uuid::Uuid::new_v4().to_string(),
                decision,
                &json!({}),
            )
            .await;
        let donors = env.decide(&cast.donor, &id, decision, &json!({})).await;
        let a = problem(theirs, StatusCode::NOT_FOUND, "not_found").await;
        let b = problem(missing, StatusCode::NOT_FOUND, "not_found").await;
        assert_eq!(
            a["detail"], b["detail"],
            "the same answer as for no donation"
        );
        problem(donors, StatusCode::FORBIDDEN, "forbidden").await;
    }
    assert_eq!(env.status_of(&id).await, "pending");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn deactivating_a_streamer_ends_their_stream_and_their_donations(db: PgPool) {
    let env = Payments::spawn(db).await;
    let cast = env.cast().await;
    let pending = donation_id(&env.donate_by_transfer(&cast, 20_000).await);
    let admin = env.app.signed_up("admin").await;
    env.app.make_staff(admin.id).await;

    let response = env
        .app
        .post_as(
            &format!("/api/admin/users/{}/deactivate", cast.streamer.id),
            &admin.access_token,
            &json!({}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    let stream: Value = env
        .app
        .get(&format!("/api/streams/{}", cast.stream_id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stream["is_live"], false, "{stream}");
    assert_eq!(env.status_of(&pending).await, "expired");
    let told = env.smtp.wait_for("rina@example.com", 1).await;
    assert!(
        told[0].subject().contains("expired"),
        "{}",
        told[0].subject()
    );
    let refused = env
        .donate(
            &cast.donor,
            cast.stream_id,
            &json!({"amount": 10_000, "payment_method": "bank_transfer"}),
        )
        .await;
    let body = problem(
        refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(
        crate::helpers::field_errors(&body).contains(&("stream".to_owned(), "not_live".to_owned())),
        "{body}"
    );
    // Even a stream row left live (another process had not ended it yet) takes no donations.
    sqlx::query("UPDATE streams SET is_active = true, ended_at = NULL WHERE id = $1")
        .bind(cast.stream_id)
        .execute(&env.app.db)
        .await
        .unwrap();
    let still_refused = env
        .donate(
            &cast.donor,
            cast.stream_id,
            &json!({"amount": 10_000, "payment_method": "bank_transfer"}),
        )
        .await;
    problem(
        still_refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
}
