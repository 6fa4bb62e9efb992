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
        self.lock().finishing.remove(&stream_id);
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
