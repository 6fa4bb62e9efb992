//! Fault tests with real processes: each test starts its own PostgreSQL cluster, its own
//! `redis-server` and `siaran serve` as a separate process, then crashes one of them under load
//! and checks what users would notice afterwards.
//!
//! They take tens of seconds each and need PostgreSQL 15's server binaries and `redis-server`
//! on the machine; `make test` runs them with nextest, in parallel.

// Helpers are shared by tests that each use a part of them.
#![allow(unreachable_pub, dead_code)]

mod procs;
mod settlements;
#[path = "../api/smtp_sink.rs"]
mod smtp_sink;

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use procs::{JWT_SECRET, Postgres, Redis, Siaran};

/// Comments posted per second during the PostgreSQL crash.
const COMMENT_RATE: u64 = 200;
/// Comment authors: each may post 5 per 10 s (the server's limit), so 200/s needs 400.
const AUTHORS: usize = 400;

async fn pool(pg: &Postgres) -> PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .connect(&pg.url())
        .await
        .expect("connecting to the test's PostgreSQL")
}

/// A streamer `username` (email `username@example.com`) with a live stream; its id.
pub(crate) async fn live_stream_of(db: &PgPool, username: &str) -> Uuid {
    let streamer: Uuid = sqlx::query_scalar(
        "INSERT INTO users (username, email, password_hash, is_streamer)
         VALUES ($1, $1 || '@example.com', 'x', true) RETURNING id",
    )
    .bind(username)
    .fetch_one(db)
    .await
    .expect("a streamer");
    sqlx::query_scalar(
        "INSERT INTO streams (streamer_id, title, is_active, started_at)
         VALUES ($1, 'Fault stream', true, now()) RETURNING id",
    )
    .bind(streamer)
    .fetch_one(db)
    .await
    .expect("a live stream")
}

/// A streamer with a live stream and `authors` viewers, each with an access token.
async fn live_stream_with_authors(db: &PgPool, authors: usize) -> (Uuid, Vec<String>) {
    let stream_id = live_stream_of(db, "streamer").await;
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO users (username, email, password_hash)
         SELECT 'viewer' || n, 'viewer' || n || '@example.com', 'x' FROM generate_series(1, $1) n
         RETURNING id",
    )
    .bind(i32::try_from(authors).expect("a small number"))
    .fetch_all(db)
    .await
    .expect("viewers");
    (stream_id, ids.into_iter().map(token_for).collect())
}

/// Everything a socket received, collected by a task until the test drops it.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Value>>>);

impl Received {
    async fn listen(url: String) -> Self {
        let (mut socket, _) = tokio_tungstenite::connect_async(&url)
            .await
            .expect("connecting a socket");
        let received = Self::default();
        let sink = received.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                if let Message::Text(text) = message
                    && let Ok(value) = serde_json::from_str::<Value>(text.as_str())
                {
                    sink.0.lock().expect("the lock").push(value);
                }
            }
        });
        received
    }

    fn of(&self, kind: &str) -> Vec<Value> {
        self.0
            .lock()
            .expect("the lock")
            .iter()
            .filter(|m| m["type"] == kind)
            .cloned()
            .collect()
    }

    /// Waits up to a minute until the messages of `kind` carry every id in `wanted` (at
    /// `data.<field>`); returns the ids they carry.
    async fn wait_for(&self, kind: &str, field: &str, wanted: &HashSet<String>) -> HashSet<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let got: HashSet<String> = self
                .of(kind)
                .iter()
                .filter_map(|m| m["data"][field].as_str().map(str::to_owned))
                .collect();
            if wanted.is_subset(&got) || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The event ids of the messages of `kind`, in the order they arrived.
    fn event_ids(&self, kind: &str) -> Vec<u64> {
        self.of(kind)
            .iter()
            .filter_map(|m| m["id"].as_u64())
            .collect()
    }

    /// Asserts that `wanted` all arrived as `kind` (at `data.<field>`), each once, in event-id
    /// order.
    async fn assert_each_once(
        &self,
        what: &str,
        kind: &str,
        field: &str,
        wanted: &HashSet<String>,
    ) {
        let got = self.wait_for(kind, field, wanted).await;
        let missing = wanted.difference(&got).count();
        assert_eq!(missing, 0, "{missing} {kind} never reached the {what}");
        let ids = self.event_ids(kind);
        let unique: BTreeSet<u64> = ids.iter().copied().collect();
        assert_eq!(
            unique.len(),
            ids.len(),
            "the {what} got an event twice: {ids:?}"
        );
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "event ids on the {what} only grow: {ids:?}"
        );
    }
}

