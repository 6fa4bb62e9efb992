//! Which publisher feeds which stream: takeover, stop, and the hand-off to the stream threads.
//!
//! A stream has at most one current publisher. A second publish for the same stream takes
//! over: the first is kicked, the stream thread keeps running (same playlist, a discontinuity).
//! When the current publisher leaves, the slot goes and with it the last sender to the stream
//! thread, which then finishes the playlist and ends the stream. Until it has, the stream is
//! "finishing" and cannot be published again (OBS retries on its own).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::hls::LiveHls;
use crate::worker::WorkerSender;

/// Identifies one publishing connection; grows monotonically, so a stream thread can tell the
/// newest publisher from a stale one.
pub(crate) type PublisherId = u64;

#[derive(Debug)]
struct Slot {
    publisher: PublisherId,
    kick: CancellationToken,
    input: WorkerSender,
}

#[derive(Debug, Default)]
struct Inner {
    slots: HashMap<Uuid, Slot>,
    finishing: HashSet<Uuid>,
    /// The live edge of each stream whose thread runs (until it has finished the playlist).
    hls: HashMap<Uuid, Arc<LiveHls>>,
}

/// The live streams of this ingest server.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    inner: Mutex<Inner>,
    next_publisher: AtomicU64,
}

/// What a publish request got.
#[derive(Debug)]
pub(crate) enum Claim {
    /// A new stream: the caller starts its thread with this input.
    New(PublisherId),
    /// Took over a running stream; media goes to its thread through this sender.
    TakenOver(PublisherId, WorkerSender),
    /// The stream is still finishing its previous session.
    Busy,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the maps inconsistent (every update is a
        // single insert/remove), so a poisoned lock is still safe to use.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes `kick`'s connection the stream's publisher. For [`Claim::New`], the caller must
    /// follow with [`Registry::install`].
    pub(crate) fn claim(&self, stream_id: Uuid, kick: CancellationToken) -> Claim {
        let publisher = self.next_publisher.fetch_add(1, Ordering::Relaxed) + 1;
        let mut inner = self.lock();
        if inner.finishing.contains(&stream_id) {
            return Claim::Busy;
        }
        match inner.slots.get_mut(&stream_id) {
            Some(slot) => {
                slot.kick.cancel();
                slot.publisher = publisher;
                slot.kick = kick;
                Claim::TakenOver(publisher, slot.input.clone())
            }
            None => Claim::New(publisher),
        }
    }

    /// Records the thread input of a stream claimed as [`Claim::New`].
    pub(crate) fn install(
        &self,
        stream_id: Uuid,
        publisher: PublisherId,
        kick: CancellationToken,
        input: WorkerSender,
    ) {
        self.lock().slots.insert(
            stream_id,
            Slot {
                publisher,
                kick,
                input,
            },
        );
    }

    /// The publisher's connection is gone. If it was still the stream's publisher, the stream
    /// ends: the slot (and its sender) is dropped and the stream is finishing until its thread
    /// calls [`Registry::finished`].
    pub(crate) fn release(&self, stream_id: Uuid, publisher: PublisherId) {
        let mut inner = self.lock();
        if inner
            .slots
            .get(&stream_id)
            .is_some_and(|s| s.publisher == publisher)
        {
            inner.slots.remove(&stream_id);
            inner.finishing.insert(stream_id);
        }
    }

    /// The stream thread has written the end of the playlist.
    pub(crate) fn finished(&self, stream_id: Uuid) {
        let mut inner = self.lock();
        inner.finishing.remove(&stream_id);
        inner.hls.remove(&stream_id);
    }

    /// The stream thread's live edge, served until the thread has [finished](Self::finished).
    pub(crate) fn set_hls(&self, stream_id: Uuid, hls: Arc<LiveHls>) {
        self.lock().hls.insert(stream_id, hls);
    }

    /// The live edge of a stream this server ingests.
    pub(crate) fn hls(&self, stream_id: Uuid) -> Option<Arc<LiveHls>> {
        self.lock().hls.get(&stream_id).cloned()
    }

    /// Disconnects the stream's publisher (which ends the stream unless another takes over).
    pub(crate) fn kick(&self, stream_id: Uuid) -> bool {
        match self.lock().slots.get(&stream_id) {
            Some(slot) => {
                slot.kick.cancel();
                true
            }
            None => false,
        }
    }

    /// Disconnects the publisher only if it is still `publisher` (a stream thread refusing what
    /// that publisher sent must not kick one that took over since).
    pub(crate) fn kick_publisher(&self, stream_id: Uuid, publisher: PublisherId) {
        if let Some(slot) = self.lock().slots.get(&stream_id)
            && slot.publisher == publisher
        {
            slot.kick.cancel();
        }
    }

    pub(crate) fn is_live(&self, stream_id: Uuid) -> bool {
        self.lock().slots.contains_key(&stream_id)
    }

    /// The streams currently published.
    pub(crate) fn live_streams(&self) -> Vec<Uuid> {
        self.lock().slots.keys().copied().collect()
    }
}

/// Shared handle type.
pub(crate) type SharedRegistry = Arc<Registry>;

#[cfg(test)]
mod tests {
    use super::*;

