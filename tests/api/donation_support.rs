//! A Siaran wired to a real fake Midtrans (in-process, over HTTP on its own port) and a real
//! SMTP listener on loopback, with helpers to drive donations through them.

use std::time::Duration;

use fake_midtrans::{Sandbox, SandboxSettings};
use reqwest::StatusCode;
use serde_json::{Value, json};
use siaran::config::{Config, SmtpTls};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{Session, TestApp};
use crate::smtp_sink::SmtpSink;

pub const SERVER_KEY: &str = "SB-Mid-server-test-0123456789";
pub const CLIENT_KEY: &str = "SB-Mid-client-test-0123456789";
pub const NOTIFICATION_PATH: &str = "/api/payments/midtrans/notification";

pub struct Payments {
    pub app: TestApp,
    pub sandbox: Sandbox,
    pub smtp: SmtpSink,
    http: reqwest::Client,
}

impl Drop for Payments {
    /// Stops the workers and removes this test's Redis keys (jobs, events), so the shared Redis
    /// does not collect streams from every run. Synchronous: `Drop` cannot await.
    fn drop(&mut self) {
        self.app.state.shutdown.cancel();
        let config = &self.app.state.config;
        let Ok(client) = redis::Client::open(config.redis_url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
            return;
        };
        // Twice: a job that was finishing when the workers were told to stop may still write.
        for pass in 0..2 {
            if pass > 0 {
                std::thread::sleep(Duration::from_millis(200));
            }
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}:*", config.redis_prefix))
                .query(&mut conn)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
            }
        }
    }
}

/// A streamer with a live stream and a donor, both logged in.
pub struct Cast {
    pub streamer: Session,
    pub donor: Session,
    pub stream_id: Uuid,
}

/// Settings every payment test shares: fast jobs, no periodic sweep unless a test runs it.
pub fn fast_jobs(config: &mut Config) {
    config.jobs.workers = 2;
    config.jobs.claim_idle_secs = 4;
    config.jobs.backoff_ms = 50;
    config.jobs.max_attempts = 5;
    config.jobs.schedule_interval_secs = 3600;
}

impl Payments {
    pub async fn spawn(db: PgPool) -> Self {
        Self::spawn_with(db, |_| {}).await
    }

    /// Starts the fake Midtrans, the SMTP sink and Siaran pointed at both, then tells the fake
    /// where to send notifications.
    pub async fn spawn_with(db: PgPool, customise: impl FnOnce(&mut Config)) -> Self {
        let sandbox = Sandbox::start(SandboxSettings {
            addr: "127.0.0.1:0".parse().expect("addr"),
            server_key: SERVER_KEY.to_owned(),
            client_key: CLIENT_KEY.to_owned(),
            notification_url: None,
            retry_minute: Duration::from_millis(20),
        })
        .await
        .expect("starting the Midtrans sandbox");
        let smtp = SmtpSink::start().await;
        let sandbox_url = sandbox.url();
        let smtp_port = smtp.port;
        let app = TestApp::spawn_with(db, |config| {
            config.midtrans.server_key = Some(SERVER_KEY.to_owned());
            config.midtrans.client_key = Some(CLIENT_KEY.to_owned());
            config.midtrans.snap_url.clone_from(&sandbox_url);
            config.midtrans.api_url.clone_from(&sandbox_url);
            config.smtp.host = Some("127.0.0.1".to_owned());
            config.smtp.port = smtp_port;
            config.smtp.tls = SmtpTls::None;
            config.smtp.from = "Siaran <no-reply@siaran.test>".to_owned();
            fast_jobs(config);
            customise(config);
        })
        .await;
        sandbox.set_notification_url(app.url(NOTIFICATION_PATH));
        Self {
            app,
            sandbox,
            smtp,
            http: reqwest::Client::new(),
        }
    }

