//! The `siaran` command line: serve (default), worker, migrate, create-superuser,
//! generate-dummy-data, openapi.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::auth::password;
use crate::config::Config;
use crate::startup::{Application, shutdown_signal};
use crate::users::domain::{Email, Password, Username};
use crate::{db, jobs, seed, startup, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "siaran",
    version,
    about = "Self-hosted live streaming with chat and donations"
)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API, WebSocket, HLS and RTMP ingest (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create an administrator account (staff and superuser).
    CreateSuperuser {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// The password; read from the terminal (or stdin) when not given.
        #[arg(long, env = "SIARAN_SUPERUSER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Fill the database with demo users, streams, donations and comments. Safe to run twice.
    GenerateDummyData,
    /// Print the OpenAPI document (what `/api/openapi.json` serves) and exit; needs no database.
    Openapi,
    /// Run background job workers only (no HTTP); add these to scale job capacity.
    Worker {
        /// Concurrent workers in this process.
        #[arg(long, env = "SIARAN_WORKER_CONCURRENCY", default_value_t = 4)]
        concurrency: usize,
    },
}

/// Parses the command line (after loading `.env`) and runs the command.
pub async fn run() -> ExitCode {
    let dotenv = dotenvy::dotenv();
    let cli = Cli::parse();
    telemetry::init(cli.config.log_format);
    if let Err(e) = &dotenv
        && !e.not_found()
    {
        tracing::warn!(cause = %e, ".env could not be read");
    }
    match execute(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(config).await?;
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Migrate => {
            let pool = connect(&config).await?;
            db::migrate(&pool).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::CreateSuperuser {
            username,
            email,
            password,
        } => {
            let refused = |e: crate::error::FieldError| anyhow::anyhow!("{}", e.message);
            let password = match password {
                Some(p) => p,
                None => read_password()?,
            };
            // The same rules as registration: the domain types own them.
            let password = Password::parse(&password, &username, &email).map_err(refused)?;
            let username = Username::parse(&username).map_err(refused)?;
            let email = Email::parse(&email).map_err(refused)?;
            let pool = connect(&config).await?;
            db::migrate(&pool).await?;
            let hash = password::hash(password.into_inner()).await?;
            let inserted =
                crate::users::db::insert_superuser(&pool, username.as_str(), email.as_str(), &hash)
                    .await?;
            if !inserted {
                bail!("a user with that username or email already exists");
            }
            tracing::info!(username = username.as_str(), "superuser created");
            Ok(())
        }
        Command::Worker { concurrency } => {
            let pool = db::connect(
                &config.database_url,
                u32::try_from(concurrency)
                    .unwrap_or(u32::MAX)
                    .saturating_add(2),
                std::time::Duration::from_secs(30),
            )
            .await?;
            db::migrate(&pool).await?;
            // Jobs only: no HTTP, sockets, sessions or RTMP in this process.
            let services = startup::build_services(config, pool).await?;
            let stop = services.shutdown.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                tracing::info!("worker shutting down");
                stop.cancel();
            });
            tracing::info!(concurrency, "worker running");
            let db = services.db.clone();
            jobs::run_workers(services, concurrency).await;
            db.close().await;
            Ok(())
        }
        Command::Openapi => {
            let (_, doc) = crate::http::api();
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", doc.to_pretty_json()?)?;
            Ok(())
        }
        Command::GenerateDummyData => {
            let pool = connect(&config).await?;
            db::migrate(&pool).await?;
            let report = seed::generate(&pool).await?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{report}")?;
            Ok(())
        }
    }
}

async fn connect(config: &Config) -> anyhow::Result<sqlx::PgPool> {
    db::connect(&config.database_url, 2, std::time::Duration::from_secs(30)).await
}

fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let mut err = std::io::stderr().lock();
        write!(err, "Password (shown as you type): ")?;
        err.flush()?;
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
