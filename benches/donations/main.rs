//! Donations bench: how fast Siaran answers Midtrans' notifications (Midtrans gives up after
//! 15 s; the issue asks for under a second), against `GET /healthz` on the same server in the
//! same run as the reference, and how long a payment takes from "paid" at the (local) Midtrans to
//! `completed` in PostgreSQL: notification → stored → queued → worker → status endpoint → state
//! machine.
//!
//! A throwaway database, its own Redis prefix, the fake Midtrans in-process. Requests are sent
//! one at a time (latency, not throughput). `BENCH_N` sets how many (default 300).

// A bench reports on stdout, and a broken setup should stop it loudly rather than be handled.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use fake_midtrans::{Sandbox, SandboxSettings};
use serde_json::{Value, json};
use siaran::config::Config;
use siaran::payments::midtrans::signature;
use siaran::startup::Application;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

const SERVER_KEY: &str = "SB-Mid-server-bench";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let (p50, p95, p99) = (
        percentile(&samples, 0.5),
        percentile(&samples, 0.95),
        percentile(&samples, 0.99),
    );
    println!(
        "{name:<34} n={:<4} p50={:>8.2} ms  p95={:>8.2} ms  p99={:>8.2} ms  max={:>8.2} ms",
        samples.len(),
        p50.as_secs_f64() * 1e3,
        p95.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    p50
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let admin_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://siaran:siaran@127.0.0.1:5432/siaran".to_owned());
    let db_name = format!("siaran_bench_donations_{}", std::process::id());
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&admin_url)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {db_name}"))
        .execute(&admin)
        .await?;
    let (server, _) = admin_url
        .rsplit_once('/')
        .expect("DATABASE_URL names a database");
    let result = run(&format!("{server}/{db_name}"), n).await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
        .execute(&admin)
        .await?;
    result
}

async fn run(database_url: &str, n: usize) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(SandboxSettings {
        addr: "127.0.0.1:0".parse()?,
        server_key: SERVER_KEY.to_owned(),
        client_key: "SB-Mid-client-bench".to_owned(),
        notification_url: None,
        retry_minute: Duration::from_secs(60),
    })
    .await?;
    let prefix = format!("siaran-bench-{}", Uuid::new_v4().simple());
    let mut config = Config::from_args([
        "siaran",
        "--http-addr",
        "127.0.0.1:0",
        "--rtmp-addr",
        "127.0.0.1:0",
    ])?;
    config.database_url = database_url.to_owned();
    config.redis_prefix.clone_from(&prefix);
    config.jwt_secret = Some("bench-secret-bench-secret-bench-secret-0123".to_owned());
    config.midtrans.server_key = Some(SERVER_KEY.to_owned());
    config.midtrans.snap_url = sandbox.url();
    config.midtrans.api_url = sandbox.url();
    config.smtp.mail_dir = std::env::temp_dir().join(format!("{prefix}-mail"));
    config.jobs.schedule_interval_secs = 3600;
    // One donor starts every donation of the bench.
    config.limits.donation_account = "1000000/1m".parse().map_err(anyhow::Error::msg)?;
    config.limits.donation_address = "1000000/1m".parse().map_err(anyhow::Error::msg)?;
    let mail_dir = config.smtp.mail_dir.clone();
    let app = Application::build(config).await?;
    let base = format!("http://{}", app.http_addr());
    let state = app.state().clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let server = tokio::spawn(app.run_until_stopped(async move { stopped.cancelled().await }));
    sandbox.set_notification_url(format!("{base}/api/payments/midtrans/notification"));
    let http = reqwest::Client::new();

    // A streamer live on a stream with a payout account, and a donor.
    for name in ["andi", "rina"] {
        http.post(format!("{base}/api/auth/register"))
            .json(&json!({"username": name, "email": format!("{name}@bench.test"), "password": "correct-horse-battery"}))
            .send()
            .await?;
    }
    let login: Value = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"login": "rina", "password": "correct-horse-battery"}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["access_token"].as_str().expect("token").to_owned();
    let stream_id: Uuid = sqlx::query_scalar(
        "INSERT INTO streams (streamer_id, title, is_active, started_at)
         SELECT id, 'Bench', true, now() FROM users WHERE username = 'andi' RETURNING id",
    )
    .fetch_one(&state.db)
    .await?;

    let mut orders = Vec::with_capacity(n);
    for _ in 0..n {
        let created: Value = http
            .post(format!("{base}/api/streams/{stream_id}/donations"))
            .bearer_auth(&token)
            .json(&json!({"amount": 10_000, "payment_method": "midtrans"}))
            .send()
            .await?
            .json()
            .await?;
        orders.push((
            created["donation"]["id"].as_str().expect("id").to_owned(),
            created["donation"]["transaction_id"]
                .as_str()
                .expect("order")
                .to_owned(),
        ));
    }

    // 1. Acknowledging a notification (signature, lookup, store, enqueue) vs /healthz,
    //    interleaved so both see the same load.
    let (mut ack, mut health) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for (_, order) in &orders {
        let body = json!({
            "order_id": order, "status_code": "201", "gross_amount": "10000.00",
            "transaction_status": "pending", "payment_type": "bank_transfer",
            "signature_key": signature(order, "201", "10000.00", SERVER_KEY),
        });
        let started = Instant::now();
        let r = http
            .post(format!("{base}/api/payments/midtrans/notification"))
            .json(&body)
            .send()
            .await?;
        ack.push(started.elapsed());
        assert!(r.status().is_success(), "{}", r.status());
        let started = Instant::now();
        http.get(format!("{base}/healthz")).send().await?;
        health.push(started.elapsed());
    }
    println!(
        "uptime: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let ack_p50 = summary("notification acknowledged", ack);
    let health_p50 = summary("GET /healthz (reference)", health);
    println!(
        "ratio notification/healthz at p50: {:.2}",
        ack_p50.as_secs_f64() / health_p50.as_secs_f64()
    );

    // 2. Paid at Midtrans → completed in PostgreSQL, one payment at a time.
    let mut settle = Vec::with_capacity(n);
    for (id, order) in orders.iter().take(n.min(100)) {
        let id: Uuid = id.parse()?;
        let started = Instant::now();
        let r = http
            .post(format!(
                "{}/_sandbox/orders/{order}/actions/pay",
                sandbox.url()
            ))
            .basic_auth(SERVER_KEY, Some(""))
            .send()
            .await?;
        assert!(r.status().is_success());
        loop {
            let status: String = sqlx::query_scalar("SELECT status FROM donations WHERE id = $1")
                .bind(id)
                .fetch_one(&state.db)
                .await?;
            if status == "completed" {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(30),
                "{id} never completed"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        settle.push(started.elapsed());
    }
    summary("paid → completed (end to end)", settle);

    stop.cancel();
    let _ = server.await;
    let mut conn = state.redis.conn().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await?;
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(keys)
            .query_async::<()>(&mut conn)
            .await?;
    }
    let _ = std::fs::remove_dir_all(mail_dir);
    state.db.close().await;
    Ok(())
}
