//! Two real `siaran serve` processes sharing PostgreSQL and Redis, as behind a load balancer:
//! events cross between them, viewer counts add up, a crashed process stops counting, and
//! events flow again after Redis restarts (a private `redis-server`, never the shared one).

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;

use crate::helpers::{TEST_JWT_SECRET, database_url};
use crate::ws::{Ws, create_stream, quick_user};

/// A `siaran serve` child process, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(db: &PgPool, redis_url: &str, prefix: &str, viewers_interval: u64) -> Self {
        let hls_dir = std::env::temp_dir().join(format!("siaran-cluster-hls-{}", Uuid::new_v4()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_siaran"))
            .arg("serve")
            .env("DATABASE_URL", database_url(db))
            .env("REDIS_URL", redis_url)
            .env("SIARAN_REDIS_PREFIX", prefix)
            .env("SIARAN_HTTP_ADDR", "127.0.0.1:0")
            .env("SIARAN_RTMP_ADDR", "127.0.0.1:0")
            .env("SIARAN_JWT_SECRET", TEST_JWT_SECRET)
            .env("SIARAN_HLS_DIR", &hls_dir)
            .env("SIARAN_DB_MAX_CONNECTIONS", "4")
            .env("SIARAN_VIEWERS_INTERVAL", viewers_interval.to_string())
            .env("SIARAN_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("starting siaran serve");
        let stdout = child.stdout.take().expect("stdout");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (found, listening) = tokio::sync::oneshot::channel();
        let kept = Arc::clone(&logs);
        tokio::spawn(async move {
            let mut found = Some(found);
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(entry) = serde_json::from_str::<Value>(&line)
                    && entry["message"] == "HTTP listening"
                    && let Some(addr) = entry["addr"].as_str().and_then(|a| a.parse().ok())
                    && let Some(found) = found.take()
                {
                    let _ = found.send(addr);
                }
                kept.lock().expect("log lock").push(line);
            }
        });
        let addr: SocketAddr = tokio::time::timeout(Duration::from_secs(60), listening)
            .await
            .expect("the server did not start listening in time")
            .expect("the server exited before listening");
        Self { child, addr, logs }
    }

    /// Kills the process as a crash would (SIGKILL): no goodbye, no cleanup.
    async fn crash(&mut self) {
        self.child.kill().await.expect("killing the server");
    }

    fn logged(&self, needle: &str) -> bool {
        self.logs
            .lock()
            .expect("log lock")
            .iter()
            .any(|l| l.contains(needle))
    }
}

/// A `redis-server` of this test's own, on a free port, that the test may stop and restart.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut redis = Self { port, child: None };
        redis.spawn().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--logfile", ""])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting a private redis-server (scripts/setup.sh installs it)");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).expect("redis URL");
        for _ in 0..100 {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the private redis-server did not come up");
    }

    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("stopping redis-server");
        }
    }
}

async fn wait_for_count(socket: &mut Ws, count: u64) -> Value {
    loop {
        let message = socket.next_of("viewers.count").await;
        if message["data"]["count"] == count {
            return message;
        }
    }
}

fn prefix() -> String {
    format!("siaran-cluster-{}", Uuid::new_v4().simple())
}

