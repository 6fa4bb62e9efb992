//! The Redis job queue under failure: retries with backoff into the dead letters, a worker
//! process killed mid-job, and Redis down when a donation completes.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::donation_support::{Payments, closed_port, donation_id, published_events};
use crate::helpers::database_url;

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn failing_jobs_are_retried_with_backoff_then_dead_lettered(db: PgPool) {
    let smtp_down = closed_port();
    let env = Payments::spawn_with(db, |c| {
        c.smtp.port = smtp_down;
        c.jobs.max_attempts = 3;
    })
    .await;
    let cast = env.cast().await;
    let id = donation_id(&env.donate_by_transfer(&cast, 40_000).await);

    let confirmed = env.confirm(&cast.streamer, &id).await;

    assert_eq!(confirmed.status(), StatusCode::OK);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let dead = env.app.state.jobs.dead_letters().await.unwrap();
        if dead.len() >= 2 || tokio::time::Instant::now() > deadline {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead.len(), 2, "both emails gave up: {dead:?}");
    for letter in &dead {
        assert_eq!(letter.job["kind"], "deliver_outbox");
        assert_eq!(letter.attempts, 3);
        assert!(letter.error.contains("SMTP"), "{}", letter.error);
    }
    let rows: Vec<(String, i32, Option<chrono::DateTime<chrono::Utc>>)> =
        sqlx::query_as("SELECT kind, attempts, delivered_at FROM donation_outbox ORDER BY kind")
            .fetch_all(&env.app.db)
            .await
            .unwrap();
    for (kind, attempts, delivered) in rows {
        if kind == "event_received" {
            assert!(
                delivered.is_some(),
                "the live alert does not depend on mail"
            );
        } else {
            assert_eq!((attempts, delivered), (3, None), "{kind}");
        }
    }
    assert_eq!(env.donation_events(cast.stream_id).await.len(), 1);
}

/// Waits until a worker is stuck mid-email at the holding mail server.
async fn until_an_email_is_held(env: &Payments) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while env.smtp.held() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no worker reached the mail server"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `siaran worker` process SIGKILLed while it waits on the mail server: another worker takes
/// its job over and every effect happens once.
#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_job_whose_worker_is_killed_midway_is_done_once_by_another(db: PgPool) {
    let env = Payments::spawn_with(db.clone(), |c| c.jobs.workers = 0).await;
    let cast = env.cast().await;
    let id = donation_id(&env.donate_by_transfer(&cast, 40_000).await);
    env.smtp.hold(true);
    let workdir = std::env::temp_dir().join(format!("siaran-worker-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&workdir).unwrap();
    let config = &env.app.state.config;
    let mut worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_siaran"))
        .args(["worker", "--concurrency", "1"])
        .current_dir(&workdir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url(&db))
        .env("REDIS_URL", &config.redis_url)
        .env("SIARAN_REDIS_PREFIX", &config.redis_prefix)
        .env("SIARAN_JWT_SECRET", crate::helpers::TEST_JWT_SECRET)
        .env("SMTP_HOST", "127.0.0.1")
        .env("SMTP_PORT", env.smtp.port.to_string())
        .env("SMTP_TLS", "none")
        .env("SIARAN_JOB_CLAIM_IDLE_SECS", "60")
        .env("SIARAN_SCHEDULE_INTERVAL_SECS", "3600")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting `siaran worker`");

    let confirmed = env.confirm(&cast.streamer, &id).await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    until_an_email_is_held(&env).await;
    // SIGKILL while it waits for the mail server's answer: no cleanup, no acknowledgement.
    worker.start_kill().unwrap();
    worker.wait().await.unwrap();
    let _ = std::fs::remove_dir_all(&workdir);
    env.smtp.hold(false);
    siaran::jobs::spawn_workers(&env.app.state.services(), 1);

    env.settle().await;
    assert_eq!(env.smtp.held(), 1);
    assert_eq!(
        env.smtp.to("andi@example.com").len(),
        1,
        "streamer emailed once"
    );
    assert_eq!(
        env.smtp.to("rina@example.com").len(),
        1,
        "donor emailed once"
    );
    assert_eq!(env.donation_events(cast.stream_id).await.len(), 1);
    assert!(env.app.state.jobs.dead_letters().await.unwrap().is_empty());
}

/// A private Redis this test may stop and start (the shared one is never touched).
struct PrivateRedis(std::process::Child);

impl PrivateRedis {
    fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/setup.sh installs it)");
        Self(child)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn the_alert_goes_out_after_redis_comes_back(db: PgPool) {
    let port = closed_port();
    let env = Payments::spawn_with(db, |c| c.redis_url = format!("redis://127.0.0.1:{port}")).await;
    let cast = env.cast().await;
    let id = donation_id(&env.donate_by_transfer(&cast, 40_000).await);

    let confirmed = env.confirm(&cast.streamer, &id).await;

    assert_eq!(
        confirmed.status(),
        StatusCode::OK,
        "confirming needs PostgreSQL only"
    );
    let waiting: i64 = env
        .count("SELECT count(*) FROM donation_outbox WHERE delivered_at IS NULL")
        .await;
    assert_eq!(waiting, 3, "alert and emails wait in the outbox");
    let _redis = PrivateRedis::start(port);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while env.app.state.redis.ping().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "private Redis did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Reconciliation requeues rows left undelivered for a while.
    sqlx::query("UPDATE donation_outbox SET created_at = now() - interval '1 minute'")
        .execute(&env.app.db)
        .await
        .unwrap();
    siaran::donations::jobs::reconcile(&env.app.state.services())
        .await
        .unwrap();

    env.settle().await;
    let events: Vec<_> = published_events(&env.app, cast.stream_id)
        .await
        .into_iter()
        .filter(|e| e["type"] == "donation.received")
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(env.smtp.to("andi@example.com").len(), 1);
}

/// While an outbox email waits on the mail server, nothing in PostgreSQL is held for it: the
/// donation and its outbox rows can be locked by anyone else, and no session sits idle in a
/// transaction. (Emails used to be sent inside the transaction holding the outbox row.)
#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn an_email_stuck_at_the_mail_server_holds_no_row_lock_or_transaction(db: PgPool) {
    let env = Payments::spawn(db.clone()).await;
    let cast = env.cast().await;
    let id = donation_id(&env.donate_by_transfer(&cast, 40_000).await);
    env.smtp.hold(true);

    let confirmed = env.confirm(&cast.streamer, &id).await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    until_an_email_is_held(&env).await;

    let mut tx = db.begin().await.unwrap();
    let donation_id: uuid::Uuid = id.parse().unwrap();
    let locked_donation: Result<Option<uuid::Uuid>, _> =
        sqlx::query_scalar("SELECT id FROM donations WHERE id = $1 FOR UPDATE NOWAIT")
            .bind(donation_id)
            .fetch_optional(&mut *tx)
            .await;
    assert!(locked_donation.is_ok(), "{locked_donation:?}");
    let locked_outbox: Result<Vec<uuid::Uuid>, _> = sqlx::query_scalar(
        "SELECT id FROM donation_outbox WHERE donation_id = $1 FOR UPDATE NOWAIT",
    )
    .bind(donation_id)
    .fetch_all(&mut *tx)
    .await;
    assert!(
        locked_outbox.as_ref().is_ok_and(|rows| rows.len() >= 2),
        "the outbox rows are free while their email is being sent: {locked_outbox:?}"
    );
    tx.rollback().await.unwrap();
    let idle_in_transaction: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(idle_in_transaction, 0);
    env.smtp.hold(false);
}
