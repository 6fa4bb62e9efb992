//! The OBS overlay: its token (created once, shown once, masked afterwards) and its socket,
//! which shows the streamer's donations whichever stream is live.

use reqwest::StatusCode;
use serde_json::Value;
use siaran::live::events::{DonationReceived, EventData, StreamEnded, StreamLive};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{TestApp, problem};
use crate::ws::{Ending, Ws, create_stream, quick_user, set_live};

fn donation(amount: i64) -> EventData {
    EventData::DonationReceived(DonationReceived {
        donation_id: Uuid::new_v4(),
        amount,
        currency: "IDR".into(),
        message: "Buat beli kopi".into(),
        donor_name: "Anonymous".into(),
        payment_method: siaran::payments::PaymentMethod::BankTransfer,
    })
}

/// Announces that a stream went live, as the media bridge does.
async fn went_live(app: &TestApp, stream_id: Uuid) {
    app.state
        .events
        .publish(
            stream_id,
            EventData::StreamLive(StreamLive {
                stream_id,
                started_at: chrono::Utc::now(),
            }),
        )
        .await
        .expect("announcing stream.live");
}

async fn token_of(app: &TestApp, bearer: &str) -> String {
    new_token(app, bearer).await["token"]
        .as_str()
        .expect("a token")
        .to_owned()
}