/// An access token for the streamer of `stream_id`.
pub(crate) async fn streamer_token(db: &PgPool, stream_id: Uuid) -> String {
    let streamer: Uuid = sqlx::query_scalar("SELECT streamer_id FROM streams WHERE id = $1")
        .bind(stream_id)
        .fetch_one(db)
        .await
        .expect("the stream's streamer");
    token_for(streamer)
}

/// An access token for `user`, signed with the key the test's server uses.
pub(crate) fn token_for(user: Uuid) -> String {
    siaran::auth::jwt::JwtKeys::new(JWT_SECRET.as_bytes()).issue(user)
}

/// The streamer's OBS overlay socket, opened with a new overlay token.
pub(crate) async fn overlay_of(client: &reqwest::Client, port: u16, streamer: &str) -> Received {
    let created: Value = client
        .post(format!(
            "http://127.0.0.1:{port}/api/users/me/overlay-token"
        ))
        .bearer_auth(streamer)
        .send()
        .await
        .expect("creating an overlay token")
        .json()
        .await
        .expect("the overlay token");
    let token = created["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"));
    Received::listen(format!("ws://127.0.0.1:{port}/ws/overlay/{token}")).await
}

/// `POST /api/streams/{stream_id}/donations` as `donor`: the answer's body.
pub(crate) async fn donate(
    client: &reqwest::Client,
    base: &str,
    stream_id: Uuid,
    donor: &str,
    body: &Value,
) -> Value {
    client
        .post(format!("{base}/api/streams/{stream_id}/donations"))
        .bearer_auth(donor)
        .json(body)
        .send()
        .await
        .expect("creating a donation")
        .json()
        .await
        .expect("the donation")
}