fn shared_redis() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_comment_posted_on_one_server_reaches_sockets_on_the_other(db: PgPool) {
    let prefix = prefix();
    let a = Server::start(&db, &shared_redis(), &prefix, 3600).await;
    let b = Server::start(&db, &shared_redis(), &prefix, 3600).await;
    let (streamer, _) = quick_user(&db, "andi").await;
    let stream_id = create_stream(&db, streamer, true).await;
    let (rina, token) = quick_user(&db, "rina").await;
    let mut on_b = Ws::connect(b.addr, &format!("/ws/stream/{stream_id}/")).await;
    let mut commenter_on_b =
        Ws::connect(b.addr, &format!("/ws/stream/{stream_id}/?token={token}")).await;
    let mut on_a = Ws::connect(a.addr, &format!("/ws/stream/{stream_id}/")).await;
    for socket in [&mut on_b, &mut commenter_on_b, &mut on_a] {
        socket.next_json().await;
    }

    let response = reqwest::Client::new()
        .post(format!(
            "http://{}/api/streams/{stream_id}/comments",
            a.addr
        ))
        .bearer_auth(&token)
        .json(&json!({"content": "posted on A"}))
        .send()
        .await
        .unwrap();
    let over_rest = on_b.next_json().await;
    commenter_on_b
        .send_json(&json!({"type": "comment.create", "content": "posted on B's socket"}))
        .await;
    let over_socket = on_a.next_not_count().await;
    let over_socket = if over_socket["data"]["content"] == "posted on A" {
        on_a.next_not_count().await
    } else {
        over_socket
    };

    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(over_rest["type"], "comment.created");
    assert_eq!(over_rest["data"]["content"], "posted on A");
    assert_eq!(over_rest["data"]["author"]["id"], rina.to_string());
    assert_eq!(over_socket["data"]["content"], "posted on B's socket");
    assert_eq!(over_socket["id"], 2);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn comments_posted_on_both_servers_at_once_arrive_everywhere_once_and_in_order(db: PgPool) {
    let prefix = prefix();
    let a = Server::start(&db, &shared_redis(), &prefix, 3600).await;
    let b = Server::start(&db, &shared_redis(), &prefix, 3600).await;
    let (streamer, _) = quick_user(&db, "andi").await;
    let stream_id = create_stream(&db, streamer, true).await;
    let path = format!("/ws/stream/{stream_id}/");
    let mut on_a = Ws::connect(a.addr, &path).await;
    let mut on_b = Ws::connect(b.addr, &path).await;
    on_a.next_json().await;
    on_b.next_json().await;
    let mut tokens = Vec::new();
    for n in 0..20 {
        tokens.push(quick_user(&db, &format!("viewer{n}")).await.1);
    }

    let http = reqwest::Client::new();
    let mut posts = Vec::new();
    for (n, token) in tokens.iter().enumerate() {
        let server = if n % 2 == 0 { a.addr } else { b.addr };
        for k in 0..5 {
            posts.push(
                http.post(format!("http://{server}/api/streams/{stream_id}/comments"))
                    .bearer_auth(token)
                    .json(&json!({"content": format!("{n}-{k}")}))
                    .send(),
            );
        }
    }
    let statuses: Vec<StatusCode> = futures::future::join_all(posts)
        .await
        .into_iter()
        .map(|r| r.expect("POST").status())
        .collect();

    assert!(
        statuses.iter().all(|s| *s == StatusCode::CREATED),
        "{statuses:?}"
    );
    for socket in [&mut on_a, &mut on_b] {
        let mut ids = Vec::new();
        while ids.len() < 100 {
            ids.push(socket.next_not_count().await["id"].as_u64().unwrap());
        }
        assert_eq!(ids, (1..=100).collect::<Vec<_>>());
    }
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn viewer_counts_add_up_across_servers_and_forget_a_crashed_one(db: PgPool) {
    let prefix = prefix();
    let a = Server::start(&db, &shared_redis(), &prefix, 1).await;
    let mut b = Server::start(&db, &shared_redis(), &prefix, 1).await;
    let (streamer, _) = quick_user(&db, "andi").await;
    let stream_id = create_stream(&db, streamer, true).await;
    let path = format!("/ws/stream/{stream_id}/");
    let mut watcher = Ws::connect(a.addr, &path).await;
    let mut also_on_a = Ws::connect(a.addr, &path).await;
    let mut on_b = Ws::connect(b.addr, &path).await;
    for socket in [&mut watcher, &mut also_on_a, &mut on_b] {
        socket.next_json().await;
    }

    let summed = wait_for_count(&mut watcher, 3).await;
    let seen_on_b = wait_for_count(&mut on_b, 3).await;
    let crashed_at = tokio::time::Instant::now();
    b.crash().await;
    let after_crash = wait_for_count(&mut watcher, 2).await;

    assert_eq!(summed["type"], "viewers.count");
    assert_eq!(seen_on_b["stream_id"], stream_id.to_string());
    assert!(after_crash["id"].as_u64() > summed["id"].as_u64());
    assert!(
        crashed_at.elapsed() < Duration::from_secs(60),
        "a crashed server's viewers stop counting within a minute"
    );
    drop(also_on_a);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn events_flow_again_after_redis_restarts(db: PgPool) {
    let mut redis = PrivateRedis::start().await;
    let prefix = prefix();
    let a = Server::start(&db, &redis.url(), &prefix, 3600).await;
    let b = Server::start(&db, &redis.url(), &prefix, 3600).await;
    let (streamer, _) = quick_user(&db, "andi").await;
    let stream_id = create_stream(&db, streamer, true).await;
    let (_, token) = quick_user(&db, "rina").await;
    let http = reqwest::Client::new();
    let post = |content: &'static str| {
        http.post(format!(
            "http://{}/api/streams/{stream_id}/comments",
            a.addr
        ))
        .bearer_auth(&token)
        .json(&json!({"content": content}))
        .send()
    };
    let mut on_b = Ws::connect(b.addr, &format!("/ws/stream/{stream_id}/")).await;
    on_b.next_json().await;
    post("before").await.unwrap();
    let before = on_b.next_json().await;

    redis.stop().await;
    let during = post("while Redis is down").await.unwrap();
    let listed = http
        .get(format!(
            "http://{}/api/streams/{stream_id}/comments",
            a.addr
        ))
        .send()
        .await
        .unwrap();
    redis.spawn().await;
    let caught_up = on_b.next_json().await;
    // A's own Redis connection comes back on use; wait until it answers before posting again.
    for _ in 0..100 {
        let ready = http
            .get(format!("http://{}/readyz", a.addr))
            .send()
            .await
            .unwrap();
        if ready.status() == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    post("after").await.unwrap();
    let after = on_b.next_json().await;

    assert_eq!(before["data"]["content"], "before");
    assert_eq!(
        during.status(),
        StatusCode::CREATED,
        "the API keeps serving without Redis"
    );
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(caught_up["data"]["content"], "while Redis is down");
    assert_eq!(caught_up["id"], 2);
    assert_eq!(after["data"]["content"], "after");
    assert_eq!(after["id"], 3);
    assert!(
        b.logged("lost the Redis subscription"),
        "B says what happened"
    );
    assert!(b.logged("Redis subscription restored"));
}
