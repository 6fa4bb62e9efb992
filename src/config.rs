//! Configuration: environment variables (optionally from `.env`) with defaults that serve local
//! development with no file at all. Every variable is documented in `.env.example` and the
//! README; `siaran --help` lists them too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use rand::RngCore;

use crate::http::proxy::TrustedProxies;
use crate::ratelimit::Limit;

/// The development JWT secret is generated once and kept here (git-ignored).
const DEV_SECRET_FILE: &str = ".siaran/jwt-secret";
/// Below this many bytes a JWT secret is considered guessable.
const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Everything the server needs to know about its surroundings.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// PostgreSQL connection URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://siaran:siaran@127.0.0.1:5432/siaran",
        hide_env_values = true
    )]
    pub database_url: String,

    /// Redis connection URL.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub redis_url: String,

    /// Prefix of every Redis key Siaran uses, so several deployments (or tests) can share one Redis.
    #[arg(long, env = "SIARAN_REDIS_PREFIX", default_value = "siaran")]
    pub redis_prefix: String,

    /// Address the HTTP API, WebSocket and HLS are served on.
    #[arg(long, env = "SIARAN_HTTP_ADDR", default_value = "0.0.0.0:8000")]
    pub http_addr: SocketAddr,

    /// Address the RTMP ingest listens on.
    #[arg(long, env = "SIARAN_RTMP_ADDR", default_value = "0.0.0.0:1935")]
    pub rtmp_addr: SocketAddr,

    /// Public base URL of this server, as viewers reach it (used in links and emails).
    #[arg(
        long,
        env = "SIARAN_PUBLIC_URL",
        default_value = "http://localhost:8000"
    )]
    pub public_url: String,

    /// Public RTMP ingest URL shown to streamers; derived from the public URL's host when unset.
    #[arg(long, env = "SIARAN_RTMP_PUBLIC_URL")]
    pub rtmp_public_url: Option<String>,

    /// Secret that signs access tokens (at least 32 bytes). Generated in development when unset.
    #[arg(long, env = "SIARAN_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// `development` or `production`. Production refuses weak or missing secrets.
    #[arg(long, env = "SIARAN_ENV", value_enum, default_value = "development")]
    pub env: Environment,

    /// Directory HLS playlists and segments are written to.
    #[arg(long, env = "SIARAN_HLS_DIR", default_value = "hls-out")]
    pub hls_dir: PathBuf,

    /// Seconds a live stream may go without a heartbeat from the server process ingesting it
    /// before it is ended (that process died). Heartbeats come every sixth of this, at most 5 s.
    #[arg(long, env = "SIARAN_INGEST_STALE_SECS", default_value_t = 30)]
    pub ingest_stale_secs: u64,

    /// Seconds an ended stream's HLS playlist and segments stay on disk (its thumbnail stays,
    /// for the list of past streams).
    #[arg(long, env = "SIARAN_HLS_RETENTION_SECS", default_value_t = 3600)]
    pub hls_retention_secs: u64,

    /// Seconds between checks of `SIARAN_HLS_DIR` for files past their retention.
    #[arg(long, env = "SIARAN_HLS_SWEEP_SECS", default_value_t = 300)]
    pub hls_sweep_secs: u64,

    /// Directory of the built frontend (served at `/`).
    #[arg(long, env = "SIARAN_FRONTEND_DIR", default_value = "frontend/dist")]
    pub frontend_dir: PathBuf,

    /// `pretty` for people, `json` for log collectors.
    #[arg(long, env = "SIARAN_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,

    /// Proxies in front of Siaran whose `X-Forwarded-For` is believed: comma-separated
    /// addresses or CIDR ranges (`10.0.0.0/8,192.0.2.7`). Empty: the peer is the client.
    #[arg(
        long,
        env = "SIARAN_TRUSTED_PROXIES",
        default_value = "",
        value_parser = TrustedProxies::parse
    )]
    pub trusted_proxies: TrustedProxies,

    /// Deprecated: `true` trusts proxies on the loopback interface only (as
    /// `SIARAN_TRUSTED_PROXIES=127.0.0.1,::1`); list your proxies in `SIARAN_TRUSTED_PROXIES`.
    #[arg(long, env = "SIARAN_TRUST_PROXY", default_value_t = false)]
    pub trust_proxy: bool,

    /// Connections, timeouts and password hashing of the HTTP server.
    #[command(flatten)]
    pub server: ServerConfig,

    /// Rate limits of registration, login, refresh and donating.
    #[command(flatten)]
    pub limits: LimitsConfig,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "SIARAN_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Largest number of database connections this process opens.
    #[arg(long, env = "SIARAN_DB_MAX_CONNECTIONS", default_value_t = 20)]
    pub db_max_connections: u32,

    /// Midtrans settings (payment gateway).
    #[command(flatten)]
    pub midtrans: MidtransConfig,

    /// Outgoing mail settings.
    #[command(flatten)]
    pub smtp: SmtpConfig,

    /// Sockets and viewer counts.
    #[command(flatten)]
    pub live: LiveConfig,

    /// Donation rules.
    #[command(flatten)]
    pub donations: DonationsConfig,

    /// Background job queue.
    #[command(flatten)]
    pub jobs: JobsConfig,
}

