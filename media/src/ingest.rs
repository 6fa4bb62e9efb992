//! The RTMP ingest server: accepts connections (slots handed out by
//! [`admission`](crate::admission), bad-key throttling per address), runs one
//! [`session`](crate::session) task per connection, and owns every thread the media core
//! starts, stopping them all on shutdown.
//!
//! Every connection is its own task on the ingest thread's runtime: a panic in one ends that
//! task only (tokio catches it), and what the connection held (its slot, its stream) is
//! released by drop guards as the task unwinds.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::admission::{Admission, Budgets, ConnectionStats};
use crate::registry::{Registry, SharedRegistry};
use crate::thumbnail::Thumbnailer;
use crate::{Authorizer, IngestConfig, MediaEvent, session};

/// Events waiting for the application.
const EVENT_QUEUE: usize = 1024;
/// Throttle entries kept before expired ones are swept.
const THROTTLE_SWEEP_AT: usize = 4096;

/// What every connection task shares.
#[derive(Debug)]
pub(crate) struct Shared<A> {
    pub(crate) config: IngestConfig,
    pub(crate) authorizer: A,
    pub(crate) registry: SharedRegistry,
    pub(crate) events: mpsc::Sender<MediaEvent>,
    pub(crate) thumbnails: Thumbnailer,
    /// Stream threads and the thumbnailer: shutdown waits for them.
    pub(crate) threads: TaskTracker,
    /// The application's runtime, where the authorizer runs (it uses the app's connections).
    pub(crate) app: tokio::runtime::Handle,
    pub(crate) admission: Arc<Admission>,
    throttle: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl<A> Shared<A> {
    /// Whether `ip` sent too many bad keys recently.
    fn is_throttled(&self, ip: IpAddr) -> bool {
        let throttle = self
            .throttle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        throttle.get(&ip).is_some_and(|(count, since)| {
            *count >= self.config.bad_key_limit && since.elapsed() < self.config.bad_key_window
        })
    }

    /// Counts a refused stream key from `ip`.
    pub(crate) fn record_bad_key(&self, ip: IpAddr) {
        let window = self.config.bad_key_window;
        let mut throttle = self
            .throttle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if throttle.len() >= THROTTLE_SWEEP_AT {
            throttle.retain(|_, (_, since)| since.elapsed() < window);
        }
        let entry = throttle.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= window {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

/// A bound RTMP ingest server, not yet accepting.
#[derive(Debug)]
pub struct Ingest<A> {
    listener: TcpListener,
    shared: Arc<Shared<A>>,
}

/// What the application keeps to act on live streams; cheap to clone.
#[derive(Debug, Clone)]
pub struct IngestHandle {
    registry: SharedRegistry,
    admission: Arc<Admission>,
}

impl IngestHandle {
    /// Connections and the bytes they buffer, right now.
    #[must_use]
    pub fn connections(&self) -> ConnectionStats {
        self.admission.stats()
    }

    /// Disconnects the stream's publisher, which ends the stream (its [`MediaEvent::Ended`]
    /// follows once the playlist is final). `false` if this server is not ingesting it.
    pub fn stop(&self, stream_id: Uuid) -> bool {
        self.registry.kick(stream_id)
    }

    /// Whether a publisher is connected for the stream on this server.
    #[must_use]
    pub fn is_publishing(&self, stream_id: Uuid) -> bool {
        self.registry.is_live(stream_id)
    }

    /// The live edge (LL-HLS playlist, parts, recent segments in memory) of a stream this
    /// server ingests, until its playlist is final; `None` for any other stream, whose HLS is
    /// read from its directory.
    #[must_use]
    pub fn live_hls(&self, stream_id: Uuid) -> Option<Arc<crate::LiveHls>> {
        self.registry.hls(stream_id)
    }

    /// The streams being published on this server.
    #[must_use]
    pub fn publishing(&self) -> Vec<Uuid> {
        self.registry.live_streams()
    }
}

impl<A: Authorizer> Ingest<A> {
    /// Initialises GStreamer, binds the listener and starts the thumbnail thread. Events arrive
    /// on the returned receiver until the server has stopped.
    pub async fn bind(
        config: IngestConfig,
        authorizer: A,
    ) -> std::io::Result<(Self, mpsc::Receiver<MediaEvent>)> {
        gstreamer::init().map_err(std::io::Error::other)?;
        crate::pipeline::register_muxers().map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(config.listen).await?;
        let threads = TaskTracker::new();
        let thumbnails = Thumbnailer::spawn(threads.token())?;
        let (events, receiver) = mpsc::channel(EVENT_QUEUE);
        let admission = Arc::new(Admission::new(Budgets {
            pending: config.max_pending.max(1),
            pending_per_address: config.max_pending_per_address.max(1),
            publishing: config.max_publishers,
        }));
        let shared = Arc::new(Shared {
            config,
            authorizer,
            registry: Arc::new(Registry::default()),
            events,
            thumbnails,
            threads,
            app: tokio::runtime::Handle::current(),
            admission,
            throttle: Mutex::new(HashMap::new()),
        });
        Ok((Self { listener, shared }, receiver))
    }

    /// The bound address (with the real port when configured with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    #[must_use]
    pub fn handle(&self) -> IngestHandle {
        IngestHandle {
            registry: Arc::clone(&self.shared.registry),
            admission: Arc::clone(&self.shared.admission),
        }
    }

    /// Accepts publishers until `shutdown` is cancelled; then disconnects them, lets every
    /// stream finish its playlist and waits for all threads to exit.
    ///
    /// The RTMP connections are served by one thread with a runtime of its own, as nginx's
    /// worker serves them: the sockets of every publisher are polled together and a payload
    /// never wakes a second executor thread to steal it.
    pub async fn run(self, shutdown: CancellationToken) {
        let Self { listener, shared } = self;
        let listener = match listener.into_std() {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!(cause = %e, "RTMP ingest cannot start");
                return;
            }
        };
        let (done, stopped) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("rtmp-ingest".to_owned())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(serve(listener, shared, shutdown)),
                    Err(e) => tracing::error!(cause = %e, "RTMP ingest cannot start its runtime"),
                }
                let _ = done.send(());
            });
        match spawned {
            Ok(_) => {
                let _ = stopped.await;
            }
            Err(e) => tracing::error!(cause = %e, "RTMP ingest cannot start its thread"),
        }
    }
}

async fn serve<A: Authorizer>(
    listener: std::net::TcpListener,
    shared: Arc<Shared<A>>,
    shutdown: CancellationToken,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(cause = %e, "RTMP ingest cannot listen");
            return;
        }
    };
    let connections = TaskTracker::new();
    tracing::info!(addr = ?listener.local_addr().ok(), "RTMP ingest listening");
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(cause = %e, "accepting an RTMP connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if shared.is_throttled(peer.ip()) {
            tracing::info!(%peer, "refusing a connection: too many bad stream keys");
            continue;
        }
        // Kicked on shutdown, takeover, stop, or eviction while still pending.
        let token = shutdown.child_token();
        let ticket = shared.admission.admit(peer.ip(), token.clone());
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            session::serve(&shared, socket, peer, token, ticket).await;
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    let threads = shared.threads.clone();
    // The last senders to the stream threads and the thumbnailer go with `shared`.
    drop(shared);
    threads.close();
    threads.wait().await;
    tracing::info!("RTMP ingest stopped");
}
