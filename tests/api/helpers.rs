//! Starting a real Siaran for a test: its own database (from `#[sqlx::test]`), its own Redis key
//! prefix, the real router on a random port, and a client that speaks to it over HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use siaran::config::Config;
use siaran::startup::Application;
use siaran::state::AppState;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The JWT secret every test server uses, so tests can mint tokens of their own.
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";
pub const PASSWORD: &str = "correct-horse-battery";

pub struct TestApp {
    pub addr: SocketAddr,
    /// Where the app's RTMP ingest listens.
    pub rtmp_addr: SocketAddr,
    pub client: reqwest::Client,
    pub db: PgPool,
    pub state: AppState,
    pub hls_dir: PathBuf,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = std::fs::remove_dir_all(&self.hls_dir);
    }
}

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: Uuid,
    pub username: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl TestApp {
    /// Starts the application against `db` with default settings.
    pub async fn spawn(db: PgPool) -> Self {
        Self::spawn_with(db, |_| {}).await
    }

    /// Starts the application after `customise` has adjusted the configuration.
    pub async fn spawn_with(db: PgPool, customise: impl FnOnce(&mut Config)) -> Self {
        let id = Uuid::new_v4().simple().to_string();
        let hls_dir = std::env::temp_dir().join(format!("siaran-test-hls-{id}"));
        let mut config = Config::from_args([
            "siaran",
            "--http-addr",
            "127.0.0.1:0",
            "--rtmp-addr",
            "127.0.0.1:0",
            "--env",
            "development",
            "--log-format",
            "pretty",
        ])
        .expect("test configuration");
        config.jwt_secret = Some(TEST_JWT_SECRET.to_owned());
        config.redis_prefix = format!("siaran-test-{id}");
        config.hls_dir.clone_from(&hls_dir);
        // Tests simulate clients' addresses with `X-Forwarded-For` from loopback.
        config.trusted_proxies =
            siaran::http::proxy::TrustedProxies::parse("127.0.0.1,::1").expect("loopback");
        // Tests mark streams live in SQL, with no ingest behind them: only the tests of the
        // orphan sweep want it to end such streams.
        config.ingest_stale_secs = 3600;
        customise(&mut config);
        siaran::telemetry::init_for_tests();

        let app = Application::build_with_pool(config, db.clone())
            .await
            .expect("building the application");
        let addr = app.http_addr();
        let rtmp_addr = app.rtmp_addr();
        let state = app.state().clone();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            app.run_until_stopped(async move { stop.cancelled().await })
                .await
        });
        Self {
            addr,
            rtmp_addr,
            client: reqwest::Client::new(),
            db,
            state,
            hls_dir,
            shutdown,
            server: Some(server),
        }
    }

    /// Shuts the server down as SIGTERM would and waits until it has stopped.
    pub async fn shut_down(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.expect("GET")
    }

    pub async fn get_as(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path)
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.request(Method::POST, path)
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn post_as(&self, path: &str, token: &str, body: &Value) -> Response {
        self.request(Method::POST, path)
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn patch_as(&self, path: &str, token: &str, body: &Value) -> Response {
        self.request(Method::PATCH, path)
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("PATCH")
    }

    pub async fn delete_as(&self, path: &str, token: &str) -> Response {
        self.request(Method::DELETE, path)
            .bearer_auth(token)
            .send()
            .await
            .expect("DELETE")
    }

    /// Registers `username` (email `<username>@example.com`, password [`PASSWORD`]).
    pub async fn register(&self, username: &str) -> Value {
        let response = self
            .post(
                "/api/auth/register",
                &json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}),
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "registering {username}"
        );
        response.json().await.expect("user JSON")
    }

    /// Logs in with [`PASSWORD`].
    pub async fn login(&self, login: &str) -> Session {
        let response = self
            .post(
                "/api/auth/login",
                &json!({"login": login, "password": PASSWORD}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "logging in as {login}");
        let body: Value = response.json().await.expect("token JSON");
        Session {
            id: body["user"]["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("user id"),
            username: body["user"]["username"]
                .as_str()
                .expect("username")
                .to_owned(),
            access_token: body["access_token"]
                .as_str()
                .expect("access token")
                .to_owned(),
            refresh_token: body["refresh_token"]
                .as_str()
                .expect("refresh token")
                .to_owned(),
        }
    }

    /// Registers and logs in.
    pub async fn signed_up(&self, username: &str) -> Session {
        self.register(username).await;
        self.login(username).await
    }

    /// Every event published on a stream, oldest first, as `{type, data}`, from the event log.
    pub async fn stream_events(&self, stream_id: Uuid) -> Vec<Value> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT kind, data FROM live_events WHERE stream_id = $1 ORDER BY id")
                .bind(stream_id)
                .fetch_all(&self.db)
                .await
                .expect("reading the event log");
        rows.into_iter()
            .map(|(kind, data)| {
                let data: Value = serde_json::from_str(&data).expect("event data");
                json!({"type": kind, "data": data})
            })
            .collect()
    }

    /// Makes an existing user staff.
    pub async fn make_staff(&self, user_id: Uuid) {
        sqlx::query("UPDATE users SET is_staff = true WHERE id = $1")
            .bind(user_id)
            .execute(&self.db)
            .await
            .expect("making staff");
    }
}

/// Reads a problem response, checking its media type, and returns the body.
pub async fn problem(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "status of a `{code}` problem");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(
        content_type, "application/problem+json",
        "content type of a `{code}` problem"
    );
    let body: Value = response.json().await.expect("problem JSON");
    assert_eq!(body["code"], code, "problem body: {body}");
    assert_eq!(body["status"], status.as_u16(), "problem body: {body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string() && body["type"].is_string(),
        "{body}"
    );
    body
}

/// The fields named in a validation problem, with their codes.
pub fn field_errors(problem: &Value) -> Vec<(String, String)> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    (
                        e["field"].as_str().unwrap_or_default().to_owned(),
                        e["code"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The connection URL of a test's own database, for processes the test starts (`siaran worker`,
/// a second `siaran serve`).
pub fn database_url(db: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://siaran:siaran@127.0.0.1:5432/siaran".to_owned());
    let name = db
        .connect_options()
        .get_database()
        .expect("test database name")
        .to_owned();
    let (server, _) = base
        .rsplit_once('/')
        .expect("DATABASE_URL names a database");
    format!("{server}/{name}")
}
