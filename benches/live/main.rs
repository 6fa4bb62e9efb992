//! Live fan-out bench (`scripts/bench.sh live`, see benches/README.md).
//!
//! A load generator opens N WebSockets to one stream of a real `siaran serve` (release build,
//! a database of its own, the shared Redis), posts comments over the REST API at a fixed rate,
//! and measures, per delivery, the time from starting the POST to the message arriving on each
//! socket; plus the delivery ratio and the server's memory per idle connection. In the same run
//! the same generator measures a bare in-memory broadcaster (this binary with `--bare-server`:
//! an axum WebSocket fan-out over a `tokio::sync::broadcast`, nothing else) as the floor of what
//! this machine shows with the generator beside the server, and prints Siaran's p99 as a ratio
//! of the floor's. Then it measures comment posting: an open-loop fixed rate (latency at that
//! rate) and a closed loop (the most requests per second), against both.
//!
//! Options: `--sizes 1000,5000,10000 --rate 10 --seconds 15 --post-rate 2000 --post-seconds 10`
//! (`--sizes none` measures posting only).

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const JWT_SECRET: &str = "bench-secret-bench-secret-bench-secret-0123456789";
/// Users the comments are posted as (each may post 5 per 10 s).
const USERS: i64 = 20_000;
/// Sockets connecting at once.
const CONNECT_CONCURRENCY: usize = 256;
/// Seconds of untimed comments before each measurement.
const WARM_UP_SECONDS: u64 = 2;
/// How long deliveries may trail the last post.
const DRAIN: Duration = Duration::from_secs(15);
/// Comment text after the sequence number, to give messages a realistic size.
const FILLER: &str = "Mantap streamnya, salam dari Bandung! Semangat terus ya kak";

fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[derive(Debug, Clone)]
struct Settings {
    sizes: Vec<usize>,
    rate: u32,
    seconds: u32,
    post_rate: u32,
    post_seconds: u32,
}

impl Settings {
    fn parse(args: &[String]) -> anyhow::Result<Self> {
        let mut s = Self {
            sizes: vec![1_000, 5_000, 10_000],
            rate: 10,
            seconds: 15,
            post_rate: 2_000,
            post_seconds: 10,
        };
        let mut it = args.iter().skip(1);
        while let Some(arg) = it.next() {
            let mut value = || it.next().context("an option needs a value");
            match arg.as_str() {
                "--sizes" => {
                    s.sizes = value()?
                        .split(',')
                        .filter(|n| !n.is_empty() && *n != "none")
                        .map(str::parse)
                        .collect::<Result<_, _>>()?;
                }
                "--rate" => s.rate = value()?.parse()?,
                "--seconds" => s.seconds = value()?.parse()?,
                "--post-rate" => s.post_rate = value()?.parse()?,
                "--post-seconds" => s.post_seconds = value()?.parse()?,
                // cargo bench passes --bench to harness-less benches.
                "--bench" => {}
                other => bail!("unknown option {other}"),
            }
        }
        Ok(s)
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--bare-server") {
        return bare::serve();
    }
    let settings = Settings::parse(&args)?;
    // Both the generator and the servers it starts (which inherit it) need one descriptor per
    // socket: raise this process's soft limit to the hard one, nothing global.
    let nofile = rlimit::increase_nofile_limit(u64::MAX).context("raising RLIMIT_NOFILE")?;
    tokio::runtime::Runtime::new()?.block_on(run(settings, nofile))
}

async fn run(settings: Settings, nofile: u64) -> anyhow::Result<()> {
    say(format!(
        "live bench: sizes {:?}, {} comments/s for {} s; posting {} req/s for {} s; open files {nofile}; load {}",
        settings.sizes,
        settings.rate,
        settings.seconds,
        settings.post_rate,
        settings.post_seconds,
        load()
    ));
    if let Some(n) = settings.sizes.iter().find(|n| (**n as u64) + 512 > nofile) {
        bail!("{n} sockets need more open files than the hard limit allows ({nofile})");
    }
    let db = BenchDb::create().await?;
    let result = bench(&settings, &db).await;
    db.destroy().await;
    result
}