/// The HTTP server's defences: how many connections it holds, how long a client may take to
/// send its request head or to read the answer, and how many passwords it hashes at once.
#[derive(Debug, Clone, Args)]
pub struct ServerConfig {
    /// HTTP connections served at once (WebSockets are counted by `SIARAN_WS_MAX_CONNECTIONS`
    /// once upgraded); more are answered 503 `too_many_connections` and closed.
    #[arg(long, env = "SIARAN_HTTP_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Seconds a client has to send a whole request head, and that an idle keep-alive
    /// connection is kept open waiting for the next one.
    #[arg(long, env = "SIARAN_HTTP_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,

    /// Seconds a response may wait for a client that reads nothing before the connection is
    /// closed.
    #[arg(long, env = "SIARAN_HTTP_WRITE_TIMEOUT_SECS", default_value_t = 30)]
    pub write_timeout_secs: u64,

    /// Seconds a request may take to produce its response (headers; bodies are streamed and
    /// bounded by the write timeout).
    #[arg(long, env = "SIARAN_HTTP_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// Passwords hashed or verified at once (argon2id: 19 MiB and one core each). 0: the number
    /// of cores, at most what an eighth of the memory holds.
    #[arg(long, env = "SIARAN_PASSWORD_HASH_CONCURRENCY", default_value_t = 0)]
    pub password_hash_concurrency: usize,

    /// Milliseconds a request waits for a free hashing slot before it is answered 503
    /// `service_busy` with `Retry-After`.
    #[arg(long, env = "SIARAN_PASSWORD_HASH_WAIT_MS", default_value_t = 5_000)]
    pub password_hash_wait_ms: u64,

    /// Seconds after a refresh in which the same client (same address and `User-Agent`) may
    /// present the refresh token it just used again and get a new pair, in case the answer was
    /// lost; 0 turns the grace off.
    #[arg(long, env = "SIARAN_REFRESH_GRACE_SECS", default_value_t = 20)]
    pub refresh_grace_secs: u64,
}

/// Rate limits, each `COUNT/WINDOW` (`5/15m`, `20/1h`, `10/30s`), counted in Redis across
/// every server process. A client address is an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Args)]
pub struct LimitsConfig {
    /// Registrations from one address.
    #[arg(long, env = "SIARAN_LIMIT_REGISTER_ADDRESS", default_value = "20/1h")]
    pub register_address: Limit,

    /// Failed logins for one account (by username or email alike) before it is locked.
    #[arg(long, env = "SIARAN_LIMIT_LOGIN_ACCOUNT", default_value = "5/15m")]
    pub login_account: Limit,

    /// Failed logins from one address (over any accounts).
    #[arg(long, env = "SIARAN_LIMIT_LOGIN_ADDRESS", default_value = "30/15m")]
    pub login_address: Limit,

    /// Token refreshes of one account.
    #[arg(long, env = "SIARAN_LIMIT_REFRESH_ACCOUNT", default_value = "20/1m")]
    pub refresh_account: Limit,

    /// Token refreshes from one address.
    #[arg(long, env = "SIARAN_LIMIT_REFRESH_ADDRESS", default_value = "120/1m")]
    pub refresh_address: Limit,

    /// Donations one account starts.
    #[arg(long, env = "SIARAN_LIMIT_DONATION_ACCOUNT", default_value = "10/1m")]
    pub donation_account: Limit,

