//! `fake-midtrans`: serves the fake Midtrans until SIGINT or SIGTERM.
//!
//! Siaran reaches it as it reaches Midtrans: set `MIDTRANS_SNAP_URL` and `MIDTRANS_API_URL` to
//! the address it prints (or writes to `--addr-file`) and the same `MIDTRANS_SERVER_KEY`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use fake_midtrans::{Sandbox, SandboxSettings};

#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on (port 0: any free port; see --addr-file).
    #[arg(long, env = "MIDTRANS_SANDBOX_ADDR", default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// The server key Siaran authenticates with and notifications are signed with.
    #[arg(long, env = "MIDTRANS_SERVER_KEY", hide_env_values = true)]
    server_key: String,
    /// The client key the payment page and snap.js expect.
    #[arg(
        long,
        env = "MIDTRANS_CLIENT_KEY",
        default_value = "",
        hide_env_values = true
    )]
    client_key: String,
    /// Where notifications are sent, e.g. `http://127.0.0.1:8000/api/payments/midtrans/notification`.
    #[arg(long, env = "MIDTRANS_SANDBOX_NOTIFICATION_URL")]
    notification_url: Option<String>,
    /// Length of one "minute" of Midtrans' notification retry schedule, in milliseconds.
    #[arg(long, default_value_t = 60_000)]
    retry_minute_ms: u64,
    /// Write the bound address to this file once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let sandbox = Sandbox::start(SandboxSettings {
        addr: args.addr,
        server_key: args.server_key,
        client_key: args.client_key,
        notification_url: args.notification_url,
        retry_minute: Duration::from_millis(args.retry_minute_ms.max(1)),
    })
    .await?;
    sandbox.run(args.addr_file, shutdown_signal()).await
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = interrupt.await;
            return;
        };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