async fn bench(settings: &Settings, db: &BenchDb) -> anyhow::Result<()> {
    let fixture = Fixture::create(&db.pool).await?;
    let mut summary = Vec::new();
    for &n in &settings.sizes {
        let bare = Server::bare().await?;
        let siaran = Server::siaran(&db.url).await?;
        let floor = fanout(&Target::bare(&bare), n, settings).await?;
        let ours = fanout(&Target::siaran(&siaran, &fixture), n, settings).await?;
        say(format!("N = {n} (load {})", load()));
        say(floor.row("bare broadcaster"));
        say(ours.row("siaran"));
        let ratio = ours.p99_ms() / floor.p99_ms().max(0.001);
        say(format!(
            "  p99 ratio siaran/bare = {ratio:.2} (target ≤ 1.25); siaran delivered {:.4}%, {:.1} KiB per idle connection (target ≤ 20 KB)",
            ours.delivery_ratio() * 100.0,
            ours.bytes_per_connection() / 1024.0
        ));
        summary.push((n, floor, ours, ratio));
        siaran.stop().await;
        bare.stop().await;
    }

    let bare = Server::bare().await?;
    let siaran = Server::siaran(&db.url).await?;
    let floor_post = posting(&Target::bare(&bare), settings).await?;
    let ours_post = posting(&Target::siaran(&siaran, &fixture), settings).await?;
    siaran.stop().await;
    bare.stop().await;

    say(String::new());
    say(format!("summary (load {})", load()));
    say(
        "  N       | bare p50/p99 ms   | siaran p50/p99 ms | p99 ratio | siaran delivered | siaran KiB/conn",
    );
    for (n, floor, ours, ratio) in &summary {
        say(format!(
            "  {n:<7} | {:>7.1} / {:>7.1} | {:>7.1} / {:>7.1} | {ratio:>9.2} | {:>15.4}% | {:>8.1}",
            floor.p50_ms(),
            floor.p99_ms(),
            ours.p50_ms(),
            ours.p99_ms(),
            ours.delivery_ratio() * 100.0,
            ours.bytes_per_connection() / 1024.0
        ));
    }
    say(floor_post.row("bare POST /publish"));
    say(ours_post.row("siaran POST comments"));
    Ok(())
}

/// A database of the bench's own, dropped at the end.
struct BenchDb {
    admin: PgPool,
    name: String,
    url: String,
    pool: PgPool,
}

impl BenchDb {
    async fn create() -> anyhow::Result<Self> {
        let base = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://siaran:siaran@127.0.0.1:5432/siaran".to_owned());
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&base)
            .await?;
        let name = format!("siaran_bench_{}", std::process::id());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .context("creating the bench database (the role needs CREATEDB)")?;
        let mut url = reqwest::Url::parse(&base)?;
        url.set_path(&format!("/{name}"));
        let url = url.to_string();
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await?;
        siaran::db::MIGRATOR.run(&pool).await?;
        Ok(Self {
            admin,
            name,
            url,
            pool,
        })
    }

    async fn destroy(&self) {
        self.pool.close().await;
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = sqlx::query(&drop).execute(&self.admin).await {
            say(format!("could not drop {}: {e}", self.name));
        }
    }
}

/// A live stream and many users with access tokens.
struct Fixture {
    stream_id: Uuid,
    tokens: Arc<Vec<String>>,
    next_user: AtomicUsize,
}