    /// Donations started from one address.
    #[arg(long, env = "SIARAN_LIMIT_DONATION_ADDRESS", default_value = "30/1m")]
    pub donation_address: Limit,
}

/// Donation limits and deadlines.
#[derive(Debug, Clone, Args)]
pub struct DonationsConfig {
    /// Smallest donation, in whole rupiah (Midtrans' card and VA minimum is 10,000).
    #[arg(long, env = "SIARAN_DONATION_MIN", default_value_t = 10_000)]
    pub donation_min: i64,

    /// Largest donation, in whole rupiah.
    #[arg(long, env = "SIARAN_DONATION_MAX", default_value_t = 100_000_000)]
    pub donation_max: i64,

    /// Hours a donor has to make a bank transfer before the donation expires.
    #[arg(long, env = "SIARAN_BANK_TRANSFER_EXPIRY_HOURS", default_value_t = 48)]
    pub bank_transfer_expiry_hours: u32,

    /// Minutes a Midtrans payment stays open (sent to Snap as the transaction expiry).
    #[arg(long, env = "SIARAN_MIDTRANS_EXPIRY_MINUTES", default_value_t = 24 * 60)]
    pub midtrans_expiry_minutes: u32,

    /// Seconds after which a pending Midtrans donation is checked with Midtrans' status endpoint.
    #[arg(long, env = "SIARAN_RECONCILE_AFTER_SECS", default_value_t = 15 * 60)]
    pub reconcile_after_secs: u64,
}

/// The Redis job queue and its workers.
#[derive(Debug, Clone, Args)]
pub struct JobsConfig {
    /// Job workers `siaran serve` runs in-process (0: none; run `siaran worker` instead).
    #[arg(long, env = "SIARAN_WORKERS", default_value_t = 2)]
    pub workers: usize,

    /// Seconds a job may stay unacknowledged before another worker takes it over (its worker
    /// is presumed dead). Each job is given half of this to finish.
    #[arg(long, env = "SIARAN_JOB_CLAIM_IDLE_SECS", default_value_t = 60)]
    pub claim_idle_secs: u64,

    /// Attempts before a failing job goes to the dead-letter list.
    #[arg(long, env = "SIARAN_JOB_MAX_ATTEMPTS", default_value_t = 8)]
    pub max_attempts: u32,

    /// First retry delay in milliseconds; doubles with every attempt (capped at 10 minutes).
    #[arg(long, env = "SIARAN_JOB_BACKOFF_MS", default_value_t = 2_000)]
    pub backoff_ms: u64,

    /// Seconds between runs of the periodic jobs (reconciliation, expiry, outbox sweep).
    #[arg(long, env = "SIARAN_SCHEDULE_INTERVAL_SECS", default_value_t = 60)]
    pub schedule_interval_secs: u64,

    /// Jobs the Redis queue holds at most (`XADD MAXLEN ~`): beyond, the oldest are trimmed.
    /// Every job that matters is kept in PostgreSQL too (outbox rows, notifications, pending
    /// donations) and queued again by the periodic sweep, so a flood costs Redis memory up to
    /// this bound and nothing more.
    #[arg(long, env = "SIARAN_JOB_QUEUE_MAX", default_value_t = 100_000)]
    pub queue_max: u64,
}

/// Midtrans (payment gateway). Without keys in development, `make run` starts the bundled fake.
#[derive(Debug, Clone, Args)]
pub struct MidtransConfig {
    /// Server key (secret): authenticates API calls and signs notifications.
    #[arg(
        long = "midtrans-server-key",
        env = "MIDTRANS_SERVER_KEY",
        hide_env_values = true
    )]
    pub server_key: Option<String>,

    /// Client key (public): given to Snap.js in the browser.
    #[arg(long = "midtrans-client-key", env = "MIDTRANS_CLIENT_KEY")]
    pub client_key: Option<String>,

    /// Base URL of Snap (e.g. `https://app.sandbox.midtrans.com`).
    #[arg(
        long = "midtrans-snap-url",
        env = "MIDTRANS_SNAP_URL",
        default_value = "https://app.sandbox.midtrans.com"
    )]
    pub snap_url: String,

    /// Base URL of the Core API (e.g. `https://api.sandbox.midtrans.com`).
    #[arg(
        long = "midtrans-api-url",
        env = "MIDTRANS_API_URL",
        default_value = "https://api.sandbox.midtrans.com"
    )]
    pub api_url: String,

    /// Whether the keys are production keys.
    #[arg(
        long = "midtrans-is-production",
        env = "MIDTRANS_IS_PRODUCTION",
        default_value_t = false
    )]
    pub is_production: bool,
}