    /// A streamer (with a payout account) streaming live, and a donor.
    pub async fn cast(&self) -> Cast {
        let streamer = self.app.signed_up("andi").await;
        let donor = self.app.signed_up("rina").await;
        let stream_id = self.live_stream(&streamer).await;
        let payout = self
            .app
            .patch_as(
                "/api/users/me/payout",
                &streamer.access_token,
                &json!({"bank_name": "BCA", "account_number": "1234567890", "account_holder": "Andi Wijaya"}),
            )
            .await;
        assert_eq!(payout.status(), StatusCode::OK);
        Cast {
            streamer,
            donor,
            stream_id,
        }
    }

    /// A live stream of `streamer` (written directly: streams are another feature's API).
    pub async fn live_stream(&self, streamer: &Session) -> Uuid {
        sqlx::query_scalar(
            "INSERT INTO streams (streamer_id, title, is_active, started_at)
             VALUES ($1, 'Main bareng', true, now()) RETURNING id",
        )
        .bind(streamer.id)
        .fetch_one(&self.app.db)
        .await
        .expect("inserting a live stream")
    }

    /// GETs `path` as `session` and reads the JSON body.
    pub async fn get_json(&self, path: &str, session: &Session) -> Value {
        self.app
            .get_as(path, &session.access_token)
            .await
            .json()
            .await
            .expect("JSON body")
    }