impl Fixture {
    async fn create(db: &PgPool) -> anyhow::Result<Arc<Self>> {
        let streamer: Uuid = sqlx::query_scalar(
            "INSERT INTO users (username, email, password_hash, is_streamer)
             VALUES ('benchstreamer', 'benchstreamer@bench.local', 'x', true) RETURNING id",
        )
        .fetch_one(db)
        .await?;
        let stream_id: Uuid = sqlx::query_scalar(
            "INSERT INTO streams (streamer_id, title, is_active, started_at)
             VALUES ($1, 'Bench stream', true, now()) RETURNING id",
        )
        .bind(streamer)
        .fetch_one(db)
        .await?;
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "INSERT INTO users (username, email, password_hash)
             SELECT 'bench' || g, 'bench' || g || '@bench.local', 'x' FROM generate_series(1, $1) g
             RETURNING id",
        )
        .bind(USERS)
        .fetch_all(db)
        .await?;
        let keys = siaran::auth::jwt::JwtKeys::new(JWT_SECRET.as_bytes());
        let tokens = ids.into_iter().map(|id| keys.issue(id)).collect();
        Ok(Arc::new(Self {
            stream_id,
            tokens: Arc::new(tokens),
            next_user: AtomicUsize::new(0),
        }))
    }

    /// Users in turn, so that none reaches the rate limit.
    fn token(&self) -> &str {
        let i = self.next_user.fetch_add(1, Ordering::Relaxed) % self.tokens.len();
        &self.tokens[i]
    }
}

/// A server process the bench started; killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    pid: u32,
    /// What the server logged after it started listening (warnings and errors only).
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    async fn siaran(database_url: &str) -> anyhow::Result<Self> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_siaran"));
        command
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env(
                "SIARAN_REDIS_PREFIX",
                format!("siaran-bench-{}", Uuid::new_v4().simple()),
            )
            .env("SIARAN_HTTP_ADDR", "127.0.0.1:0")
            .env("SIARAN_RTMP_ADDR", "127.0.0.1:0")
            .env("SIARAN_JWT_SECRET", JWT_SECRET)
            .env("SIARAN_LOG_FORMAT", "json")
            .env(
                "SIARAN_HLS_DIR",
                std::env::temp_dir().join("siaran-bench-hls"),
            )
            .env("RUST_LOG", "warn,siaran::startup=info");
        Self::start(command, |line| {
            let entry: Value = serde_json::from_str(line).ok()?;
            (entry["message"] == "HTTP listening")
                .then(|| entry["addr"].as_str()?.parse().ok())
                .flatten()
        })
        .await
    }

    async fn bare() -> anyhow::Result<Self> {
        let mut command = Command::new(std::env::current_exe()?);
        command.arg("--bare-server");
        Self::start(command, |line| {
            line.strip_prefix("listening ")?.parse().ok()
        })
        .await
    }

    async fn start(
        mut command: Command,
        listening: impl Fn(&str) -> Option<SocketAddr> + Send + 'static,
    ) -> anyhow::Result<Self> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting a server")?;
        let pid = child.id().context("server pid")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let (found, addr) = tokio::sync::oneshot::channel();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = Arc::clone(&log);
        tokio::spawn(async move {
            let mut found = Some(found);
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = listening(&line)
                    && let Some(found) = found.take()
                {
                    let _ = found.send(addr);
                } else if let Ok(mut kept) = kept.lock()
                    && kept.len() < 20
                {
                    kept.push(line);
                }
            }
        });
        let addr = tokio::time::timeout(Duration::from_secs(60), addr)
            .await
            .context("the server did not start listening")??;
        Ok(Self {
            child,
            addr,
            pid,
            log,
        })
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
        if let Ok(log) = self.log.lock()
            && !log.is_empty()
        {
            say(format!("  server {} logged:", self.addr));
            for line in log.iter() {
                say(format!("    {line}"));
            }
        }
    }
}

/// What the generator talks to.
#[derive(Clone)]
struct Target {
    name: &'static str,
    addr: SocketAddr,
    socket_path: String,
    pid: u32,
    fixture: Option<Arc<Fixture>>,
}

impl Target {
    fn bare(server: &Server) -> Self {
        Self {
            name: "bare",
            addr: server.addr,
            socket_path: "/ws".to_owned(),
            pid: server.pid,
            fixture: None,
        }
    }

    fn siaran(server: &Server, fixture: &Arc<Fixture>) -> Self {
        Self {
            name: "siaran",
            addr: server.addr,
            socket_path: format!("/ws/stream/{}/", fixture.stream_id),
            pid: server.pid,
            fixture: Some(Arc::clone(fixture)),
        }
    }