/// A bank transfer from `donor` that the streamer confirms; the donation's id.
async fn transfer_confirmed(
    client: &reqwest::Client,
    base: &str,
    stream_id: Uuid,
    donor: &str,
    streamer: &str,
) -> String {
    let payout = client
        .patch(format!("{base}/api/users/me/payout"))
        .bearer_auth(streamer)
        .json(
            &serde_json::json!({"bank_name": "BCA", "account_number": "1234567890",
                                  "account_holder": "Fault Streamer"}),
        )
        .send()
        .await
        .expect("setting the payout account");
    assert!(payout.status().is_success(), "payout: {}", payout.status());
    let created = donate(
        client,
        base,
        stream_id,
        donor,
        &serde_json::json!({"amount": 25_000, "payment_method": "bank_transfer",
                            "message": "after the crash"}),
    )
    .await;
    let id = created["donation"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();
    let confirmed = client
        .post(format!("{base}/api/donations/{id}/confirm"))
        .bearer_auth(streamer)
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("confirming the transfer");
    assert!(
        confirmed.status().is_success(),
        "confirm: {}",
        confirmed.status()
    );
    id
}

/// Posts comments at `rate` per second for `seconds`, round robin over `tokens`; returns the
/// ids of those answered 201 and how many were posted.
async fn post_comments(
    client: &reqwest::Client,
    base: &str,
    stream_id: Uuid,
    tokens: &[String],
    rate: u64,
    seconds: u64,
) -> (Vec<Uuid>, usize) {
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut posts = Vec::new();
    let total = usize::try_from(rate * seconds).expect("a small number");
    for n in 0..total {
        tick.tick().await;
        let request = client
            .post(format!("{base}/api/streams/{stream_id}/comments"))
            .bearer_auth(&tokens[n % tokens.len()])
            .json(&serde_json::json!({ "content": format!("comment {n}") }));
        let accepted = Arc::clone(&accepted);
        posts.push(tokio::spawn(async move {
            if let Ok(response) = request.send().await
                && response.status() == reqwest::StatusCode::CREATED
                && let Ok(body) = response.json::<Value>().await
                && let Some(id) = body["id"].as_str().and_then(|s| s.parse::<Uuid>().ok())
            {
                accepted.lock().expect("the lock").push(id);
            }
        }));
    }
    for post in posts {
        let _ = post.await;
    }
    let accepted = accepted.lock().expect("the lock").clone();
    (accepted, total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_crash_under_200_comments_a_second_loses_no_answered_comment_and_reuses_no_event_id()
 {
    let pg = Postgres::start();
    let redis = Redis::start();
    let siaran = Siaran::start(&pg, &redis);
    let base = format!("http://127.0.0.1:{}", siaran.port);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    wait_until_ready(&client, &base).await;
    let db = pool(&pg).await;
    let (stream_id, tokens) = live_stream_with_authors(&db, AUTHORS).await;
    let streamer = streamer_token(&db, stream_id).await;
    db.close().await;
    let socket = Received::listen(format!(
        "ws://127.0.0.1:{}/ws/stream/{stream_id}/",
        siaran.port
    ))
    .await;
    let overlay = overlay_of(&client, siaran.port, &streamer).await;

    // Act: comments at 200/s for 8 s; PostgreSQL crashes 3 s in and is back a second later.
    let load = {
        let (client, base, tokens) = (client.clone(), base.clone(), tokens.clone());
        tokio::spawn(async move {
            post_comments(&client, &base, stream_id, &tokens, COMMENT_RATE, 8).await
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    crash_and_restart(&pg).await;
    let (accepted, posted) = load.await.unwrap();
    let during_load = accepted.len();
    // After recovery, comments are answered again: post one a second until one is (how long
    // the server takes to get its connections back depends on the machine's load), and it must
    // reach the socket too.
    let mut after = Vec::new();
    for _ in 0..30 {
        after = post_comments(&client, &base, stream_id, &tokens[..1], 1, 1)
            .await
            .0;
        if !after.is_empty() {
            break;
        }
    }
    assert_eq!(
        after.len(),
        1,
        "a comment is answered 201 once PostgreSQL is back; the server log:\n{}",
        tail(&siaran.log())
    );
    let accepted: Vec<Uuid> = accepted.into_iter().chain(after).collect();
    // Then a donation: its alert must reach the socket and the overlay opened before the crash.
    let donation = transfer_confirmed(&client, &base, stream_id, &tokens[1], &streamer).await;

    // Assert.
    let db = pool(&pg).await;
    let stored: HashSet<Uuid> = sqlx::query_scalar("SELECT id FROM comments WHERE stream_id = $1")
        .bind(stream_id)
        .fetch_all(&db)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let lost: Vec<&Uuid> = accepted.iter().filter(|id| !stored.contains(id)).collect();
    let event_ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM live_events WHERE stream_id = $1 ORDER BY id")
            .bind(stream_id)
            .fetch_all(&db)
            .await
            .unwrap();
    let last_id: i64 =
        sqlx::query_scalar("SELECT last_id FROM live_event_seqs WHERE stream_id = $1")
            .bind(stream_id)
            .fetch_one(&db)
            .await
            .unwrap();
    eprintln!(
        "posted {posted}, answered 201: {}, stored: {}, events: {}",
        accepted.len(),
        stored.len(),
        event_ids.len()
    );
    // The load was not refused wholesale (the checks below would then hold vacuously). How
    // many are answered while PostgreSQL is down or reconnecting depends on the machine's
    // load, so this asserts only that the load reached the database around the crash.
    assert!(
        during_load > 0,
        "no comment of {posted} was answered 201; the server log:\n{}",
        tail(&siaran.log())
    );
    assert!(
        lost.is_empty(),
        "comments answered 201 and then lost: {lost:?}"
    );
    let expected: Vec<i64> = (1..=last_id).collect();
    assert_eq!(
        event_ids, expected,
        "event ids are gapless and each used once"
    );
    // Every accepted comment reaches the socket that was open throughout; the donation's
    // alert reaches it and the overlay, once each.
    let wanted: HashSet<String> = accepted.iter().map(Uuid::to_string).collect();
    socket
        .assert_each_once("socket", "comment.created", "id", &wanted)
        .await;
    let donated = HashSet::from([donation.clone()]);
    for (what, received) in [("socket", &socket), ("overlay", &overlay)] {
        received
            .assert_each_once(what, "donation.received", "donation_id", &donated)
            .await;
        assert_eq!(received.of("donation.received").len(), 1, "{what}");
    }
    let alerts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM live_events WHERE kind = 'donation.received'
          AND data::json->>'donation_id' = $1",
    )
    .bind(&donation)
    .fetch_one(&db)
    .await
    .unwrap();

    assert_eq!(alerts, 1, "one donation.received for the donation");
}

/// How long Redis stays down: `FAULT_REDIS_OUTAGE_SECS`, 60 by default (the issue's figure).
pub(crate) fn redis_outage() -> Duration {
    let secs = std::env::var("FAULT_REDIS_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn comments_answered_while_redis_is_down_reach_open_sockets_once_it_is_back() {
    let pg = Postgres::start();
    let mut redis = Redis::start();
    let siaran = Siaran::start(&pg, &redis);
    let base = format!("http://127.0.0.1:{}", siaran.port);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    wait_until_ready(&client, &base).await;
    let db = pool(&pg).await;
    let (stream_id, tokens) = live_stream_with_authors(&db, 40).await;
    let socket = Received::listen(format!(
        "ws://127.0.0.1:{}/ws/stream/{stream_id}/",
        siaran.port
    ))
    .await;
    let (before, _) = post_comments(&client, &base, stream_id, &tokens[..20], 20, 1).await;

    // Act: Redis is killed; comments go on at 20/s for 2 s; Redis stays away for the outage.
    redis.kill();
    let (during, posted_during) =
        post_comments(&client, &base, stream_id, &tokens[20..], 20, 2).await;
    tokio::time::sleep(redis_outage().saturating_sub(Duration::from_secs(2))).await;
    redis.up();
    let accepted: Vec<Uuid> = before.iter().chain(&during).copied().collect();

    // Assert: everything accepted reaches the socket, in order, once.
    let wanted: HashSet<String> = accepted.iter().map(Uuid::to_string).collect();
    let delivered = socket.wait_for("comment.created", "id", &wanted).await;
    let socket_ids = socket.event_ids("comment.created");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM comments WHERE stream_id = $1")
        .bind(stream_id)
        .fetch_one(&db)
        .await
        .unwrap();

    eprintln!(
        "answered 201 while Redis was down: {} of {posted_during}; stored: {stored}",
        during.len()
    );
    assert_eq!(
        during.len(),
        posted_during,
        "comments are accepted while Redis is down (rate limits fail open)"
    );
    assert_eq!(
        wanted.difference(&delivered).count(),
        0,
        "accepted comments never reached the open socket; server log:\n{}",
        tail(&siaran.log())
    );
    assert!(
        socket_ids.windows(2).all(|w| w[0] < w[1]),
        "each event once, in id order: {socket_ids:?}"
    );
}

/// Not a fault: how many comments a second the server stores flat out (32 posters, 5 s), to
/// compare commit settings. `cargo nextest run --test faults --run-ignored only`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement, not a check"]
async fn comment_throughput_flat_out() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let siaran = Siaran::start(&pg, &redis);
    let base = format!("http://127.0.0.1:{}", siaran.port);
    let client = reqwest::Client::new();
    wait_until_ready(&client, &base).await;
    let db = pool(&pg).await;
    // Far more authors than the rate limit needs, so that only the server limits the rate.
    let (stream_id, tokens) = live_stream_with_authors(&db, 4_000).await;
    let tokens = Arc::new(tokens);
    let started = tokio::time::Instant::now();
    let until = started + Duration::from_secs(5);
    let mut posters = Vec::new();
    for p in 0..32 {
        let (client, base, tokens) = (client.clone(), base.clone(), Arc::clone(&tokens));
        posters.push(tokio::spawn(async move {
            let mut ok = 0_usize;
            let mut n = p;
            while tokio::time::Instant::now() < until {
                let response = client
                    .post(format!("{base}/api/streams/{stream_id}/comments"))
                    .bearer_auth(&tokens[n % tokens.len()])
                    .json(&serde_json::json!({ "content": format!("comment {n}") }))
                    .send()
                    .await;
                if response.is_ok_and(|r| r.status() == reqwest::StatusCode::CREATED) {
                    ok += 1;
                }
                n += 32;
            }
            ok
        }));
    }
    let mut ok = 0;
    for poster in posters {
        ok += poster.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "comments stored flat out: {ok} in {secs:.1} s = {:.0}/s",
        ok as f64 / secs
    );
}

/// Stops PostgreSQL with `-m immediate`, waits a second, starts it (through crash recovery).
async fn crash_and_restart(pg: &Postgres) {
    pg.crash();
    tokio::time::sleep(Duration::from_secs(1)).await;
    pg.up();
}

async fn wait_until_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..600 {
        if let Ok(response) = client.get(format!("{base}/healthz")).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("siaran serve did not become healthy in a minute");
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
