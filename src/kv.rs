//! The Redis connection shared by every feature, and the naming of keys.
//!
//! One multiplexed [`ConnectionManager`] per process serves every command; it reconnects by
//! itself. The first connection is made lazily so that the server starts (and keeps serving the
//! API) while Redis is down; commands fail fast with a connection error until it is back.
//! Pub/sub and blocking reads need dedicated connections: take them from [`Redis::client`].

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisResult};
use tokio::sync::OnceCell;

/// How long a command may wait for a connection or an answer before it fails.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Handle to Redis; cheap to clone.
#[derive(Clone)]
pub struct Redis {
    client: Client,
    manager: Arc<OnceCell<ConnectionManager>>,
    prefix: Arc<str>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Parses the URL; does not connect.
    pub fn new(url: &str, prefix: &str) -> RedisResult<Self> {
        Ok(Self {
            client: Client::open(url)?,
            manager: Arc::new(OnceCell::new()),
            prefix: prefix.into(),
        })
    }

    /// The shared multiplexed connection, connecting on first use.
    pub async fn conn(&self) -> RedisResult<ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(DEFAULT_TIMEOUT))
            .set_response_timeout(Some(DEFAULT_TIMEOUT))
            .set_number_of_retries(2);
        self.manager
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config))
            .await
            .cloned()
    }

    /// The client, for dedicated connections (pub/sub, blocking stream reads).
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A key in Siaran's namespace: `key("login:fail:user:bob")` → `siaran:login:fail:user:bob`.
    #[must_use]
    pub fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.prefix)
    }

    /// Whether Redis answers a PING right now.
    pub async fn ping(&self) -> RedisResult<()> {
        let mut conn = self.conn().await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await
    }
}
