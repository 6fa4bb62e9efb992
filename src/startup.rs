//! Building and running the application: connect, migrate, bind listeners, serve until told
//! to stop. Tests build it on port 0 against their own database.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::jwt::JwtKeys;
use crate::auth::password::Hasher;
use crate::config::Config;
use crate::ingest::KeyAuthorizer;
use crate::jobs::{self, JobQueue};
use crate::kv::Redis;
use crate::live::Live;
use crate::live::events::Events;
use crate::mail::Mailer;
use crate::payments::Midtrans;
use crate::services::Services;
use crate::state::AppState;
use crate::streams::housekeeping;
use crate::{db, http};

/// How long background tasks get to finish after the HTTP server has stopped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for PostgreSQL at start.
const DB_PATIENCE: Duration = Duration::from_secs(30);

/// A built, bound, not yet running server.
#[derive(Debug)]
pub struct Application {
    state: AppState,
    listener: TcpListener,
    router: Router,
    ingest: media::Ingest<KeyAuthorizer>,
    media_events: tokio::sync::mpsc::Receiver<media::MediaEvent>,
}

impl Application {
    /// Connects to PostgreSQL (waiting for it a little), migrates, and binds.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = db::connect(&config.database_url, config.db_max_connections, DB_PATIENCE).await?;
        db::migrate(&db).await?;
        Self::build_with_pool(config, db).await
    }

    /// Builds on an existing, migrated pool (tests use one database per test).
    pub async fn build_with_pool(config: Config, db: PgPool) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("binding HTTP on {} (SIARAN_HTTP_ADDR)", config.http_addr))?;
        let ingest_config = media::IngestConfig::new(config.rtmp_addr, config.hls_dir.clone());
        let (ingest, media_events) =
            media::Ingest::bind(ingest_config, KeyAuthorizer::new(db.clone()))
                .await
                .with_context(|| {
                    format!("binding RTMP on {} (SIARAN_RTMP_ADDR)", config.rtmp_addr)
                })?;
        let state = build_state(build_services(config, db).await?, ingest.handle())?;
        let router = http::router(state.clone());
        Ok(Self {
            state,
            listener,
            router,
            ingest,
            media_events,
        })
    }

    /// The bound HTTP address (with the real port when configured with port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.http_addr)
    }

    /// The bound RTMP address (with the real port when configured with port 0).
    pub fn rtmp_addr(&self) -> SocketAddr {
        self.ingest
            .local_addr()
            .unwrap_or(self.state.config.rtmp_addr)
    }

    #[must_use]
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then drains connections and background tasks.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            state,
            listener,
            router,
            ingest,
            media_events,
        } = self;
        tracing::info!(addr = %listener.local_addr()?, "HTTP listening");
        jobs::spawn_workers(&state.services(), state.config.jobs.workers);
        let token = state.shutdown.clone();
        // The ingest stops with the server; the bridge drains its last events (streams ending)
        // into the database before the pool closes.
        state.tasks.spawn(ingest.run(token.clone()));
        state
            .tasks
            .spawn(crate::ingest::bridge(state.clone(), media_events));
        state
            .tasks
            .spawn(housekeeping::run_ingest_watch(state.clone()));
        state
            .tasks
            .spawn(housekeeping::run_hls_retention(state.clone()));
        raise_open_file_limit(&state.config);
        let limits = http::server::ServerLimits::from_config(&state.config.server);
        http::server::serve(listener, router, limits, async move {
            shutdown.await;
            tracing::info!("shutting down");
            token.cancel();
        })
        .await
        .context("serving HTTP")?;
        state.tasks.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, state.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("background tasks did not finish within {DRAIN_TIMEOUT:?}");
        }
        state.db.close().await;
        Ok(())
    }
}

/// What every process needs (a server's or a worker's), on an existing, migrated pool.
pub async fn build_services(config: Config, db: PgPool) -> anyhow::Result<Services> {
    let redis = Redis::new(&config.redis_url, &config.redis_prefix).context("parsing REDIS_URL")?;
    if let Err(e) = redis.ping().await {
        tracing::warn!(cause = %e, "Redis is not reachable; live features wait for it to come back");
    }
    let limits = &config.donations;
    if limits.donation_min < 1 || limits.donation_min > limits.donation_max {
        anyhow::bail!(
            "SIARAN_DONATION_MIN ({}) must be at least 1 and at most SIARAN_DONATION_MAX ({})",
            limits.donation_min,
            limits.donation_max
        );
    }
    let mailer = Mailer::from_config(&config.smtp)?;
    let midtrans = Midtrans::from_config(&config.midtrans)?;
    if midtrans.is_none() {
        tracing::warn!(
            "MIDTRANS_SERVER_KEY is not set: online payment is off (bank transfers still work)"
        );
    }
    Ok(Services {
        jobs: JobQueue::new(redis.clone(), config.jobs.clone()),
        events: Events::new(db.clone(), redis.clone()),
        config: Arc::new(config),
        db,
        redis,
        mailer,
        midtrans,
        shutdown: CancellationToken::new(),
        tasks: TaskTracker::new(),
    })
}

/// A serving process's state: the services, and sessions, sockets (started here: the relay,
/// viewer counts, the log pruner), comments and `ingest`, the handle of its RTMP server.
pub fn build_state(services: Services, ingest: media::IngestHandle) -> anyhow::Result<AppState> {
    let Services {
        config,
        db,
        redis,
        events,
        jobs,
        mailer,
        midtrans,
        shutdown,
        tasks,
    } = services;
    let jwt = JwtKeys::new(&config.resolve_jwt_secret()?);
    let live = Live::start(&config.live, &events, &redis, &shutdown, &tasks);
    let comments = crate::comments::writer::Writer::new(db.clone(), events.clone(), tasks.clone());
    let passwords = Hasher::new(
        config.server.password_hash_concurrency,
        Duration::from_millis(config.server.password_hash_wait_ms),
    );
    if config.trust_proxy {
        tracing::warn!(
            "SIARAN_TRUST_PROXY is deprecated and now trusts proxies on the loopback interface only; \
             list your proxies' addresses in SIARAN_TRUSTED_PROXIES instead"
        );
    }
    let proxies = Arc::new(config.effective_trusted_proxies());
    Ok(AppState {
        config,
        db,
        events,
        live,
        comments,
        ingest,
        jobs,
        redis,
        jwt: Arc::new(jwt),
        passwords,
        proxies,
        mailer,
        midtrans,
        metrics: metrics_handle(),
        shutdown,
        tasks,
    })
}

/// Raises this process's soft limit of open files to its hard limit (every connection is a
/// descriptor; the soft limit is often 1,024) and says when even that is below the caps.
fn raise_open_file_limit(config: &Config) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            let wanted = config.server.max_connections as u64 + 1024;
            if limit < wanted {
                tracing::warn!(
                    open_files = limit,
                    wanted,
                    "the open-file limit is below SIARAN_HTTP_MAX_CONNECTIONS; connections past it \
                     wait in the listen queue (raise `ulimit -Hn`, or lower the cap)"
                );
            } else {
                tracing::debug!(open_files = limit, "open-file limit raised");
            }
        }
        Err(e) => tracing::warn!(cause = %e, "cannot raise the open-file limit"),
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(cause = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(cause = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// The process-wide Prometheus recorder (installed once; every app in the process shares it).
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".to_owned()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0,
                    ],
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is already installed (cannot happen in the binary); keep a
                // private one so /metrics still answers.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}
