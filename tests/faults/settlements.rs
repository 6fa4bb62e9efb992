//! `siaran serve` SIGKILLed again and again while Midtrans settles payments, and Redis killed
//! during them: every donation completes once, with one `donation.received` and one email of
//! each kind; through the Redis outage, a viewer's socket and the overlay get every alert once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use fake_midtrans::{Sandbox, SandboxSettings};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::procs::{Postgres, Redis, Siaran};
use crate::smtp_sink::SmtpSink;
use crate::{Received, pool, tail, wait_until_ready};

const SERVER_KEY: &str = "SB-Mid-server-fault-tests";
const DONATIONS: usize = 100;
const KILLS: usize = 10;

async fn streamer_and_donor(db: &PgPool) -> (Uuid, String) {
    let stream_id = crate::live_stream_of(db, "andi").await;
    let donor: Uuid = sqlx::query_scalar(
        "INSERT INTO users (username, email, password_hash)
         VALUES ('rina', 'rina@example.com', 'x') RETURNING id",
    )
    .fetch_one(db)
    .await
    .expect("a donor");
    (stream_id, crate::token_for(donor))
}

/// Everything a settlement fault test runs against, with `DONATIONS` pending online
/// donations created.
struct Shop {
    pg: Postgres,
    redis: Redis,
    sandbox: Sandbox,
    smtp: SmtpSink,
    siaran: Siaran,
    db: PgPool,
    stream_id: Uuid,
    orders: Vec<String>,
}

async fn shop() -> Shop {
    // Arrange: PostgreSQL, Redis, the fake Midtrans (in this process: it outlives every kill,
    // and retries its notifications on Midtrans' schedule, one "minute" being 50 ms) and a real
    // SMTP listener, then siaran serve pointed at them.
    let pg = Postgres::start();
    let redis = Redis::start();
    let sandbox = Sandbox::start(SandboxSettings {
        addr: "127.0.0.1:0".parse().expect("a socket address"),
        server_key: SERVER_KEY.to_owned(),
        client_key: "SB-Mid-client-fault".to_owned(),
        notification_url: None,
        retry_minute: Duration::from_millis(50),
    })
    .await
    .expect("the fake Midtrans");
    let smtp = SmtpSink::start().await;
    let env = [
        ("MIDTRANS_SERVER_KEY", SERVER_KEY.to_owned()),
        ("MIDTRANS_CLIENT_KEY", "SB-Mid-client-fault".to_owned()),
        ("MIDTRANS_SNAP_URL", sandbox.url()),
        ("MIDTRANS_API_URL", sandbox.url()),
        ("SMTP_HOST", "127.0.0.1".to_owned()),
        ("SMTP_PORT", smtp.port.to_string()),
        ("SMTP_TLS", "none".to_owned()),
        ("SIARAN_LIMIT_DONATION_ACCOUNT", "1000/1m".to_owned()),
        ("SIARAN_LIMIT_DONATION_ADDRESS", "1000/1m".to_owned()),
        // A killed worker's jobs are taken over quickly, and the sweep runs often.
        ("SIARAN_JOB_CLAIM_IDLE_SECS", "2".to_owned()),
        ("SIARAN_JOB_BACKOFF_MS", "100".to_owned()),
        ("SIARAN_SCHEDULE_INTERVAL_SECS", "2".to_owned()),
        ("SIARAN_RECONCILE_AFTER_SECS", "5".to_owned()),
    ];
    let siaran = Siaran::start_with(&pg, &redis, &env);
    let base = format!("http://127.0.0.1:{}", siaran.port);
    sandbox.set_notification_url(format!("{base}/api/payments/midtrans/notification"));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("the test's own setup and queries");
    wait_until_ready(&client, &base).await;
    let db = pool(&pg).await;
    let (stream_id, donor) = streamer_and_donor(&db).await;
    let mut orders = Vec::with_capacity(DONATIONS);
    for i in 0..DONATIONS {
        let body =
            json!({"amount": 10_000 + i, "payment_method": "midtrans", "message": format!("#{i}")});
        let created = crate::donate(&client, &base, stream_id, &donor, &body).await;
        orders.push(
            created["donation"]["transaction_id"]
                .as_str()
                .unwrap_or_else(|| panic!("{created}"))
                .to_owned(),
        );
    }
    Shop {
        pg,
        redis,
        sandbox,
        smtp,
        siaran,
        db,
        stream_id,
        orders,
    }
}

