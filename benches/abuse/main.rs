//! Abuse bench (`make bench BENCH=abuse`, see benches/README.md).
//!
//! Each scenario starts a fresh `siaran serve` (release build, a database of its own, the shared
//! Redis under a prefix of its own), measures it quietly for a few seconds, then attacks it as a
//! stranger on the internet could while probing `/healthz` every 50 ms on a new connection (what
//! a new visitor sees), and prints the server's memory growth (RSS and PSS, peak over the attack
//! against the quiet median), the most the kernel held in the send queues of the server's
//! sockets (`/proc/net/tcp`; not in the RSS) and the probe's p99 before and during. Targets (issue 10): growth
//! ≤ 200 MB, `/healthz` p99 ≤ 200 ms, a real publish live within 10 s.
//!
//! - `slowloris`: N connections (5,000) that send a partial request head and one more byte
//!   every 2 s, reconnecting whenever the server closes them.
//! - `hls`: N readers (1,000) of a live stream's newest segment at 1 KB/s (a real ffmpeg
//!   publish), each on a socket with a small receive buffer so the server feels it.
//! - `register`: N registrations at once (2,000), each from its own address (the server trusts
//!   the bench's `X-Forwarded-For`, so the per-address limit does not save it and the hashing
//!   bound must).
//! - `rtmp`: N idle RTMP sockets (256) from other loopback addresses, half of them stalled in the
//!   handshake, while a real ffmpeg publish must still go live; prints how long it took.
//! - `overlay`: N overlay WebSockets (20,000) on one token.
//!
//! Options: `--only slowloris,hls,register,rtmp,overlay`, `--scale 0.1` (sizes × factor, to
//! check the bench runs), `--seconds 30` (attack length), and per scenario `--slowloris N`,
//! `--hls-readers N`, `--registers N`, `--rtmp-idle N`, `--overlay N`.

use std::future::Future;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt as _;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const JWT_SECRET: &str = "bench-secret-bench-secret-bench-secret-abuse-0123";
/// Seconds of quiet measurement before each attack.
const QUIET_SECONDS: u64 = 5;
/// Connections being opened at once by one scenario.
const CONNECT_CONCURRENCY: usize = 256;
const TARGET_GROWTH_MB: f64 = 200.0;
const TARGET_P99_MS: f64 = 200.0;
const TARGET_LIVE_S: f64 = 10.0;

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
    only: Vec<String>,
    seconds: u64,
    slowloris: usize,
    hls_readers: usize,
    registers: usize,
    rtmp_idle: usize,
    overlay: usize,
}