    /// The server's resident memory, bytes.
    fn rss(&self) -> u64 {
        rss_of(self.pid)
    }

    /// Posts comment number `seq`: a comment through Siaran's API, or for the bare server a
    /// message of the same shape and size as the `comment.created` Siaran would send.
    fn post(&self, client: &reqwest::Client, seq: u64) -> reqwest::RequestBuilder {
        let content = format!("bench {seq} {FILLER}");
        match &self.fixture {
            Some(fixture) => client
                .post(format!(
                    "http://{}/api/streams/{}/comments",
                    self.addr, fixture.stream_id
                ))
                .bearer_auth(fixture.token())
                .json(&serde_json::json!({ "content": content })),
            None => {
                let id = Uuid::new_v4();
                let now = chrono::Utc::now();
                let body = serde_json::json!({
                    "type": "comment.created", "id": seq, "ts": now, "stream_id": id,
                    "data": {"id": Uuid::new_v4(), "stream_id": id,
                             "author": {"id": Uuid::new_v4(), "username": "bench12345"},
                             "content": content, "created_at": now}
                });
                client
                    .post(format!("http://{}/publish", self.addr))
                    .body(body.to_string())
            }
        }
    }
}

fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// The comment number in a message, if it is one of the bench's.
fn sequence(text: &str) -> Option<usize> {
    let start = text.find("bench ")? + "bench ".len();
    let digits = text[start..].split(' ').next()?;
    digits.parse().ok()
}

/// Latency percentiles over microsecond samples.
fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[rank.min(sorted.len() - 1)]) / 1000.0
}

struct Fanout {
    sockets: usize,
    connected: usize,
    dropped: usize,
    posted: u64,
    failed_posts: u64,
    delivered: u64,
    latencies: Vec<u32>,
    idle_bytes: f64,
    request_p50_ms: f64,
    request_p99_ms: f64,
    /// The comments that took longest to reach their last socket.
    slowest: String,
}

impl Fanout {
    fn p50_ms(&self) -> f64 {
        percentile(&self.latencies, 50.0)
    }
    fn p99_ms(&self) -> f64 {
        percentile(&self.latencies, 99.0)
    }
    fn max_ms(&self) -> f64 {
        percentile(&self.latencies, 100.0)
    }
    fn delivery_ratio(&self) -> f64 {
        let expected = self.posted * self.sockets as u64;
        if expected == 0 {
            0.0
        } else {
            self.delivered as f64 / expected as f64
        }
    }
    fn bytes_per_connection(&self) -> f64 {
        self.idle_bytes
    }
    fn row(&self, name: &str) -> String {
        format!(
            "  {name:<17} connected {}/{} | posted {} (failed {}) | delivered {}/{} = {:.4}% | latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms | {:.1} KiB/conn idle | dropped {}\n    requests p50 {:.1} ms, p99 {:.1} ms; slowest: {}",
            self.connected,
            self.sockets,
            self.posted,
            self.failed_posts,
            self.delivered,
            self.posted * self.sockets as u64,
            self.delivery_ratio() * 100.0,
            self.p50_ms(),
            self.p99_ms(),
            self.max_ms(),
            self.idle_bytes / 1024.0,
            self.dropped,
            self.request_p50_ms,
            self.request_p99_ms,
            self.slowest,
        )
    }
}

fn client_config() -> WebSocketConfig {
    // tungstenite's default 128 KiB read buffer per client would make the generator, not the
    // server, the memory problem at 10,000 sockets.
    WebSocketConfig::default().read_buffer_size(4096)
}

