//! The stream socket `/ws/stream/{id}/` on one server: what viewers receive, what they may send,
//! and how the server treats broken, slow, silent and resuming clients.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use serde_json::{Value, json};
use siaran::auth::jwt::JwtKeys;
use siaran::live::events::{DonationReceived, EventData, StreamError, StreamHealth};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::helpers::{TEST_JWT_SECRET, TestApp, problem};
use crate::ws::{Ending, Ws, create_stream, kinds, quick_user, set_live};

fn path(stream_id: Uuid) -> String {
    format!("/ws/stream/{stream_id}/")
}

fn donation(amount: i64) -> EventData {
    EventData::DonationReceived(DonationReceived {
        donation_id: Uuid::new_v4(),
        amount,
        currency: "IDR".into(),
        message: "Semangat!".into(),
        donor_name: "Rina".into(),
        payment_method: siaran::payments::PaymentMethod::Midtrans,
    })
}

/// An app whose viewer counts stay out of the way of tests that count messages.
async fn quiet_app(db: PgPool) -> TestApp {
    TestApp::spawn_with(db, |c| c.live.viewers_interval_secs = 3600).await
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn anyone_can_watch_and_sees_comments_posted_over_rest(db: PgPool) {
    let app = quiet_app(db).await;
    let streamer = app.signed_up("andi").await;
    let stream_id = create_stream(&app.db, streamer.id, true).await;
    let viewer = app.signed_up("rina").await;
    let mut socket = Ws::connect(app.addr, &path(stream_id)).await;

    let ready = socket.next_json().await;
    let response = app
        .post_as(
            &format!("/api/streams/{stream_id}/comments"),
            &viewer.access_token,
            &json!({"content": "  Halo semua!  "}),
        )
        .await;

    assert_eq!(ready["type"], "ready");
    assert_eq!(ready["data"]["user"], Value::Null);
    assert_eq!(ready["data"]["stream_id"], stream_id.to_string());
    assert_eq!(response.status(), StatusCode::CREATED);
    let posted: Value = response.json().await.unwrap();
    let event = socket.next_json().await;
    assert_eq!(event["type"], "comment.created");
    assert_eq!(event["id"], 1);
    assert_eq!(event["stream_id"], stream_id.to_string());
    assert!(event["ts"].is_string());
    assert_eq!(event["data"]["id"], posted["id"]);
    assert_eq!(event["data"]["content"], "Halo semua!");
    assert_eq!(event["data"]["author"]["id"], viewer.id.to_string());
    assert_eq!(event["data"]["author"]["username"], "rina");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_socket_with_a_token_comments_and_everyone_sees_its_author(db: PgPool) {
    let app = quiet_app(db).await;
    let (streamer, _) = quick_user(&app.db, "andi").await;
    let stream_id = create_stream(&app.db, streamer, true).await;
    let (rina, token) = quick_user(&app.db, "rina").await;
    let mut author = Ws::connect(app.addr, &format!("{}?token={token}", path(stream_id))).await;
    let mut watcher = Ws::connect(app.addr, &path(stream_id)).await;
    let ready = author.next_json().await;
    watcher.next_json().await;

    author
        .send_json(&json!({"type": "comment.create", "content": "dari socket"}))
        .await;

    assert_eq!(ready["data"]["user"]["username"], "rina");
    for socket in [&mut author, &mut watcher] {
        let event = socket.next_json().await;
        assert_eq!(event["type"], "comment.created");
        assert_eq!(event["data"]["content"], "dari socket");
        assert_eq!(event["data"]["author"]["id"], rina.to_string());
    }
    let listed: Value = app
        .get(&format!("/api/streams/{stream_id}/comments"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["content"], "dari socket");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn an_auth_message_identifies_the_socket(db: PgPool) {
    let app = quiet_app(db).await;
    let (streamer, _) = quick_user(&app.db, "andi").await;
    let stream_id = create_stream(&app.db, streamer, true).await;
    let (_, token) = quick_user(&app.db, "dewi").await;
    let mut socket = Ws::connect(app.addr, &path(stream_id)).await;
    socket.next_json().await;

    socket
        .send_json(&json!({"type": "auth", "token": token}))
        .await;
    let answer = socket.next_json().await;
    socket
        .send_json(&json!({"type": "comment.create", "content": "sudah login"}))
        .await;

    assert_eq!(answer["type"], "authenticated");
    assert_eq!(answer["data"]["user"]["username"], "dewi");
    let event = socket.next_json().await;
    assert_eq!(event["type"], "comment.created");
    assert_eq!(event["data"]["author"]["username"], "dewi");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn bad_tokens_get_an_error_and_a_read_only_socket(db: PgPool) {
    let app = quiet_app(db).await;
    let (streamer, _) = quick_user(&app.db, "andi").await;
    let stream_id = create_stream(&app.db, streamer, true).await;
    let (eko, good_token) = quick_user(&app.db, "eko").await;
    let keys = JwtKeys::new(TEST_JWT_SECRET.as_bytes());
    let expired = keys.issue_at(
        eko,
        SystemTime::now() - Duration::from_secs(3600),
        Duration::from_secs(60),
    );
    let mut garbage = Ws::connect(app.addr, &format!("{}?token=garbage", path(stream_id))).await;
    let mut stale = Ws::connect(app.addr, &format!("{}?token={expired}", path(stream_id))).await;

    let garbage_error = garbage.next_json().await;
    let garbage_ready = garbage.next_json().await;
    let stale_error = stale.next_json().await;
    stale.next_json().await;
    garbage
        .send_json(&json!({"type": "comment.create", "content": "spoof", "ref": "c1"}))
        .await;
    let refused = garbage.next_json().await;
    // A good socket that switches to a bad token loses its identity too.
    let mut switcher =
        Ws::connect(app.addr, &format!("{}?token={good_token}", path(stream_id))).await;
    switcher.next_json().await;
    switcher
        .send_json(&json!({"type": "auth", "token": "nope"}))
        .await;
    let switch_error = switcher.next_json().await;
    switcher
        .send_json(&json!({"type": "comment.create", "content": "as eko?"}))
        .await;
    let switch_refused = switcher.next_json().await;
    app.state
        .events
        .publish(stream_id, donation(10_000))
        .await
        .unwrap();

    assert_eq!(
        (
            garbage_error["type"].as_str(),
            garbage_error["data"]["code"].as_str()
        ),
        (Some("error"), Some("invalid_token"))
    );
    assert_eq!(garbage_ready["data"]["user"], Value::Null);
    assert_eq!(stale_error["data"]["code"], "token_expired");
    assert_eq!(refused["data"]["code"], "not_authenticated");
    assert_eq!(refused["data"]["ref"], "c1");
    assert_eq!(switch_error["data"]["code"], "invalid_token");
    assert_eq!(switch_refused["data"]["code"], "not_authenticated");
    let comments: i64 = sqlx::query_scalar("SELECT count(*) FROM comments")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(comments, 0, "no comment was stored for a bad token");
    // Read-only sockets still receive the stream's events.
    for socket in [&mut garbage, &mut stale, &mut switcher] {
        assert_eq!(socket.next_json().await["type"], "donation.received");
    }
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn mistakes_get_errors_with_codes_and_the_socket_stays_open(db: PgPool) {
    let app = quiet_app(db).await;
    let (streamer, _) = quick_user(&app.db, "andi").await;
    let stream_id = create_stream(&app.db, streamer, true).await;
    let mut clumsy = Ws::connect(app.addr, &path(stream_id)).await;
    let mut bystander = Ws::connect(app.addr, &path(stream_id)).await;
    clumsy.next_json().await;
    bystander.next_json().await;

    let mut codes = Vec::new();
    for text in [
        "{not json".to_owned(),
        json!({"type": "dance", "ref": "r7"}).to_string(),
        json!({"content": "no type"}).to_string(),
        json!({"type": "comment.create"}).to_string(),
        json!({"type": "auth", "token": 42}).to_string(),
        json!({"type": "ping", "padding": "x".repeat(10_000)}).to_string(),
    ] {
        clumsy.send_text(&text).await;
        let error = clumsy.next_json().await;
        assert_eq!(error["type"], "error", "{error}");
        assert!(error["data"]["message"].is_string(), "{error}");
        codes.push((
            error["data"]["code"].as_str().unwrap().to_owned(),
            error["data"]["ref"].as_str().map(str::to_owned),
        ));
    }
    clumsy.send_binary(vec![1, 2, 3]).await;
    let binary = clumsy.next_json().await;
    clumsy
        .send_json(&json!({"type": "ping", "ref": "still-there"}))
        .await;
    let pong = clumsy.next_json().await;
    app.state
        .events
        .publish(stream_id, donation(5_000))
        .await
        .unwrap();

    assert_eq!(
        codes,
        [
            ("invalid_json".to_owned(), None),
            ("unknown_type".to_owned(), Some("r7".to_owned())),
            ("invalid_message".to_owned(), None),
            ("invalid_message".to_owned(), None),
            ("invalid_message".to_owned(), None),
            ("message_too_large".to_owned(), None),
        ]
    );
    assert_eq!(binary["data"]["code"], "unsupported_frame");
    assert_eq!(pong["type"], "pong");
    assert_eq!(pong["data"]["ref"], "still-there");
    assert_eq!(clumsy.next_json().await["type"], "donation.received");
    assert_eq!(bystander.next_json().await["type"], "donation.received");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn an_oversized_frame_closes_only_that_socket(db: PgPool) {
    let app = quiet_app(db).await;
    let (streamer, _) = quick_user(&app.db, "andi").await;
    let stream_id = create_stream(&app.db, streamer, true).await;
    let mut big = Ws::connect(app.addr, &path(stream_id)).await;
    let mut bystander = Ws::connect(app.addr, &path(stream_id)).await;
    big.next_json().await;
    bystander.next_json().await;

    big.send_text(&"x".repeat(200_000)).await;
    let (_, ending) = big.until_end().await;
    app.state
        .events
        .publish(stream_id, donation(5_000))
        .await
        .unwrap();

    assert_eq!(ending, Ending::Closed(1009));
    assert_eq!(bystander.next_json().await["type"], "donation.received");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_resuming_socket_gets_exactly_the_missed_events_in_order(db: PgPool) {
    let app = quiet_app(db).await;
    let (streamer, _) = quick_user(&app.db, "andi").await;
    let stream_id = create_stream(&app.db, streamer, true).await;
    let (_, token) = quick_user(&app.db, "rina").await;
    let comments = format!("/api/streams/{stream_id}/comments");
    let mut socket = Ws::connect(app.addr, &path(stream_id)).await;
    socket.next_json().await;
    for n in 1..=3 {
        app.post_as(
            &comments,
            &token,
            &json!({"content": format!("before {n}")}),
        )
        .await;
    }
    let mut last_seen = 0;
    for _ in 1..=3 {
        last_seen = socket.next_json().await["id"].as_u64().unwrap();
    }
    drop(socket);

    app.post_as(&comments, &token, &json!({"content": "while away"}))
        .await;
    app.state
        .events
        .publish(stream_id, donation(25_000))
        .await
        .unwrap();
    app.state
        .events
        .publish(stream_id, EventData::StreamHealth(StreamHealth::default()))
        .await
        .unwrap();
    let mut resumed = Ws::connect(
        app.addr,
        &format!("{}?last_event_id={last_seen}", path(stream_id)),
    )
    .await;
    let ready = resumed.next_json().await;
    let missed = [
        resumed.next_json().await,
        resumed.next_json().await,
        resumed.next_json().await,
    ];
    app.post_as(&comments, &token, &json!({"content": "after"}))
        .await;
    let live = resumed.next_json().await;

    assert_eq!(last_seen, 3);
    assert_eq!(ready["type"], "ready");
    assert_eq!(ready["id"], 3);
    assert_eq!(
        kinds(&missed),
        ["comment.created", "donation.received", "stream.health"]
    );
    assert_eq!(missed[0]["data"]["content"], "while away");
    assert_eq!(
        missed
            .iter()
            .map(|m| m["id"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [4, 5, 6]
    );
    assert_eq!(live["id"], 7);
    assert_eq!(live["data"]["content"], "after");
    resumed.assert_quiet(Duration::from_millis(300)).await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_resume_point_beyond_the_stream_is_refused(db: PgPool) {
    let app = quiet_app(db).await;
    let (streamer, _) = quick_user(&app.db, "andi").await;
    let stream_id = create_stream(&app.db, streamer, true).await;
    app.state
        .events
        .publish(stream_id, donation(1_000))
        .await
        .unwrap();

    let mut socket = Ws::connect(app.addr, &format!("{}?last_event_id=999", path(stream_id))).await;
    let error = socket.next_json().await;
    let ready = socket.next_json().await;
    app.state
        .events
        .publish(stream_id, donation(2_000))
        .await
        .unwrap();

    assert_eq!(error["data"]["code"], "invalid_last_event_id");
    assert_eq!(ready["id"], 1);
    assert_eq!(socket.next_json().await["id"], 2);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn comment_spam_over_the_socket_is_rate_limited(db: PgPool) {
    let app = quiet_app(db).await;
    let (streamer, _) = quick_user(&app.db, "andi").await;
    let stream_id = create_stream(&app.db, streamer, true).await;
    let (_, token) = quick_user(&app.db, "fajar").await;
    let mut socket = Ws::connect(app.addr, &format!("{}?token={token}", path(stream_id))).await;
    socket.next_json().await;

    for n in 1..=6 {
        socket
            .send_json(&json!({"type": "comment.create", "content": format!("spam {n}"), "ref": format!("s{n}")}))
            .await;
    }
    let mut answers = Vec::new();
    for _ in 1..=6 {
        answers.push(socket.next_json().await);
    }

    let created = answers
        .iter()
        .filter(|m| m["type"] == "comment.created")
        .count();
    let limited: Vec<&Value> = answers.iter().filter(|m| m["type"] == "error").collect();
    assert_eq!(created, 5);
    assert_eq!(limited.len(), 1, "{answers:?}");
    assert_eq!(limited[0]["data"]["code"], "comment_rate_limited");
    assert_eq!(limited[0]["data"]["ref"], "s6");
    assert!(limited[0]["data"]["retry_after"].as_u64().unwrap() >= 1);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn comments_on_an_ended_stream_are_refused_over_the_socket(db: PgPool) {
    let app = quiet_app(db).await;
    let (streamer, _) = quick_user(&app.db, "andi").await;
    let stream_id = create_stream(&app.db, streamer, true).await;
    let (_, token) = quick_user(&app.db, "rina").await;
    let mut socket = Ws::connect(app.addr, &format!("{}?token={token}", path(stream_id))).await;
    socket.next_json().await;
    set_live(&app.db, stream_id, false).await;

    socket
        .send_json(&json!({"type": "comment.create", "content": "too late"}))
        .await;
    let error = socket.next_json().await;
    socket
        .send_json(&json!({"type": "comment.create", "content": "   "}))
        .await;
    let blank = socket.next_json().await;

    assert_eq!(error["data"]["code"], "stream_not_live");
    assert_eq!(blank["data"]["code"], "validation_failed");
    assert_eq!(blank["data"]["errors"][0]["field"], "content");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_slow_client_is_dropped_without_holding_up_the_others(db: PgPool) {
    let app = TestApp::spawn_with(db, |c| {
        c.live.viewers_interval_secs = 3600;
        c.live.ws_max_lag = 128;
        // Short, so the slow client cannot linger; long enough that the fast one, which answers
        // pings only while the test reads, survives a busy machine's slow rounds of publishing.
        c.live.ws_idle_timeout_secs = 15;
    })
    .await;
    let (streamer, _) = quick_user(&app.db, "andi").await;
    let stream_id = create_stream(&app.db, streamer, true).await;
    let mut slow = Ws::connect_small_buffer(app.addr, &path(stream_id)).await;
    let mut fast = Ws::connect(app.addr, &path(stream_id)).await;
    slow.next_json().await;
    fast.next_json().await;
    const EVENTS: u64 = 600;
    let bulky = "x".repeat(20_000);

    // Published in rounds the fast client reads before the next: it never falls behind
    // however this machine schedules the test, while the slow one reads nothing.
    let mut fast_ids = Vec::new();
    for _ in 0..EVENTS / 50 {
        for _ in 0..50 {
            let error = StreamError {
                code: "noise".into(),
                message: bulky.clone(),
            };
            app.state
                .events
                .publish(stream_id, EventData::StreamError(error))
                .await
                .unwrap();
        }
        for _ in 0..50 {
            fast_ids.push(fast.next_json().await["id"].as_u64().unwrap());
        }
    }
    let (slow_seen, ending) = slow.until_end().await;

    assert_eq!(
        fast_ids,
        (1..=EVENTS).collect::<Vec<_>>(),
        "the fast client got everything, in order"
    );
    let slow_events: Vec<u64> = slow_seen
        .iter()
        .filter(|m| m["type"] == "stream.error")
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert!(
        (slow_events.len() as u64) < EVENTS,
        "the slow client was cut off, not fed everything"
    );
    assert!(
        slow_events.windows(2).all(|w| w[0] < w[1]),
        "in order while it lasted"
    );
    if let Some(last) = slow_seen.last().filter(|m| m["type"] == "error") {
        assert_eq!(last["data"]["code"], "too_slow");
        assert_eq!(ending, Ending::Closed(1013));
    }
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_silent_client_is_dropped_by_the_heartbeat(db: PgPool) {
    let app = TestApp::spawn_with(db, |c| {
        c.live.ws_ping_interval_secs = 1;
        c.live.ws_idle_timeout_secs = 3;
    })
    .await;
    let (streamer, _) = quick_user(&app.db, "andi").await;
    let stream_id = create_stream(&app.db, streamer, true).await;
    // A raw client: completes the handshake, then never answers a ping.
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        path(stream_id),
        app.addr
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let started = tokio::time::Instant::now();

    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;

    assert!(
        closed.is_ok(),
        "the server never closed the silent connection"
    );
    assert!(received.starts_with(b"HTTP/1.1 101"));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "closed for silence, not at once"
    );
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn sockets_are_closed_with_going_away_on_shutdown(db: PgPool) {
    let mut app = quiet_app(db).await;
    let (streamer, _) = quick_user(&app.db, "andi").await;
    let stream_id = create_stream(&app.db, streamer, true).await;
    let mut socket = Ws::connect(app.addr, &path(stream_id)).await;
    socket.next_json().await;

    app.shut_down().await;
    let (_, ending) = socket.until_end().await;

    assert_eq!(ending, Ending::Closed(1001));
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn unknown_streams_and_plain_requests_are_refused(db: PgPool) {
    let app = quiet_app(db).await;

    let unknown = Ws::try_connect(app.addr, &path(Uuid::new_v4())).await;
    let plain = app.get(&path(Uuid::new_v4())).await;
    let bad_resume = app
        .get(&format!("{}?last_event_id=soon", path(Uuid::new_v4())))
        .await;

    match unknown {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 404);
        }
        other => panic!(
            "expected a 404 for an unknown stream, got {:?}",
            other.map(|_| ())
        ),
    }
    problem(plain, StatusCode::UPGRADE_REQUIRED, "websocket_required").await;
    assert_ne!(bad_resume.status(), StatusCode::OK);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn viewers_are_counted_and_the_count_is_broadcast(db: PgPool) {
    let app = TestApp::spawn_with(db, |c| c.live.viewers_interval_secs = 1).await;
    let (streamer, _) = quick_user(&app.db, "andi").await;
    let stream_id = create_stream(&app.db, streamer, true).await;
    let mut first = Ws::connect(app.addr, &path(stream_id)).await;
    let mut second = Ws::connect(app.addr, &path(stream_id)).await;
    first.next_json().await;
    second.next_json().await;

    let count = loop {
        let message = first.next_of("viewers.count").await;
        if message["data"]["count"] == 2 {
            break message;
        }
    };
    drop(second);
    let after = loop {
        let message = first.next_of("viewers.count").await;
        if message["data"]["count"] == 1 {
            break message;
        }
    };
    let counts = siaran::live::viewers::counts(
        &app.state.redis,
        &app.state.live,
        &[stream_id, Uuid::new_v4()],
    )
    .await;
    let stream: Value = app
        .get(&format!("/api/streams/{stream_id}"))
        .await
        .json()
        .await
        .unwrap();

    assert!(after["id"].as_u64() > count["id"].as_u64());
    assert_eq!(counts.get(&stream_id), Some(&1));
    assert_eq!(counts.len(), 1);
    assert_eq!(
        stream["viewer_count"], 1,
        "the stream JSON shows it: {stream}"
    );
}
