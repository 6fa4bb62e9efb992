//! The media core on its own: RTMP in, HLS out, no database. Every stream key is accepted and
//! publishes to a stream id derived from it; events are logged.
//!
//! ```sh
//! cargo run -p media --example ingest -- 127.0.0.1:1935 /tmp/hls
//! ffmpeg -re -i input.flv -c copy -f flv rtmp://127.0.0.1:1935/live/anything
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use media::{AuthError, Authorizer, Ingest, IngestConfig};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

struct AnyKey;

impl Authorizer for AnyKey {
    async fn authorize(&self, stream_key: &str, _peer: SocketAddr) -> Result<Uuid, AuthError> {
        if stream_key.is_empty() {
            return Err(AuthError::UnknownKey);
        }
        Ok(Uuid::new_v5(&Uuid::NAMESPACE_OID, stream_key.as_bytes()))
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:1935".to_owned())
        .parse()
        .map_err(std::io::Error::other)?;
    let root = PathBuf::from(args.next().unwrap_or_else(|| "hls-out".to_owned()));
    let (ingest, mut events) = Ingest::bind(IngestConfig::new(listen, root), AnyKey).await?;
    tracing::info!(addr = %ingest.local_addr()?, "ingest ready");
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    let logger = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            tracing::info!(?event, "media event");
        }
    });
    ingest.run(shutdown).await;
    let _ = logger.await;
    Ok(())
}