    fn claim_new(registry: &Registry, stream_id: Uuid) -> (PublisherId, CancellationToken) {
        let kick = CancellationToken::new();
        let Claim::New(publisher) = registry.claim(stream_id, kick.clone()) else {
            panic!("a stream nobody publishes is new");
        };
        let (input, _rx, _dropped) = crate::worker::queue();
        registry.install(stream_id, publisher, kick.clone(), input);
        (publisher, kick)
    }

    #[test]
    fn a_second_publish_takes_over_and_kicks_the_first() {
        let registry = Registry::default();
        let stream = Uuid::new_v4();
        let (first, first_kick) = claim_new(&registry, stream);
        assert!(registry.is_live(stream));

        let second_kick = CancellationToken::new();
        let Claim::TakenOver(second, _input) = registry.claim(stream, second_kick.clone()) else {
            panic!("a live stream is taken over");
        };

        assert!(second > first, "publisher ids grow");
        assert!(first_kick.is_cancelled(), "the first publisher is kicked");
        assert!(!second_kick.is_cancelled());
        // The first publisher's connection going away does not end the stream.
        registry.release(stream, first);
        assert!(registry.is_live(stream));
        assert_eq!(registry.live_streams(), [stream]);
    }

    #[test]
    fn a_stream_whose_publisher_left_is_busy_until_its_thread_finished() {
        let registry = Registry::default();
        let stream = Uuid::new_v4();
        let (publisher, _kick) = claim_new(&registry, stream);

        registry.release(stream, publisher);

        assert!(!registry.is_live(stream));
        assert!(matches!(
            registry.claim(stream, CancellationToken::new()),
            Claim::Busy
        ));
        registry.finished(stream);
        assert!(matches!(
            registry.claim(stream, CancellationToken::new()),
            Claim::New(_)
        ));
    }

    #[test]
    fn a_refusal_aimed_at_a_replaced_publisher_kicks_nobody() {
        let registry = Registry::default();
        let stream = Uuid::new_v4();
        let (first, _first_kick) = claim_new(&registry, stream);
        let second_kick = CancellationToken::new();
        let Claim::TakenOver(second, _input) = registry.claim(stream, second_kick.clone()) else {
            panic!("a live stream is taken over");
        };

        registry.kick_publisher(stream, first);
        assert!(!second_kick.is_cancelled(), "the newer publisher stays");
        registry.kick_publisher(stream, second);
        assert!(second_kick.is_cancelled());
        assert!(
            registry.kick(stream),
            "the slot stays until its publisher leaves"
        );
        assert!(
            !registry.kick(Uuid::new_v4()),
            "nothing to kick on an unknown stream"
        );
    }
}