async fn settle_at_midtrans(sandbox: &Sandbox, order: &str) {
    let paid = reqwest::Client::new()
        .post(format!(
            "{}/_sandbox/orders/{order}/actions/pay",
            sandbox.url()
        ))
        .basic_auth(SERVER_KEY, Some(""))
        .send()
        .await
        .expect("settling at the fake Midtrans");
    assert!(paid.status().is_success(), "{}", paid.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_killed_ten_times_during_a_hundred_settlements_completes_each_once() {
    let mut shop = shop().await;

    // Act: Midtrans settles them one after another; every tenth, the server is SIGKILLed in
    // the middle of the notifications, jobs and emails in flight, and started again.
    for (i, order) in shop.orders.iter().enumerate() {
        settle_at_midtrans(&shop.sandbox, order).await;
        if i % (DONATIONS / KILLS) == DONATIONS / KILLS / 2 {
            tokio::time::sleep(Duration::from_millis(20 * (i as u64 % 7))).await;
            shop.siaran.kill();
            shop.siaran.up();
        }
    }

    each_completed_once(&shop, KILLS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn settlements_while_redis_is_down_complete_each_once_after_it_is_back() {
    let mut shop = shop().await;

    // A viewer's socket and the streamer's overlay, open throughout.
    let port = shop.siaran.port;
    let socket = Received::listen(format!(
        "ws://127.0.0.1:{port}/ws/stream/{}/",
        shop.stream_id
    ))
    .await;
    let streamer = crate::streamer_token(&shop.db, shop.stream_id).await;
    let overlay = crate::overlay_of(&reqwest::Client::new(), port, &streamer).await;

    // Act: half are paid, Redis is killed, the other half are paid during the outage (the
    // notifications are stored but cannot be queued), Redis comes back.
    let (before, during) = shop.orders.split_at(DONATIONS / 2);
    for order in before {
        settle_at_midtrans(&shop.sandbox, order).await;
    }
    shop.redis.kill();
    for order in during {
        settle_at_midtrans(&shop.sandbox, order).await;
    }
    tokio::time::sleep(crate::redis_outage()).await;
    shop.redis.up();

    each_completed_once(&shop, 0).await;
    // Every alert reaches the socket and the overlay, once each, in order.
    let donations: HashSet<String> = sqlx::query_scalar("SELECT id::text FROM donations")
        .fetch_all(&shop.db)
        .await
        .expect("the test's own setup and queries")
        .into_iter()
        .collect();
    for (what, received) in [("socket", &socket), ("overlay", &overlay)] {
        received
            .assert_each_once(what, "donation.received", "donation_id", &donations)
            .await;
        assert_eq!(received.of("donation.received").len(), DONATIONS, "{what}");
    }
}

/// Every donation completes (notifications retried by Midtrans, jobs taken over,
/// reconciliation for what was lost), and its effects exist once; at most `resends` emails
/// went out twice (with the same Message-ID).
#[allow(clippy::print_stderr)] // the resend count is a figure for the test log
async fn each_completed_once(shop: &Shop, resends: usize) {
    let Shop {
        db, siaran, smtp, ..
    } = shop;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let (completed, undelivered): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM donations WHERE status = 'completed'),
                    (SELECT count(*) FROM donation_outbox WHERE delivered_at IS NULL)",
        )
        .fetch_one(db)
        .await
        .expect("the test's own setup and queries");
        if completed == DONATIONS as i64 && undelivered == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{completed} of {DONATIONS} completed, {undelivered} effects undelivered\n{}",
            tail(&siaran.log())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let transitions: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT from_status, to_status, count(*) FROM donation_transitions GROUP BY 1, 2",
    )
    .fetch_all(db)
    .await
    .expect("the test's own setup and queries");
    assert_eq!(
        transitions,
        vec![("pending".into(), "completed".into(), DONATIONS as i64)],
        "one transition per donation"
    );
    let alerts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT data::json->>'donation_id', count(*) FROM live_events
          WHERE kind = 'donation.received' GROUP BY 1",
    )
    .fetch_all(db)
    .await
    .expect("the test's own setup and queries");
    assert_eq!(
        alerts.len(),
        DONATIONS,
        "a donation.received for each donation"
    );
    assert!(alerts.iter().all(|(_, n)| *n == 1), "{alerts:?}");
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM live_events ORDER BY id")
        .fetch_all(db)
        .await
        .expect("the test's own setup and queries");
    assert_eq!(
        ids,
        (1..=ids.len() as i64).collect::<Vec<_>>(),
        "gapless, never reused"
    );

    // Emails: an SMTP send is not transactional, so a server killed after the 250 and before
    // marking the row sent sends it again; the copy carries the same Message-ID (the outbox
    // row's), which mail clients and servers show once. Counted here: distinct messages.
    let emails: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, kind FROM donation_outbox WHERE kind LIKE 'email_%'")
            .fetch_all(db)
            .await
            .expect("the test's own setup and queries");
    assert_eq!(
        emails.len(),
        2 * DONATIONS,
        "a receipt and a notice per donation"
    );
    let received = smtp.messages();
    let mut copies: HashMap<String, usize> = HashMap::new();
    for message in &received {
        let id = message
            .data
            .lines()
            .find_map(|l| {
                l.strip_prefix("Message-ID: ")
                    .or_else(|| l.strip_prefix("Message-Id: "))
            })
            .unwrap_or_default()
            .trim()
            .to_owned();
        *copies.entry(id).or_default() += 1;
    }
    let expected: HashSet<String> = emails
        .iter()
        .map(|(id, _)| format!("<{id}@outbox.siaran>"))
        .collect();
    let got: HashSet<String> = copies.keys().cloned().collect();
    assert_eq!(
        got, expected,
        "exactly one message per outbox email, none missing"
    );
    let resent = received.len() - copies.len();
    eprintln!(
        "{DONATIONS} settlements: {} emails accepted, {} distinct, {resent} resent",
        received.len(),
        copies.len()
    );
    assert!(
        resent <= resends,
        "at most one email in flight per kill is sent again: {resent}"
    );
}