impl Settings {
    fn parse(args: &[String]) -> anyhow::Result<Self> {
        let mut s = Self {
            only: ["slowloris", "hls", "register", "rtmp", "overlay"]
                .map(str::to_owned)
                .to_vec(),
            seconds: 30,
            slowloris: 5_000,
            hls_readers: 1_000,
            registers: 2_000,
            rtmp_idle: 256,
            overlay: 20_000,
        };
        let mut scale = 1.0_f64;
        let mut it = args.iter().skip(1);
        while let Some(arg) = it.next() {
            let mut value = || it.next().context("an option needs a value");
            match arg.as_str() {
                "--only" => s.only = value()?.split(',').map(str::to_owned).collect(),
                "--scale" => scale = value()?.parse()?,
                "--seconds" => s.seconds = value()?.parse()?,
                "--slowloris" => s.slowloris = value()?.parse()?,
                "--hls-readers" => s.hls_readers = value()?.parse()?,
                "--registers" => s.registers = value()?.parse()?,
                "--rtmp-idle" => s.rtmp_idle = value()?.parse()?,
                "--overlay" => s.overlay = value()?.parse()?,
                // cargo bench passes --bench to harness-less benches.
                "--bench" => {}
                other => bail!("unknown option {other}"),
            }
        }
        let scaled = |n: usize| {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let n = ((n as f64) * scale).round() as usize;
            n.max(1)
        };
        s.slowloris = scaled(s.slowloris);
        s.hls_readers = scaled(s.hls_readers);
        s.registers = scaled(s.registers);
        s.rtmp_idle = scaled(s.rtmp_idle);
        s.overlay = scaled(s.overlay);
        Ok(s)
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let settings = Settings::parse(&args)?;
    // The generator and the servers it starts (which inherit it) need one descriptor per socket:
    // raise this process's soft limit to the hard one, nothing global.
    let nofile = rlimit::increase_nofile_limit(u64::MAX).context("raising RLIMIT_NOFILE")?;
    tokio::runtime::Runtime::new()?.block_on(run(settings, nofile))
}

async fn run(settings: Settings, nofile: u64) -> anyhow::Result<()> {
    say(format!(
        "abuse bench: {:?}, {} s attacks; open files {nofile}; load {}",
        settings.only,
        settings.seconds,
        load()
    ));
    let biggest = [settings.slowloris, settings.overlay, settings.hls_readers]
        .into_iter()
        .max()
        .unwrap_or(0) as u64;
    if biggest * 2 + 1024 > nofile {
        bail!(
            "{biggest} sockets need more open files than the hard limit allows ({nofile}): raise it (ulimit -Hn)"
        );
    }
    let db = BenchDb::create().await?;
    let mut results = Vec::new();
    for name in &settings.only {
        let result = match name.as_str() {
            "slowloris" => slowloris(&db, &settings).await,
            "hls" => hls_readers(&db, &settings).await,
            "register" => registers(&db, &settings).await,
            "rtmp" => rtmp_idle(&db, &settings).await,
            "overlay" => overlay(&db, &settings).await,
            other => Err(anyhow::anyhow!("no scenario named {other}")),
        };
        match result {
            Ok(summary) => results.push(summary),
            Err(e) => {
                say(format!("{name}: FAILED: {e:#}"));
                results.push(format!("{name:<10} failed: {e:#}"));
            }
        }
    }
    db.destroy().await;
    say("");
    say(format!(
        "summary (targets: growth <= {TARGET_GROWTH_MB} MB, /healthz p99 <= {TARGET_P99_MS} ms, live <= {TARGET_LIVE_S} s):"
    ));
    for line in &results {
        say(format!("  {line}"));
    }
    say(format!("load after: {}", load()));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The database, the server and what is measured

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
        let name = format!("siaran_abuse_{}", std::process::id());
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

    /// A streamer (inserted directly) and an access token for them.
    async fn streamer(&self, name: &str) -> anyhow::Result<(Uuid, String)> {
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO users (username, email, password_hash, is_streamer)
             VALUES ($1, $1 || '@bench.local', 'x', true) RETURNING id",
        )
        .bind(name)
        .fetch_one(&self.pool)
        .await?;
        let keys = siaran::auth::jwt::JwtKeys::new(JWT_SECRET.as_bytes());
        Ok((id, keys.issue(id)))
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A `siaran serve` the bench started; killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    rtmp: SocketAddr,
    pid: u32,
}

impl Server {
    async fn start(db: &BenchDb, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let rtmp = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let hls =
            std::env::temp_dir().join(format!("siaran-abuse-hls-{}", Uuid::new_v4().simple()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_siaran"));
        command
            .arg("serve")
            .env("DATABASE_URL", &db.url)
            .env(
                "SIARAN_REDIS_PREFIX",
                format!("siaran-abuse-{}", Uuid::new_v4().simple()),
            )
            .env("SIARAN_HTTP_ADDR", "127.0.0.1:0")
            .env("SIARAN_RTMP_ADDR", rtmp.to_string())
            .env("SIARAN_JWT_SECRET", JWT_SECRET)
            .env("SIARAN_LOG_FORMAT", "json")
            .env("SIARAN_HLS_DIR", &hls)
            .env("SIARAN_WORKERS", "1")
            .env("RUST_LOG", "warn,siaran::startup=info");
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting siaran serve")?;
        let pid = child.id().context("server pid")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let (found, addr) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut found = Some(found);
            let mut lines = BufReader::new(stdout).lines();
            let mut shown = 0;
            while let Ok(Some(line)) = lines.next_line().await {
                let entry: Value = serde_json::from_str(&line).unwrap_or_default();
                if entry["message"] == "HTTP listening"
                    && let Some(addr) = entry["addr"].as_str().and_then(|a| a.parse().ok())
                    && let Some(found) = found.take()
                {
                    let _ = found.send(addr);
                } else if shown < 10 {
                    shown += 1;
                    say(format!("    server: {line}"));
                }
            }
        });
        let addr = tokio::time::timeout(Duration::from_secs(60), addr)
            .await
            .context("the server did not start listening")??;
        Ok(Self {
            child,
            addr,
            rtmp,
            pid,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// `(RSS, PSS)` of a process in bytes.
fn memory_of(pid: u32) -> (u64, u64) {
    let field = |text: &str, name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    (field(&rollup, "Rss:"), field(&rollup, "Pss:"))
}

/// Samples the server's memory every 200 ms; keeps the median of a quiet phase and the peak.
struct Memory {
    samples: Arc<std::sync::Mutex<Vec<(u64, u64)>>>,
    stop: CancellationToken,
}

impl Memory {
    fn watch(pid: u32) -> Self {
        let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (kept, stopped) = (Arc::clone(&samples), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tokio::select! {
                    () = stopped.cancelled() => break,
                    _ = tick.tick() => {
                        if let Ok(mut samples) = kept.lock() {
                            samples.push(memory_of(pid));
                        }
                    }
                }
            }
        });
        Self { samples, stop }
    }

    /// `(median RSS, median PSS)` so far, then forgets them.
    fn median_and_reset(&self) -> (u64, u64) {
        let Ok(mut samples) = self.samples.lock() else {
            return (0, 0);
        };
        let mut rss: Vec<_> = samples.iter().map(|s| s.0).collect();
        let mut pss: Vec<_> = samples.iter().map(|s| s.1).collect();
        samples.clear();
        rss.sort_unstable();
        pss.sort_unstable();
        (
            rss.get(rss.len() / 2).copied().unwrap_or(0),
            pss.get(pss.len() / 2).copied().unwrap_or(0),
        )
    }

    /// `(peak RSS, peak PSS)` since the last reset.
    fn peak(&self) -> (u64, u64) {
        let Ok(samples) = self.samples.lock() else {
            return (0, 0);
        };
        (
            samples.iter().map(|s| s.0).max().unwrap_or(0),
            samples.iter().map(|s| s.1).max().unwrap_or(0),
        )
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `/healthz` on a new connection every 50 ms.
struct Probe {
    latencies_us: Arc<std::sync::Mutex<Vec<u64>>>,
    failures: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl Probe {
    fn start(url: String) -> Self {
        let latencies_us = Arc::new(std::sync::Mutex::new(Vec::new()));
        let failures = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let (kept, failed, stopped) = (
            Arc::clone(&latencies_us),
            Arc::clone(&failures),
            stop.clone(),
        );
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client");
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stopped.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let started = Instant::now();
                let ok = client
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                if ok {
                    if let Ok(mut kept) = kept.lock() {
                        kept.push(took);
                    }
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Self {
            latencies_us,
            failures,
            stop,
        }
    }

    /// `(p99 ms, answered, failed)` so far, then forgets them.
    fn p99_and_reset(&self) -> (f64, usize, u64) {
        let Ok(mut samples) = self.latencies_us.lock() else {
            return (f64::NAN, 0, 0);
        };
        let mut sorted = std::mem::take(&mut *samples);
        sorted.sort_unstable();
        let failed = self.failures.swap(0, Ordering::Relaxed);
        if sorted.is_empty() {
            return (f64::NAN, 0, failed);
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = (((sorted.len() as f64) * 0.99).ceil() as usize).clamp(1, sorted.len()) - 1;
        #[allow(clippy::cast_precision_loss)]
        let p99 = sorted[index] as f64 / 1000.0;
        (p99, sorted.len(), failed)
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The quiet phase, then `attack` (which runs until its token is cancelled) for `seconds`;
/// prints and returns the scenario's line.
async fn measure<F, Fut>(
    name: &str,
    server: &Server,
    seconds: u64,
    attack: F,
) -> anyhow::Result<(String, Value)>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<Value>> + Send + 'static,
{
    let memory = Memory::watch(server.pid);
    let probe = Probe::start(server.url("/healthz"));
    tokio::time::sleep(Duration::from_secs(QUIET_SECONDS)).await;
    let (rss_quiet, pss_quiet) = memory.median_and_reset();
    let (p99_quiet, quiet_n, quiet_failed) = probe.p99_and_reset();
    say(format!(
        "{name}: quiet: RSS {:.1} MB, PSS {:.1} MB, /healthz p99 {p99_quiet:.1} ms ({quiet_n} probes, {quiet_failed} failed)",
        mb(rss_quiet),
        mb(pss_quiet)
    ));
    let stop = CancellationToken::new();
    let attacking = tokio::spawn(attack(stop.clone()));
    let queued = tokio::spawn(peak_send_queue(
        [server.addr.port(), server.rtmp.port()],
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (rss_peak, pss_peak) = memory.peak();
    let (p99, n, failed) = probe.p99_and_reset();
    stop.cancel();
    let stats = tokio::time::timeout(Duration::from_secs(60), attacking)
        .await
        .context("the attack did not stop")?
        .context("the attack task")??;
    let queued = queued.await.unwrap_or(0);
    let growth = mb(rss_peak.saturating_sub(rss_quiet));
    let verdict = |ok: bool| if ok { "ok" } else { "OVER TARGET" };
    let line = format!(
        "{name:<10} RSS {:.1} → {:.1} MB (+{growth:.1} MB, {}), PSS {:.1} → {:.1} MB, kernel send queues ≤ {:.1} MB; /healthz p99 {p99_quiet:.1} → {p99:.1} ms ({}; {n} probes, {failed} failed); {stats}",
        mb(rss_quiet),
        mb(rss_peak),
        verdict(growth <= TARGET_GROWTH_MB),
        mb(pss_quiet),
        mb(pss_peak),
        mb(queued),
        verdict(p99 <= TARGET_P99_MS && failed == 0),
    );
    say(format!("{name}: during: {line}"));
    Ok((line, stats))
}

/// The most the kernel held unsent or unacknowledged for the server's sockets on `ports`
/// (`tx_queue` in `/proc/net/tcp`), sampled every 500 ms until `stop`: memory the server's RSS
/// does not show.
async fn peak_send_queue(ports: [u16; 2], stop: CancellationToken) -> u64 {
    let mut peak = 0;
    while !stop.is_cancelled() {
        let mut total = 0;
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let Ok(text) = tokio::fs::read_to_string(table).await else {
                continue;
            };
            for line in text.lines().skip(1) {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let (Some(local), Some(queues)) = (fields.get(1), fields.get(4)) else {
                    continue;
                };
                let port = local
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok());
                if port.is_some_and(|p| ports.contains(&p)) {
                    let tx = queues.split(':').next().unwrap_or("0");
                    total += u64::from_str_radix(tx, 16).unwrap_or(0);
                }
            }
        }
        peak = peak.max(total);
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
    peak
}

#[allow(clippy::cast_precision_loss)]
fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// A counter shared by attack tasks.
#[derive(Debug, Default)]
struct Counter(AtomicU64);

impl Counter {
    fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

async fn slowloris(db: &BenchDb, settings: &Settings) -> anyhow::Result<String> {
    let server = Server::start(db, &[]).await?;
    let n = settings.slowloris;
    say(format!(
        "slowloris: {n} connections trickling request heads"
    ));
    let addr = server.addr;
    let (line, _) = measure("slowloris", &server, settings.seconds, move |stop| async move {
        let opened = Arc::new(Counter::default());
        let closed = Arc::new(Counter::default());
        let refused = Arc::new(Counter::default());
        let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (stop, opened, closed, refused, gate) = (
                stop.clone(),
                Arc::clone(&opened),
                Arc::clone(&closed),
                Arc::clone(&refused),
                Arc::clone(&gate),
            );
            tasks.spawn(async move {
                while !stop.is_cancelled() {
                    let stream = {
                        let _turn = gate.acquire().await;
                        TcpStream::connect(addr).await
                    };
                    let Ok(mut stream) = stream else {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    };
                    opened.add();
                    if stream
                        .write_all(b"GET /healthz HTTP/1.1\r\nHost: siaran\r\nX-Slow: ")
                        .await
                        .is_err()
                    {
                        closed.add();
                        continue;
                    }
                    let mut buf = [0u8; 512];
                    loop {
                        tokio::select! {
                            () = stop.cancelled() => return,
                            read = stream.read(&mut buf) => {
                                if matches!(read, Ok(n) if n > 0) && buf.starts_with(b"HTTP/1.1 503") {
                                    refused.add();
                                }
                                closed.add();
                                break;
                            }
                            () = tokio::time::sleep(Duration::from_secs(2)) => {
                                if stream.write_all(b"a").await.is_err() {
                                    closed.add();
                                    break;
                                }
                            }
                        }
                    }
                }
            });
        }
        stop.cancelled().await;
        tasks.shutdown().await;
        Ok(json!(format!(
            "{} connections opened, {} closed by the server ({} of them answered 503 first)",
            opened.get(),
            closed.get(),
            refused.get()
        )))
    })
    .await?;
    server.stop().await;
    Ok(line)
}

/// Starts a real ffmpeg publish of `seconds` with `key`.
fn publish(rtmp: SocketAddr, key: &str, seconds: u64, bitrate: &str) -> anyhow::Result<Child> {
    Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-t",
            &seconds.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
            "-b:v",
            bitrate,
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            "-f",
            "flv",
            &format!("rtmp://{rtmp}/live/{key}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("running ffmpeg (scripts/setup.sh installs it)")
}

/// A fresh streamer's stream key.
async fn stream_key(server: &Server, token: &str) -> anyhow::Result<String> {
    let created: Value = reqwest::Client::new()
        .post(server.url("/api/users/me/stream-key"))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    created["stream_key"]
        .as_str()
        .map(str::to_owned)
        .context("a stream key")
}

/// The newest segment named in a playlist.
async fn newest_segment(server: &Server, stream: Uuid) -> anyhow::Result<Option<String>> {
    let playlist = reqwest::Client::new()
        .get(server.url(&format!("/hls/{stream}/index.m3u8")))
        .send()
        .await?;
    if !playlist.status().is_success() {
        return Ok(None);
    }
    let text = playlist.text().await?;
    Ok(text
        .lines()
        .rfind(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_owned))
}

async fn hls_readers(db: &BenchDb, settings: &Settings) -> anyhow::Result<String> {
    let server = Server::start(db, &[]).await?;
    let (streamer, token) = db.streamer("hlsstreamer").await?;
    let key = stream_key(&server, &token).await?;
    let _ffmpeg = publish(
        server.rtmp,
        &key,
        settings.seconds + QUIET_SECONDS + 60,
        "3M",
    )?;
    let stream = wait_until_live(server.addr, streamer, Duration::from_secs(30)).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let segment = loop {
        if let Some(segment) = newest_segment(&server, stream).await? {
            break segment;
        }
        if Instant::now() > deadline {
            bail!("no segment was listed within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let n = settings.hls_readers;
    say(format!("hls: {n} readers of {segment} at 1 KB/s"));
    let addr = server.addr;
    let path = if segment.starts_with('/') || segment.starts_with("http") {
        segment.clone()
    } else {
        format!("/hls/{stream}/{segment}")
    };
    let (line, _) = measure("hls", &server, settings.seconds, move |stop| async move {
        let reading = Arc::new(Counter::default());
        let bytes = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(Counter::default());
        let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (stop, reading, bytes, failed, gate, path) = (
                stop.clone(),
                Arc::clone(&reading),
                Arc::clone(&bytes),
                Arc::clone(&failed),
                Arc::clone(&gate),
                path.clone(),
            );
            tasks.spawn(async move {
                let stream = {
                    let _turn = gate.acquire().await;
                    async {
                        let socket = TcpSocket::new_v4()?;
                        socket.set_recv_buffer_size(4096)?;
                        let mut stream = socket.connect(addr).await?;
                        stream
                            .write_all(
                                format!("GET {path} HTTP/1.1\r\nHost: siaran\r\n\r\n").as_bytes(),
                            )
                            .await?;
                        std::io::Result::Ok(stream)
                    }
                    .await
                };
                let Ok(mut stream) = stream else {
                    failed.add();
                    return;
                };
                reading.add();
                let mut buf = [0u8; 1024];
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        read = stream.read(&mut buf) => match read {
                            Ok(0) | Err(_) => return,
                            Ok(got) => { bytes.fetch_add(got as u64, Ordering::Relaxed); }
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
        stop.cancelled().await;
        tasks.shutdown().await;
        Ok(json!(format!(
            "{} readers reading, {} could not connect, {:.1} MB read in all",
            reading.get(),
            failed.get(),
            mb(bytes.load(Ordering::Relaxed))
        )))
    })
    .await?;
    server.stop().await;
    Ok(line)
}

async fn registers(db: &BenchDb, settings: &Settings) -> anyhow::Result<String> {
    // Each registration comes "from" its own address, as from a botnet: the per-address limit
    // does not apply and the hashing bound is what holds.
    let server = Server::start(db, &[("SIARAN_TRUSTED_PROXIES", "127.0.0.1")]).await?;
    let n = settings.registers;
    say(format!(
        "register: {n} registrations at once, each from its own address"
    ));
    let url = server.url("/api/auth/register");
    let (line, _) = measure("register", &server, settings.seconds, move |stop| async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        let statuses = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<String, u64>::new()));
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let (client, url, statuses) = (client.clone(), url.clone(), Arc::clone(&statuses));
            let address = Ipv4Addr::from(0x0a00_0000_u32 + u32::try_from(i).unwrap_or(0) + 1);
            tasks.spawn(async move {
                let answer = client
                    .post(&url)
                    .header("x-forwarded-for", address.to_string())
                    .json(&json!({"username": format!("flood{i}"), "email": format!("flood{i}@bench.local"),
                                  "password": "correct-horse-battery"}))
                    .send()
                    .await;
                let key = answer.map_or_else(|e| format!("error ({})", e.without_url()), |r| r.status().as_u16().to_string());
                if let Ok(mut statuses) = statuses.lock() {
                    *statuses.entry(key).or_default() += 1;
                }
            });
        }
        let done = Arc::new(AtomicBool::new(false));
        tokio::select! {
            () = async { while tasks.join_next().await.is_some() {} } => done.store(true, Ordering::Relaxed),
            () = stop.cancelled() => {}
        }
        let took = started.elapsed();
        tasks.shutdown().await;
        let statuses = statuses.lock().map(|s| s.clone()).unwrap_or_default();
        Ok(json!(format!(
            "answers {statuses:?} {} {:.1} s",
            if done.load(Ordering::Relaxed) { "all within" } else { "not all answered in" },
            took.as_secs_f64()
        )))
    })
    .await?;
    server.stop().await;
    Ok(line)
}

async fn rtmp_idle(db: &BenchDb, settings: &Settings) -> anyhow::Result<String> {
    let server = Server::start(db, &[]).await?;
    let (streamer, token) = db.streamer("rtmpstreamer").await?;
    let key = stream_key(&server, &token).await?;
    let n = settings.rtmp_idle;
    say(format!(
        "rtmp: {n} idle RTMP sockets from 127.0.0.2+ (half stalled in the handshake), then a real publish"
    ));
    let (rtmp, http) = (server.rtmp, server.addr);
    let seconds = settings.seconds;
    let line = measure("rtmp", &server, settings.seconds, move |stop| async move {
        let held = Arc::new(Counter::default());
        let dropped = Arc::new(Counter::default());
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let (stop, held, dropped) = (stop.clone(), Arc::clone(&held), Arc::clone(&dropped));
            // Other loopback addresses than ffmpeg's 127.0.0.1: a per-address cap sees a stranger.
            let from = Ipv4Addr::new(
                127,
                0,
                1 + u8::try_from(i / 250).unwrap_or(0),
                2 + u8::try_from(i % 250).unwrap_or(0),
            );
            tasks.spawn(async move {
                while !stop.is_cancelled() {
                    let connected = async {
                        let socket = TcpSocket::new_v4()?;
                        socket.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
                        let mut stream = socket.connect(rtmp).await?;
                        if i % 2 == 0 {
                            // C0 and the first bytes of C1, then nothing.
                            stream.write_all(&[3u8; 64]).await?;
                        }
                        std::io::Result::Ok(stream)
                    }
                    .await;
                    let Ok(mut stream) = connected else {
                        dropped.add();
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    };
                    held.add();
                    let mut buf = [0u8; 4096];
                    loop {
                        tokio::select! {
                            () = stop.cancelled() => return,
                            read = stream.read(&mut buf) => match read {
                                Ok(0) | Err(_) => { dropped.add(); break; }
                                Ok(_) => {}
                            }
                        }
                    }
                }
            });
        }
        // Let the idle sockets settle, then publish for real.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let started = Instant::now();
        let _ffmpeg = publish(rtmp, &key, seconds + 30, "1M")?;
        let live = wait_until_live(http, streamer, Duration::from_secs(seconds.max(15))).await;
        let took = started.elapsed().as_secs_f64();
        stop.cancelled().await;
        tasks.shutdown().await;
        let live = match live {
            Ok(_) => format!(
                "the real publish went live in {took:.1} s ({})",
                if took <= TARGET_LIVE_S {
                    "ok"
                } else {
                    "OVER TARGET"
                }
            ),
            Err(e) => format!("the real publish did NOT go live: {e:#}"),
        };
        Ok(json!(format!(
            "{live}; idle sockets connected {} times, dropped by the server {} times",
            held.get(),
            dropped.get()
        )))
    })
    .await;
    server.stop().await;
    line.map(|(line, _)| line)
}

/// Polls until the streamer has a live stream; returns its id.
async fn wait_until_live(
    http: SocketAddr,
    streamer: Uuid,
    patience: Duration,
) -> anyhow::Result<Uuid> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + patience;
    loop {
        let page: Value = client
            .get(format!(
                "http://{http}/api/streams?live=true&streamer_id={streamer}"
            ))
            .send()
            .await?
            .json()
            .await?;
        if let Some(id) = page["items"][0]["id"].as_str() {
            return Ok(id.parse()?);
        }
        if Instant::now() > deadline {
            bail!("not live within {patience:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn overlay(db: &BenchDb, settings: &Settings) -> anyhow::Result<String> {
    let server = Server::start(db, &[]).await?;
    let (_streamer, token) = db.streamer("overlaystreamer").await?;
    let created: Value = reqwest::Client::new()
        .post(server.url("/api/users/me/overlay-token"))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let socket_path = created["socket_path"]
        .as_str()
        .context("the overlay socket's path")?
        .to_owned();
    let n = settings.overlay;
    say(format!("overlay: {n} WebSockets on one overlay token"));
    let url = format!("ws://{}{socket_path}", server.addr);
    let (line, _) = measure("overlay", &server, settings.seconds, move |stop| async move {
        let open = Arc::new(Counter::default());
        let refused = Arc::new(Counter::default());
        let closed = Arc::new(Counter::default());
        let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (stop, open, refused, closed, gate, url) = (
                stop.clone(),
                Arc::clone(&open),
                Arc::clone(&refused),
                Arc::clone(&closed),
                Arc::clone(&gate),
                url.clone(),
            );
            tasks.spawn(async move {
                let socket = {
                    let _turn = gate.acquire().await;
                    tokio_tungstenite::connect_async(url.as_str()).await
                };
                let Ok((mut socket, _)) = socket else {
                    refused.add();
                    return;
                };
                open.add();
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        message = socket.next() => if message.is_none() || matches!(message, Some(Err(_))) {
                            closed.add();
                            return;
                        }
                    }
                }
            });
        }
        stop.cancelled().await;
        tasks.shutdown().await;
        Ok(json!(format!(
            "{} sockets opened, {} refused, {} closed by the server",
            open.get(),
            refused.get(),
            closed.get()
        )))
    })
    .await?;
    server.stop().await;
    Ok(line)
}