    /// A single number from the test's database (`SELECT count(*) ...`).
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.app.db)
            .await
            .expect("counting")
    }

    /// `POST /api/donations/{id}/{decision}` (`confirm` or `reject`) as `session`.
    pub async fn decide(
        &self,
        session: &Session,
        id: &str,
        decision: &str,
        body: &Value,
    ) -> reqwest::Response {
        self.app
            .post_as(
                &format!("/api/donations/{id}/{decision}"),
                &session.access_token,
                body,
            )
            .await
    }

    pub async fn confirm(&self, session: &Session, id: &str) -> reqwest::Response {
        self.decide(session, id, "confirm", &json!({})).await
    }

    /// Moves a donation's expiry into the past by `ago` (a PostgreSQL interval).
    pub async fn backdate_expiry(&self, id: &str, ago: &str) {
        sqlx::query("UPDATE donations SET expires_at = now() - $2::interval WHERE id = $1::uuid")
            .bind(id)
            .bind(ago)
            .execute(&self.app.db)
            .await
            .expect("backdating the expiry");
    }

    pub async fn donate(
        &self,
        donor: &Session,
        stream_id: Uuid,
        body: &Value,
    ) -> reqwest::Response {
        self.app
            .post_as(
                &format!("/api/streams/{stream_id}/donations"),
                &donor.access_token,
                body,
            )
            .await
    }

    /// Donates through Midtrans and returns the created body.
    pub async fn donate_online(&self, cast: &Cast, amount: i64) -> Value {
        let response = self
            .donate(
                &cast.donor,
                cast.stream_id,
                &json!({"amount": amount, "message": "Semangat!", "payment_method": "midtrans"}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.expect("donation JSON")
    }

    /// Donates by bank transfer and returns the created body.
    pub async fn donate_by_transfer(&self, cast: &Cast, amount: i64) -> Value {
        let response = self
            .donate(
                &cast.donor,
                cast.stream_id,
                &json!({"amount": amount, "message": "Transfer ya", "payment_method": "bank_transfer"}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.expect("donation JSON")
    }

    fn sandbox_request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.sandbox.url()))
            .basic_auth(SERVER_KEY, Some(""))
    }

    /// What a buyer (or Midtrans) does on the payment page: `pay`, `card`, `challenge`,
    /// `bank_transfer`, `deny`, `expire`, `cancel`, `accept_challenge`, `refund`.
    pub async fn midtrans_action(&self, order_id: &str, action: &str) -> Value {
        let response = self
            .sandbox_request(
                reqwest::Method::POST,
                &format!("/_sandbox/orders/{order_id}/actions/{action}"),
            )
            .send()
            .await
            .expect("sandbox action");
        assert!(
            response.status().is_success(),
            "{action}: {}",
            response.status()
        );
        response.json().await.expect("sandbox JSON")
    }

    /// Sends a notification now (duplicates, stale statuses, forged signatures) and returns the
    /// HTTP statuses Siaran answered.
    pub async fn notify(&self, order_id: &str, body: &Value) -> Vec<Option<u16>> {
        let response: Value = self
            .sandbox_request(
                reqwest::Method::POST,
                &format!("/_sandbox/orders/{order_id}/notifications"),
            )
            .json(body)
            .send()
            .await
            .expect("sandbox notify")
            .json()
            .await
            .expect("sandbox JSON");
        response["responses"]
            .as_array()
            .expect("responses")
            .iter()
            .map(|s| s.as_u64().and_then(|s| u16::try_from(s).ok()))
            .collect()
    }

    /// Changes the amount the fake Midtrans holds for an order.
    pub async fn tamper_amount(&self, order_id: &str, gross_amount: i64) {
        let response = self
            .sandbox_request(
                reqwest::Method::PATCH,
                &format!("/_sandbox/orders/{order_id}"),
            )
            .json(&json!({"gross_amount": gross_amount}))
            .send()
            .await
            .expect("sandbox patch");
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    /// The sandbox's record of an order (with the notification delivery log).
    pub async fn midtrans_order(&self, order_id: &str) -> Value {
        self.sandbox_request(
            reqwest::Method::GET,
            &format!("/_sandbox/orders/{order_id}"),
        )
        .send()
        .await
        .expect("sandbox order")
        .json()
        .await
        .expect("sandbox JSON")
    }

    pub async fn status_of(&self, donation_id: &str) -> String {
        sqlx::query_scalar("SELECT status FROM donations WHERE id = $1::uuid")
            .bind(donation_id)
            .fetch_one(&self.app.db)
            .await
            .expect("donation status")
    }

    /// Waits until the donation has `status` (panics after 15 s).
    pub async fn wait_for_status(&self, donation_id: &str, status: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let now = self.status_of(donation_id).await;
            if now == status {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "donation {donation_id} stayed {now}, expected {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every stored notification is processed and every outbox row delivered or
    /// given up on, and the queue is empty: after this, nothing more is going to happen.
    pub async fn settle(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let (notifications, outbox): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT count(*) FROM payment_notifications WHERE processed_at IS NULL),
                        (SELECT count(*) FROM donation_outbox WHERE delivered_at IS NULL)",
            )
            .fetch_one(&self.app.db)
            .await
            .expect("counting pending work");
            let backlog = self.app.state.jobs.backlog().await.unwrap_or(u64::MAX);
            if notifications == 0 && outbox == 0 && backlog == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "work left: {notifications} notifications, {outbox} outbox rows, {backlog} jobs"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `count` notifications were received and processed, then for the rest to settle.
    pub async fn wait_for_processed(&self, count: i64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let processed: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM payment_notifications WHERE processed_at IS NOT NULL",
            )
            .fetch_one(&self.app.db)
            .await
            .expect("counting notifications");
            if processed >= count {
                return self.settle().await;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{processed} of {count} notifications processed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every status change recorded, oldest first, as (from, to).
    pub async fn transitions(&self) -> Vec<(String, String)> {
        sqlx::query_as("SELECT from_status, to_status FROM donation_transitions ORDER BY id")
            .fetch_all(&self.app.db)
            .await
            .expect("reading transitions")
    }

    /// `donation.received` events published on a stream, oldest first.
    pub async fn donation_events(&self, stream_id: Uuid) -> Vec<Value> {
        published_events(&self.app, stream_id)
            .await
            .into_iter()
            .filter(|e| e["type"] == "donation.received")
            .collect()
    }
}

/// Every event published on a stream, oldest first, as `{type, data}`.
pub async fn published_events(app: &TestApp, stream_id: Uuid) -> Vec<Value> {
    app.stream_events(stream_id).await
}

/// A local port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("bound address").port()
}

/// The order id of a created donation (its `transaction_id`).
pub fn order_id(created: &Value) -> String {
    created["donation"]["transaction_id"]
        .as_str()
        .expect("transaction_id")
        .to_owned()
}

pub fn donation_id(created: &Value) -> String {
    created["donation"]["id"].as_str().expect("id").to_owned()
}