/// Outgoing mail. Without a host, emails are written to a folder and logged.
#[derive(Debug, Clone, Args)]
pub struct SmtpConfig {
    /// SMTP server host; unset writes emails to `SIARAN_MAIL_DIR` instead.
    #[arg(long = "smtp-host", env = "SMTP_HOST")]
    pub host: Option<String>,

    /// SMTP server port.
    #[arg(long = "smtp-port", env = "SMTP_PORT", default_value_t = 587)]
    pub port: u16,

    /// SMTP user name.
    #[arg(long = "smtp-username", env = "SMTP_USERNAME")]
    pub username: Option<String>,

    /// SMTP password.
    #[arg(long = "smtp-password", env = "SMTP_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,

    /// `starttls`, `tls` (implicit) or `none`.
    #[arg(
        long = "smtp-tls",
        env = "SMTP_TLS",
        value_enum,
        default_value = "starttls"
    )]
    pub tls: SmtpTls,

    /// Sender of every email.
    #[arg(
        long = "mail-from",
        env = "MAIL_FROM",
        default_value = "Siaran <no-reply@siaran.local>"
    )]
    pub from: String,

    /// Where emails go when no SMTP host is set.
    #[arg(
        long = "mail-dir",
        env = "SIARAN_MAIL_DIR",
        default_value = ".siaran/mail"
    )]
    pub mail_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SmtpTls {
    Starttls,
    Tls,
    None,
}

/// Lifetimes of credentials.
pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
pub const REFRESH_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

impl Config {
    /// Parses settings from command-line style arguments over the environment and defaults
    /// (`["siaran", "--http-addr", "127.0.0.1:0"]`); tests build their configuration this way.
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            config: Config,
        }
        <Only as clap::Parser>::try_parse_from(args).map(|o| o.config)
    }

    /// The proxies whose `X-Forwarded-For` is believed, with the deprecated
    /// `SIARAN_TRUST_PROXY=true` read as "the loopback interface".
    #[must_use]
    pub fn effective_trusted_proxies(&self) -> TrustedProxies {
        if self.trust_proxy {
            self.trusted_proxies.clone().with_loopback()
        } else {
            self.trusted_proxies.clone()
        }
    }

    /// The public base URL without a trailing slash.
    #[must_use]
    pub fn public_base(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }

    /// The RTMP URL streamers paste into OBS (`rtmp://host:port/live`).
    #[must_use]
    pub fn rtmp_ingest_url(&self) -> String {
        if let Some(url) = &self.rtmp_public_url {
            return url.trim_end_matches('/').to_owned();
        }
        let host = self
            .public_base()
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', ':']).next())
            .filter(|h| !h.is_empty())
            .unwrap_or("localhost");
        match self.rtmp_addr.port() {
            1935 => format!("rtmp://{host}/live"),
            port => format!("rtmp://{host}:{port}/live"),
        }
    }

    /// Resolves the JWT signing secret: the configured one (checked for strength in production),
    /// or in development one generated once and kept in `.siaran/jwt-secret`.
    pub fn resolve_jwt_secret(&self) -> anyhow::Result<Vec<u8>> {
        match (&self.jwt_secret, self.env) {
            (Some(secret), _) if secret.len() >= MIN_SECRET_BYTES => Ok(secret.as_bytes().to_vec()),
            (Some(_), Environment::Production) => bail!(
                "SIARAN_JWT_SECRET is too short for production: use at least {MIN_SECRET_BYTES} random bytes \
                 (for example `openssl rand -base64 48`)"
            ),
            (None, Environment::Production) => bail!(
                "SIARAN_JWT_SECRET is not set; production refuses to start without it \
                 (generate one with `openssl rand -base64 48`)"
            ),
            (Some(_), Environment::Development) => {
                tracing::warn!(
                    "SIARAN_JWT_SECRET is shorter than {MIN_SECRET_BYTES} bytes; production would refuse it"
                );
                Ok(self.jwt_secret.clone().unwrap_or_default().into_bytes())
            }
            (None, Environment::Development) => dev_secret(Path::new(DEV_SECRET_FILE)),
        }
    }
}