async fn new_token(app: &TestApp, bearer: &str) -> Value {
    let response = app
        .post_as("/api/users/me/overlay-token", bearer, &Value::Null)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .expect("Cache-Control"),
        "no-store"
    );
    response.json().await.expect("token JSON")
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_streamer_gets_an_overlay_token_once_and_a_masked_view_after(db: PgPool) {
    let app = TestApp::spawn_with(db, |c| c.public_url = "https://live.example.com/".into()).await;
    let (streamer, bearer) = quick_user(&app.db, "andi").await;
    create_stream(&app.db, streamer, false).await;

    let before: Value = app
        .get_as("/api/users/me/overlay", &bearer)
        .await
        .json()
        .await
        .unwrap();
    let created = new_token(&app, &bearer).await;
    let after: Value = app
        .get_as("/api/users/me/overlay", &bearer)
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(before["exists"], false);
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("sov_") && token.len() > 40);
    assert_eq!(
        created["overlay_url"],
        format!("https://live.example.com/overlay/{token}")
    );
    assert_eq!(created["socket_path"], format!("/ws/overlay/{token}"));
    assert_eq!(after["exists"], true);
    let masked = after["masked_token"].as_str().unwrap();
    assert!(masked.ends_with(&token[token.len() - 4..]));
    assert!(
        !after.to_string().contains(&token[4..20]),
        "the token is never shown again"
    );
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT token_hash FROM overlay_tokens WHERE user_id = $1")
            .bind(streamer)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_ne!(stored, token.as_bytes(), "only a hash is stored");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn viewers_cannot_have_an_overlay(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (_, bearer) = quick_user(&app.db, "rina").await;

    let response = app
        .post_as("/api/users/me/overlay-token", &bearer, &Value::Null)
        .await;
    let anonymous = app.get("/api/users/me/overlay").await;

    problem(response, StatusCode::FORBIDDEN, "not_a_streamer").await;
    problem(anonymous, StatusCode::UNAUTHORIZED, "not_authenticated").await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn the_overlay_shows_donations_of_the_live_stream_only(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (streamer, bearer) = quick_user(&app.db, "andi").await;
    let (other, _) = quick_user(&app.db, "sari").await;
    let stream_id = create_stream(&app.db, streamer, true).await;
    let others_stream = create_stream(&app.db, other, true).await;
    let token = new_token(&app, &bearer).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut overlay = Ws::connect(app.addr, &format!("/ws/overlay/{token}")).await;
    let ready = overlay.next_json().await;

    let (_, rina) = quick_user(&app.db, "rina").await;
    app.post_as(
        &format!("/api/streams/{stream_id}/comments"),
        &rina,
        &serde_json::json!({"content": "not for the overlay"}),
    )
    .await;
    app.state
        .events
        .publish(others_stream, donation(99_000))
        .await
        .unwrap();
    app.state
        .events
        .publish(stream_id, donation(50_000))
        .await
        .unwrap();
    let alert = overlay.next_not_count().await;

    assert_eq!(ready["type"], "overlay.ready");
    assert_eq!(ready["data"]["streamer"]["username"], "andi");
    assert_eq!(ready["data"]["stream_id"], stream_id.to_string());
    assert_eq!(alert["type"], "donation.received");
    assert_eq!(alert["stream_id"], stream_id.to_string());
    assert_eq!(alert["data"]["amount"], 50_000);
    overlay
        .assert_quiet(std::time::Duration::from_millis(300))
        .await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn the_overlay_follows_the_streamer_to_the_next_stream(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (streamer, bearer) = quick_user(&app.db, "andi").await;
    let first = create_stream(&app.db, streamer, true).await;
    let token = new_token(&app, &bearer).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut overlay = Ws::connect(app.addr, &format!("/ws/overlay/{token}")).await;
    overlay.next_json().await;
    app.state
        .events
        .publish(first, donation(10_000))
        .await
        .unwrap();
    let on_first = overlay.next_not_count().await;

    set_live(&app.db, first, false).await;
    app.state
        .events
        .publish(
            first,
            EventData::StreamEnded(StreamEnded {
                stream_id: first,
                ended_at: chrono::Utc::now(),
            }),
        )
        .await
        .unwrap();
    let second = create_stream(&app.db, streamer, true).await;
    went_live(&app, second).await;
    // Donated before the overlay has found the new stream: still shown, from the log.
    app.state
        .events
        .publish(second, donation(20_000))
        .await
        .unwrap();
    let on_second = overlay.next_not_count().await;

    assert_eq!(on_first["stream_id"], first.to_string());
    assert_eq!(on_second["stream_id"], second.to_string());
    assert_eq!(on_second["data"]["amount"], 20_000);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_reconnecting_overlay_gets_the_donations_it_missed(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (streamer, bearer) = quick_user(&app.db, "andi").await;
    let stream_id = create_stream(&app.db, streamer, true).await;
    let token = new_token(&app, &bearer).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let seen = app
        .state
        .events
        .publish(stream_id, donation(1_000))
        .await
        .unwrap();
    app.state
        .events
        .publish(stream_id, donation(2_000))
        .await
        .unwrap();
    app.state
        .events
        .publish(stream_id, EventData::StreamHealth(Default::default()))
        .await
        .unwrap();
    app.state
        .events
        .publish(stream_id, donation(3_000))
        .await
        .unwrap();

    let mut overlay = Ws::connect(
        app.addr,
        &format!(
            "/ws/overlay/{token}?stream_id={stream_id}&last_event_id={}",
            seen.id
        ),
    )
    .await;
    overlay.next_json().await;
    let missed = [
        overlay.next_not_count().await,
        overlay.next_not_count().await,
    ];

    assert_eq!(missed[0]["data"]["amount"], 2_000);
    assert_eq!(missed[1]["data"]["amount"], 3_000);
    assert!(missed[0]["id"].as_u64() < missed[1]["id"].as_u64());
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn unknown_and_replaced_tokens_are_refused(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (streamer, bearer) = quick_user(&app.db, "andi").await;
    create_stream(&app.db, streamer, true).await;
    let old = new_token(&app, &bearer).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut connected = Ws::connect(app.addr, &format!("/ws/overlay/{old}")).await;
    connected.next_json().await;

    let mut unknown = Ws::connect(app.addr, "/ws/overlay/sov_not-a-real-token").await;
    let (unknown_seen, unknown_ending) = unknown.until_end().await;
    let new = new_token(&app, &bearer).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (rotated_seen, rotated_ending) = connected.until_end().await;
    let mut stale = Ws::connect(app.addr, &format!("/ws/overlay/{old}")).await;
    let (stale_seen, _) = stale.until_end().await;
    let mut fresh = Ws::connect(app.addr, &format!("/ws/overlay/{new}")).await;

    for seen in [&unknown_seen, &rotated_seen, &stale_seen] {
        let last = seen.last().expect("an error before closing");
        assert_eq!(last["type"], "error");
        assert_eq!(last["data"]["code"], "invalid_overlay_token");
    }
    assert_eq!(unknown_ending, Ending::Closed(1008));
    assert_eq!(rotated_ending, Ending::Closed(1008));
    assert_eq!(fresh.next_json().await["type"], "overlay.ready");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn an_overlay_opened_before_the_stream_goes_live_shows_its_donations(db: PgPool) {
    // The overlay learns of the stream from the pushed notice: nothing polls any more, so
    // without the notice this socket would wait forever.
    let app = TestApp::spawn(db).await;
    let (streamer, bearer) = quick_user(&app.db, "andi").await;
    let stream_id = create_stream(&app.db, streamer, false).await;
    let token = token_of(&app, &bearer).await;
    let mut overlay = Ws::connect(app.addr, &format!("/ws/overlay/{token}")).await;
    let ready = overlay.next_json().await;

    set_live(&app.db, stream_id, true).await;
    went_live(&app, stream_id).await;
    app.state
        .events
        .publish(stream_id, donation(25_000))
        .await
        .unwrap();
    let alert = overlay.next_not_count().await;

    assert_eq!(ready["type"], "overlay.ready");
    assert_eq!(ready["data"]["stream_id"], Value::Null);
    assert_eq!(alert["type"], "donation.received");
    assert_eq!(alert["stream_id"], stream_id.to_string());
    assert_eq!(alert["data"]["amount"], 25_000);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_token_with_as_many_overlays_as_allowed_refuses_the_next(db: PgPool) {
    let app = TestApp::spawn_with(db, |c| c.live.overlay_max_per_token = 2).await;
    let (streamer, bearer) = quick_user(&app.db, "andi").await;
    create_stream(&app.db, streamer, false).await;
    let token = token_of(&app, &bearer).await;
    let path = format!("/ws/overlay/{token}");
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut overlay = Ws::connect(app.addr, &path).await;
        overlay.next_json().await;
        open.push(overlay);
    }

    let refused = Ws::try_connect(app.addr, &path).await;
    let third_after_one_closed = {
        drop(open.pop());
        // The closed socket's slot is given back when the server notices the close.
        let mut tries = 0;
        loop {
            match Ws::try_connect(app.addr, &path).await {
                Ok(ws) => break ws,
                Err(_) if tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => panic!("the freed slot was never given back: {e}"),
            }
        }
    };

    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
            assert!(body.contains("too_many_overlays"), "{body}");
        }
        Err(e) => panic!("refused with something other than 429: {e}"),
        Ok(_) => panic!("a third overlay on a token capped at two was accepted"),
    }
    drop(third_after_one_closed);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn deactivating_a_streamer_closes_their_overlays(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (streamer, bearer) = quick_user(&app.db, "andi").await;
    create_stream(&app.db, streamer, true).await;
    let token = token_of(&app, &bearer).await;
    let mut overlay = Ws::connect(app.addr, &format!("/ws/overlay/{token}")).await;
    overlay.next_json().await;
    let (staff, staff_bearer) = quick_user(&app.db, "admin").await;
    app.make_staff(staff).await;

    let response = app
        .post_as(
            &format!("/api/admin/users/{streamer}/deactivate"),
            &staff_bearer,
            &serde_json::json!({}),
        )
        .await;
    let (seen, ending) = overlay.until_end().await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        seen.last().expect("an error before closing")["data"]["code"],
        "invalid_overlay_token"
    );
    assert_eq!(ending, Ending::Closed(1008));
}

#[test]
fn overlay_tokens_are_masked_in_logged_paths() {
    use siaran::live::overlay::loggable_path;
    assert_eq!(loggable_path("/ws/overlay/sov_secret"), "/ws/overlay/…");
    assert_eq!(loggable_path("/overlay/sov_secret"), "/overlay/…");
    assert_eq!(loggable_path("/api/users/me"), "/api/users/me");
}