/// N sockets on the target, comments at a fixed rate, every delivery timed.
async fn fanout(target: &Target, n: usize, settings: &Settings) -> anyhow::Result<Fanout> {
    let url = format!("ws://{}{}", target.addr, target.socket_path);
    let total = u64::from(settings.rate) * u64::from(settings.seconds);
    // A few comments first, untimed: the first requests of a fresh process pay for connection
    // pools and caches, which is start-up cost, not delivery.
    let warm_up = u64::from(settings.rate) * WARM_UP_SECONDS;
    let epoch = Instant::now();
    let post_times: Arc<Vec<AtomicU64>> = Arc::new(
        (0..=warm_up + total + 1)
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    let delivered = Arc::new(AtomicU64::new(0));
    let connected = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = target.rss();

    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        let (url, post_times, delivered, connected, failed, stop, gate) = (
            url.clone(),
            Arc::clone(&post_times),
            Arc::clone(&delivered),
            Arc::clone(&connected),
            Arc::clone(&failed),
            stop.clone(),
            Arc::clone(&gate),
        );
        sockets.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            let socket = tokio_tungstenite::connect_async_with_config(url, Some(client_config()), false).await;
            drop(permit);
            let Ok((mut socket, _)) = socket else {
                failed.fetch_add(1, Ordering::Relaxed);
                return (Vec::new(), false);
            };
            connected.fetch_add(1, Ordering::Relaxed);
            let mut latencies = Vec::new();
            let ended_early = loop {
                tokio::select! {
                    () = stop.cancelled() => break false,
                    message = socket.next() => match message {
                        Some(Ok(Message::Text(text))) => {
                            if let Some(seq) = sequence(text.as_str()) {
                                let posted = post_times.get(seq).map_or(0, |t| t.load(Ordering::Relaxed));
                                if posted > 0 {
                                    let now = epoch.elapsed().as_nanos() as u64;
                                    let micros = (now.saturating_sub(posted) / 1000) as u32;
                                    latencies.push((seq as u32, micros));
                                    delivered.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => break true,
                    }
                }
            };
            (latencies, ended_early)
        }));
    }
    let connect_started = Instant::now();
    while connected.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < n {
        if connect_started.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_time = connect_started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = target.rss();
    let live = connected.load(Ordering::Relaxed);
    say(format!(
        "  {}: {live}/{n} sockets connected in {:.1} s, server RSS {:.0} → {:.0} MiB",
        target.name,
        connect_time.as_secs_f64(),
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0
    ));

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let warmed = post_at_rate(
        target,
        &client,
        settings.rate,
        WARM_UP_SECONDS as u32,
        1,
        None,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let posts = post_at_rate(
        target,
        &client,
        settings.rate,
        settings.seconds,
        warm_up + 1,
        Some((&post_times, epoch)),
    )
    .await;
    if warmed.failed > 0 {
        say(format!(
            "  {}: {} warm-up posts failed {:?}",
            target.name, warmed.failed, warmed.statuses
        ));
    }
    let expected = posts.ok * live as u64;
    let drain_started = Instant::now();
    while delivered.load(Ordering::Relaxed) < expected && drain_started.elapsed() < DRAIN {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let mut latencies = Vec::new();
    let mut slowest_by_seq: HashMap<u32, u32> = HashMap::new();
    let mut dropped = 0;
    for socket in sockets {
        let (deliveries, ended_early) = socket.await?;
        for (seq, micros) in deliveries {
            latencies.push(micros);
            let slowest = slowest_by_seq.entry(seq).or_default();
            *slowest = (*slowest).max(micros);
        }
        dropped += usize::from(ended_early);
    }
    latencies.sort_unstable();
    let mut slowest: Vec<(u32, u32)> = slowest_by_seq.into_iter().collect();
    slowest.sort_unstable_by_key(|(_, micros)| std::cmp::Reverse(*micros));
    let slowest = slowest
        .iter()
        .take(3)
        .map(|(seq, micros)| {
            let post = posts
                .by_seq
                .get(&u64::from(*seq))
                .copied()
                .unwrap_or_default();
            format!(
                "#{seq}: request {:.1} ms, last socket {:.1} ms",
                f64::from(post) / 1000.0,
                f64::from(*micros) / 1000.0
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Fanout {
        sockets: n,
        connected: live,
        dropped,
        posted: posts.ok,
        failed_posts: posts.failed,
        delivered: delivered.load(Ordering::Relaxed),
        latencies,
        idle_bytes: rss_after.saturating_sub(rss_before) as f64 / n.max(1) as f64,
        request_p50_ms: percentile(&posts.latencies, 50.0),
        request_p99_ms: percentile(&posts.latencies, 99.0),
        slowest,
    })
}

struct Posts {
    ok: u64,
    failed: u64,
    statuses: HashMap<u16, u64>,
    latencies: Vec<u32>,
    elapsed: Duration,
    /// Request time by comment number, microseconds.
    by_seq: HashMap<u64, u32>,
}

impl Posts {
    fn row(&self, name: &str) -> String {
        format!(
            "  {name:<21} {:.0} req/s ok ({} ok, {} failed {:?}) | latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.ok as f64 / self.elapsed.as_secs_f64(),
            self.ok,
            self.failed,
            self.statuses,
            percentile(&self.latencies, 50.0),
            percentile(&self.latencies, 99.0),
            percentile(&self.latencies, 100.0),
        )
    }
}

/// Posts `rate` comments per second for `seconds`, open loop: each request starts on schedule
/// whether or not earlier ones have finished. Records start times when asked.
async fn post_at_rate(
    target: &Target,
    client: &reqwest::Client,
    rate: u32,
    seconds: u32,
    first_seq: u64,
    starts: Option<(&Arc<Vec<AtomicU64>>, Instant)>,
) -> Posts {
    let total = u64::from(rate) * u64::from(seconds);
    let last_seq = first_seq + total - 1;
    // Tokio's timer ticks in milliseconds: at high rates, send a few per tick.
    let (tick, per_tick) = if rate >= 1000 {
        (Duration::from_millis(1), u64::from(rate) / 1000)
    } else if rate >= 100 {
        (Duration::from_millis(10), u64::from(rate) / 100)
    } else {
        (Duration::from_secs_f64(1.0 / f64::from(rate)), 1)
    };
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut requests = Vec::with_capacity(total as usize);
    let mut seq = first_seq;
    while seq <= last_seq {
        ticker.tick().await;
        for _ in 0..per_tick {
            if seq > last_seq {
                break;
            }
            if let Some((times, epoch)) = starts {
                times[seq as usize].store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
            let request = target.post(client, seq);
            requests.push(tokio::spawn(async move {
                let sent = Instant::now();
                let status = request
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                (seq, status, sent.elapsed().as_micros() as u32)
            }));
            seq += 1;
        }
    }
    let mut posts = Posts {
        ok: 0,
        failed: 0,
        statuses: HashMap::new(),
        latencies: Vec::with_capacity(requests.len()),
        elapsed: Duration::ZERO,
        by_seq: HashMap::new(),
    };
    for request in requests {
        let (seq, status, micros) = request.await.unwrap_or((0, 0, 0));
        if (200..300).contains(&status) {
            posts.ok += 1;
            posts.latencies.push(micros);
            posts.by_seq.insert(seq, micros);
        } else {
            posts.failed += 1;
            *posts.statuses.entry(status).or_default() += 1;
        }
    }
    posts.elapsed = started.elapsed();
    posts.latencies.sort_unstable();
    posts
}

/// Posts as fast as `workers` concurrent clients can, for `seconds`.
async fn post_flat_out(target: &Arc<Target>, workers: usize, seconds: u32) -> Posts {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(u64::from(seconds));
    let seq = Arc::new(AtomicU64::new(1_000_000));
    let mut handles = Vec::new();
    let started = Instant::now();
    for _ in 0..workers {
        let (client, target, seq) = (client.clone(), Arc::clone(target), Arc::clone(&seq));
        handles.push(tokio::spawn(async move {
            let mut out = Vec::new();
            while Instant::now() < deadline {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                let status = target
                    .post(&client, n)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                out.push((status, sent.elapsed().as_micros() as u32));
            }
            out
        }));
    }
    let mut posts = Posts {
        ok: 0,
        failed: 0,
        statuses: HashMap::new(),
        latencies: Vec::new(),
        elapsed: Duration::ZERO,
        by_seq: HashMap::new(),
    };
    for handle in handles {
        for (status, micros) in handle.await.unwrap_or_default() {
            if (200..300).contains(&status) {
                posts.ok += 1;
                posts.latencies.push(micros);
            } else {
                posts.failed += 1;
                *posts.statuses.entry(status).or_default() += 1;
            }
        }
    }
    posts.elapsed = started.elapsed();
    posts.latencies.sort_unstable();
    posts
}

struct Posting {
    warm_up: u64,
    open: Posts,
    closed: Posts,
    listener_got: u64,
}

impl Posting {
    fn row(&self, name: &str) -> String {
        format!(
            "{}\n{}\n  {name:<21} one listening socket received {} of {} posted",
            self.open.row(&format!("{name} @rate")),
            self.closed.row(&format!("{name} max")),
            self.listener_got,
            self.warm_up + self.open.ok + self.closed.ok
        )
    }
}

/// Comment posting: latency at a fixed rate, then the most requests per second, with one
/// socket listening to check that every accepted comment is broadcast.
async fn posting(target: &Target, settings: &Settings) -> anyhow::Result<Posting> {
    let url = format!("ws://{}{}", target.addr, target.socket_path);
    let (mut listener, _) =
        tokio_tungstenite::connect_async_with_config(url, Some(client_config()), false).await?;
    let got = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let counter = {
        let (got, done) = (Arc::clone(&got), Arc::clone(&done));
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(200), listener.next()).await {
                    Ok(Some(Ok(Message::Text(text)))) => {
                        if sequence(text.as_str()).is_some() {
                            got.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(Some(Ok(_))) | Err(_) => {}
                    Ok(_) => break,
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()?;
    // Warm up (connection pools on both sides, caches) before measuring.
    let warm_up = post_at_rate(target, &client, settings.post_rate, 2, 1, None).await;
    let open = post_at_rate(
        target,
        &client,
        settings.post_rate,
        settings.post_seconds,
        warm_up.ok + warm_up.failed + 1,
        None,
    )
    .await;
    let closed = post_flat_out(&Arc::new(target.clone()), 32, 5).await;
    let expected = warm_up.ok + open.ok + closed.ok;
    let waited = Instant::now();
    while got.load(Ordering::Relaxed) < expected && waited.elapsed() < DRAIN {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done.store(true, Ordering::Relaxed);
    let _ = counter.await;
    Ok(Posting {
        warm_up: warm_up.ok,
        open,
        closed,
        listener_got: got.load(Ordering::Relaxed),
    })
}

/// The floor: a WebSocket broadcaster with nothing but axum and a broadcast channel, given the
/// same socket buffer sizes as Siaran's.
mod bare {
    use axum::Router;
    use axum::extract::State;
    use axum::extract::ws::{Message, Utf8Bytes, WebSocketUpgrade};
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use tokio::sync::broadcast;

    pub(super) fn serve() -> anyhow::Result<()> {
        tokio::runtime::Runtime::new()?.block_on(async {
            let (sender, _) = broadcast::channel::<Utf8Bytes>(1024);
            let app = Router::new()
                .route("/ws", get(socket))
                .route("/publish", post(publish))
                .with_state(sender);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            super::say(format!("listening {}", listener.local_addr()?));
            axum::serve(listener, app).await?;
            Ok(())
        })
    }

    async fn socket(
        State(sender): State<broadcast::Sender<Utf8Bytes>>,
        upgrade: WebSocketUpgrade,
    ) -> axum::response::Response {
        upgrade
            .read_buffer_size(1024)
            .write_buffer_size(8 * 1024)
            .on_upgrade(move |mut socket| async move {
                let mut events = sender.subscribe();
                while let Ok(text) = events.recv().await {
                    if socket.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
            })
    }

    async fn publish(
        State(sender): State<broadcast::Sender<Utf8Bytes>>,
        body: String,
    ) -> StatusCode {
        let _ = sender.send(body.into());
        StatusCode::NO_CONTENT
    }
}