fn dev_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim();
        if existing.len() >= MIN_SECRET_BYTES {
            return Ok(existing.as_bytes().to_vec());
        }
    }
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, &secret).with_context(|| format!("writing {}", path.display()))?;
    tracing::warn!(
        path = %path.display(),
        "SIARAN_JWT_SECRET is not set: generated a development secret (set it explicitly in production)"
    );
    Ok(secret.into_bytes())
}

/// Tuning of sockets and viewer counts. The defaults suit production; tests shorten the timers.
#[derive(Debug, Clone, Args)]
pub struct LiveConfig {
    /// Seconds between the WebSocket pings the server sends to every socket.
    #[arg(
        long = "ws-ping-interval",
        env = "SIARAN_WS_PING_INTERVAL",
        default_value_t = 10
    )]
    pub ws_ping_interval_secs: u64,

    /// A socket that sends nothing (not even a pong) for this many seconds is closed as dead.
    #[arg(
        long = "ws-idle-timeout",
        env = "SIARAN_WS_IDLE_TIMEOUT",
        default_value_t = 40
    )]
    pub ws_idle_timeout_secs: u64,

    /// Events a socket may fall behind before it is told it is too slow and disconnected.
    #[arg(long = "ws-max-lag", env = "SIARAN_WS_MAX_LAG", default_value_t = 1024)]
    pub ws_max_lag: usize,

    /// Most sockets (stream and overlay) this process keeps open; more are refused with 503.
    #[arg(
        long = "ws-max-connections",
        env = "SIARAN_WS_MAX_CONNECTIONS",
        default_value_t = 50_000
    )]
    pub ws_max_connections: usize,

    /// Seconds between viewer count updates. A process that stops updating (it crashed) stops
    /// counting after six of them.
    #[arg(
        long = "viewers-interval",
        env = "SIARAN_VIEWERS_INTERVAL",
        default_value_t = 5
    )]
    pub viewers_interval_secs: u64,

    /// Most overlay sockets one overlay token may have open in this process; more get 429
    /// `too_many_overlays`.
    #[arg(
        long = "overlay-max-per-token",
        env = "SIARAN_OVERLAY_MAX_PER_TOKEN",
        default_value_t = 16
    )]
    pub overlay_max_per_token: usize,

    /// Most overlay sockets one client address may have open in this process; more get 429
    /// `too_many_overlays`.
    #[arg(
        long = "overlay-max-per-address",
        env = "SIARAN_OVERLAY_MAX_PER_ADDRESS",
        default_value_t = 64
    )]
    pub overlay_max_per_address: usize,
}

impl LiveConfig {
    #[must_use]
    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ws_ping_interval_secs.max(1))
    }

    #[must_use]
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.ws_idle_timeout_secs.max(2))
    }

    #[must_use]
    pub fn viewers_interval(&self) -> Duration {
        Duration::from_secs(self.viewers_interval_secs.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        Config::from_args(std::iter::once("siaran").chain(args.iter().copied()))
            .expect("valid arguments")
    }

    #[test]
    fn ingest_url_follows_the_public_host() {
        let c = config(&["--public-url", "https://live.example.com/"]);
        assert_eq!(c.rtmp_ingest_url(), "rtmp://live.example.com/live");
        let c = config(&[
            "--public-url",
            "http://localhost:8000",
            "--rtmp-addr",
            "0.0.0.0:19350",
        ]);
        assert_eq!(c.rtmp_ingest_url(), "rtmp://localhost:19350/live");
    }

    #[test]
    fn production_refuses_missing_or_weak_secrets() {
        let mut c = config(&["--env", "production"]);
        c.jwt_secret = None;
        assert!(c.resolve_jwt_secret().is_err());
        c.jwt_secret = Some("short".into());
        assert!(c.resolve_jwt_secret().is_err());
        let strong = "x".repeat(40);
        c.jwt_secret = Some(strong.clone());
        assert_eq!(
            c.resolve_jwt_secret().expect("strong secret"),
            strong.as_bytes()
        );
    }
}
