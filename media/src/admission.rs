//! Who gets a connection slot: idle or unauthenticated sockets can never lock a real publisher
//! out.
//!
//! A connection is *pending* from accept until its publish is authorized, then *publishing*.
//! The two have separate budgets. Pending connections are capped per address (IPv6 per /64) and
//! in total; when a budget is full the newcomer is still admitted and one pending connection is
//! closed to make room. Publishing connections are never evicted; beyond their budget a publish
//! is refused.
//!
//! Which one goes, in this order: one of the address holding the most pending slots; of the
//! address that opened the most connections in the last [`CHURN_WINDOW`]; the one that has got
//! least far (no handshake < handshaken < connected < authorizing); the oldest. Churn comes
//! before progress because an attacker decides how fast slots turn over: sockets evicted and
//! reconnected at once replace the whole budget in a few milliseconds, faster than an encoder
//! across the internet finishes its handshake, and "least progressed, oldest first" would then
//! close the encoder too. An encoder connects once; an address that cycles sockets is the first
//! to lose them, however far they got. To starve a publisher an attacker needs more fresh
//! addresses in a window than the budget turns over in the publisher's setup.
//!
//! The bookkeeping also gauges the bytes connections buffer for input in progress, so the
//! bound is visible (and tested) rather than assumed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// How far a pending connection has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Progress {
    Accepted,
    Handshaken,
    Connected,
    Authorizing,
}

/// Budgets, from [`IngestConfig`](crate::IngestConfig).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budgets {
    pub(crate) pending: usize,
    pub(crate) pending_per_address: usize,
    pub(crate) publishing: usize,
}

#[derive(Debug)]
struct Pending {
    address: IpAddr,
    progress: Progress,
    since: Instant,
    evict: CancellationToken,
}

/// How long an address's connections count against it when a victim is chosen.
pub(crate) const CHURN_WINDOW: Duration = Duration::from_secs(60);
/// Churn entries kept before expired ones are swept; past [`CHURN_FORGET_AT`] after a sweep the
/// history is dropped (a flood of that many addresses is beyond what it can tell apart).
const CHURN_SWEEP_AT: usize = 4096;
const CHURN_FORGET_AT: usize = 65_536;

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    pending: HashMap<u64, Pending>,
    per_address: HashMap<IpAddr, usize>,
    /// Connections each address opened in its current window, and when the window began.
    churn: HashMap<IpAddr, (u32, Instant)>,
    publishing: usize,
}

impl Inner {
    /// Counts a connection of `address`.
    fn opened(&mut self, address: IpAddr, now: Instant) {
        if self.churn.len() >= CHURN_SWEEP_AT {
            self.churn
                .retain(|_, (_, since)| now.duration_since(*since) < CHURN_WINDOW);
            if self.churn.len() >= CHURN_FORGET_AT {
                self.churn.clear();
            }
        }
        let entry = self.churn.entry(address).or_insert((0, now));
        if now.duration_since(entry.1) >= CHURN_WINDOW {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
    }

    fn churn_of(&self, address: IpAddr) -> u32 {
        self.churn.get(&address).map_or(0, |(count, _)| *count)
    }
}

/// Connection slots and buffered-bytes gauges of one ingest server.
#[derive(Debug)]
pub(crate) struct Admission {
    budgets: Budgets,
    inner: Mutex<Inner>,
    buffered: AtomicUsize,
    peak_buffered: AtomicUsize,
    evicted: AtomicU64,
}

/// Connection counts and buffered bytes of an ingest server, as [`IngestHandle::connections`]
/// reports them.
///
/// [`IngestHandle::connections`]: crate::IngestHandle::connections
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Connections that have not (yet) been authorized to publish.
    pub pending: usize,
    /// Connections publishing a stream.
    pub publishing: usize,
    /// Bytes all connections hold for input in progress (messages not yet complete, input
    /// waiting for an authorization).
    pub buffered_bytes: usize,
    /// The most [`Self::buffered_bytes`] has been since the server started.
    pub peak_buffered_bytes: usize,
    /// Pending connections closed to make room for newer ones.
    pub evicted: u64,
}

/// The address key of the per-address budget: an IPv6 host usually owns a whole /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

impl Admission {
    pub(crate) fn new(budgets: Budgets) -> Self {
        Self {
            budgets,
            inner: Mutex::new(Inner::default()),
            buffered: AtomicUsize::new(0),
            peak_buffered: AtomicUsize::new(0),
            evicted: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update below completes before the lock is released: a panic elsewhere while it
        // was held leaves nothing half-done.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn stats(&self) -> ConnectionStats {
        let inner = self.lock();
        ConnectionStats {
            pending: inner.pending.len(),
            publishing: inner.publishing,
            buffered_bytes: self.buffered.load(Ordering::Relaxed),
            peak_buffered_bytes: self.peak_buffered.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
        }
    }

    /// Admits a new connection from `ip` as pending, closing (through its `evict` token) the
    /// least-progressed pending connection of a full budget. `evict` is cancelled to close this
    /// connection when it is evicted in turn.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr, evict: CancellationToken) -> Ticket {
        let address = address_key(ip);
        let now = Instant::now();
        let mut inner = self.lock();
        inner.opened(address, now);
        if inner.per_address.get(&address).copied().unwrap_or(0) >= self.budgets.pending_per_address
        {
            self.evict_one(&mut inner, Some(address));
        }
        if inner.pending.len() >= self.budgets.pending {
            self.evict_one(&mut inner, None);
        }
        inner.next_id += 1;
        let id = inner.next_id;
        inner.pending.insert(
            id,
            Pending {
                address,
                progress: Progress::Accepted,
                since: now,
                evict,
            },
        );
        *inner.per_address.entry(address).or_insert(0) += 1;
        Ticket {
            admission: Arc::clone(self),
            id,
            state: TicketState::Pending,
            buffered: 0,
        }
    }

    /// Closes one pending connection, of `address` when given, chosen as the module says.
    fn evict_one(&self, inner: &mut Inner, address: Option<IpAddr>) {
        let victim = inner
            .pending
            .iter()
            .filter(|(_, p)| address.is_none_or(|a| p.address == a))
            .min_by_key(|(_, p)| {
                let held = inner.per_address.get(&p.address).copied().unwrap_or(0);
                (
                    std::cmp::Reverse(held),
                    std::cmp::Reverse(inner.churn_of(p.address)),
                    p.progress,
                    p.since,
                )
            })
            .map(|(id, _)| *id);
        if let Some(id) = victim {
            if let Some(pending) = Self::remove_pending(inner, id) {
                pending.evict.cancel();
            }
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn remove_pending(inner: &mut Inner, id: u64) -> Option<Pending> {
        let pending = inner.pending.remove(&id)?;
        if let Some(count) = inner.per_address.get_mut(&pending.address) {
            *count -= 1;
            if *count == 0 {
                inner.per_address.remove(&pending.address);
            }
        }
        Some(pending)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TicketState {
    Pending,
    Publishing,
    /// Evicted, or ended: holds no slot.
    Gone,
}

/// One connection's slot, released when dropped (also when its task unwinds).
#[derive(Debug)]
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    state: TicketState,
    /// What this connection adds to the buffered-bytes gauge.
    buffered: usize,
}

impl Ticket {
    /// Records how far the connection has got (it is then evicted after less progressed ones).
    pub(crate) fn progress(&mut self, progress: Progress) {
        if self.state != TicketState::Pending {
            return;
        }
        let mut inner = self.admission.lock();
        match inner.pending.get_mut(&self.id) {
            Some(pending) => pending.progress = pending.progress.max(progress),
            None => self.state = TicketState::Gone,
        }
    }

    /// Moves the connection to the publishing budget; `false` when that is full (or the
    /// connection was evicted meanwhile).
    pub(crate) fn promote(&mut self) -> bool {
        match self.state {
            TicketState::Publishing => return true,
            TicketState::Gone => return false,
            TicketState::Pending => {}
        }
        let mut inner = self.admission.lock();
        if !inner.pending.contains_key(&self.id) {
            self.state = TicketState::Gone;
            return false;
        }
        if inner.publishing >= self.admission.budgets.publishing {
            return false;
        }
        Admission::remove_pending(&mut inner, self.id);
        inner.publishing += 1;
        self.state = TicketState::Publishing;
        true
    }

    /// Sets this connection's share of the buffered-bytes gauge.
    pub(crate) fn set_buffered(&mut self, bytes: usize) {
        let gauge = &self.admission.buffered;
        if bytes >= self.buffered {
            let total =
                gauge.fetch_add(bytes - self.buffered, Ordering::Relaxed) + bytes - self.buffered;
            self.admission
                .peak_buffered
                .fetch_max(total, Ordering::Relaxed);
        } else {
            gauge.fetch_sub(self.buffered - bytes, Ordering::Relaxed);
        }
        self.buffered = bytes;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.set_buffered(0);
        let mut inner = self.admission.lock();
        match self.state {
            TicketState::Pending => {
                Admission::remove_pending(&mut inner, self.id);
            }
            TicketState::Publishing => inner.publishing -= 1,
            TicketState::Gone => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(pending: usize, per_address: usize, publishing: usize) -> Arc<Admission> {
        Arc::new(Admission::new(Budgets {
            pending,
            pending_per_address: per_address,
            publishing,
        }))
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn idle_sockets_of_an_address_make_room_for_one_that_progresses() {
        let admission = admission(100, 4, 10);
        let idle: Vec<_> = (0..4)
            .map(|_| {
                let token = CancellationToken::new();
                (admission.admit(A, token.clone()), token)
            })
            .collect();
        let mut publisher = admission.admit(A, CancellationToken::new());
        assert!(idle[0].1.is_cancelled(), "the oldest idle socket went");
        publisher.progress(Progress::Handshaken);

        // Idle sockets keep coming: they evict each other, never the publisher.
        let mut later = Vec::new();
        for _ in 0..20 {
            later.push(admission.admit(A, CancellationToken::new()));
        }

        assert_eq!(admission.stats().pending, 4);
        assert_eq!(admission.stats().evicted, 21);
        assert!(publisher.promote());
        assert_eq!(admission.stats().publishing, 1);
    }

    #[test]
    fn a_full_total_budget_takes_from_the_busiest_address() {
        let admission = admission(4, 4, 10);
        let b = CancellationToken::new();
        let _b = admission.admit(B, b.clone());
        let _a: Vec<_> = (0..3)
            .map(|_| admission.admit(A, CancellationToken::new()))
            .collect();

        let _newcomer = admission.admit(B, CancellationToken::new());

        assert!(!b.is_cancelled(), "B holds fewer slots than A");
        assert_eq!(admission.stats().pending, 4);
    }

    #[test]
    fn sockets_cycled_from_many_addresses_never_evict_a_publisher_that_connected_once() {
        // 256 strangers from as many addresses keep 128 idle slots full: each evicted socket
        // reconnects at once. A publisher then connects once, from its own address, and has not
        // even finished its handshake; it must outlive a hundred turnovers of the budget.
        let stranger = |i: u32| IpAddr::V4(std::net::Ipv4Addr::from(0x7f01_0000 + i % 256));
        let admission = admission(128, 16, 10);
        let admit = |i: u32| {
            let token = CancellationToken::new();
            (admission.admit(stranger(i), token.clone()), token)
        };
        let mut held = Vec::new();
        let cycle = |from: u32, to: u32, held: &mut Vec<_>| {
            for i in from..to {
                held.push(admit(i));
                // An evicted socket's task ends and drops its ticket.
                held.retain(|(_, token): &(Ticket, CancellationToken)| !token.is_cancelled());
            }
        };
        cycle(0, 1024, &mut held);
        let evicted = CancellationToken::new();
        let mut publisher = admission.admit(A, evicted.clone());

        cycle(1024, 13_824, &mut held);

        assert!(!evicted.is_cancelled(), "the publisher was evicted");
        assert_eq!(admission.stats().pending, 128);
        publisher.progress(Progress::Authorizing);
        assert!(publisher.promote());
    }

    #[test]
    fn among_addresses_that_connected_as_often_the_least_progressed_go_first() {
        let admission = admission(3, 3, 10);
        let [a, b, c] = std::array::from_fn(|_| CancellationToken::new());
        let _a = admission.admit(A, a.clone());
        let mut b_ticket = admission.admit(B, b.clone());
        b_ticket.progress(Progress::Connected);
        let _c = admission.admit(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 3)), c.clone());

        let _d = admission.admit(
            IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 4)),
            CancellationToken::new(),
        );

        assert!(a.is_cancelled(), "A is the oldest of the least progressed");
        assert!(!b.is_cancelled() && !c.is_cancelled());
        assert_eq!(admission.stats().pending, 3);
    }

    #[test]
    fn publishers_have_their_own_budget_and_are_never_evicted() {
        let admission = admission(2, 2, 1);
        let token = CancellationToken::new();
        let mut first = admission.admit(A, token.clone());
        assert!(first.promote());
        let mut second = admission.admit(A, CancellationToken::new());
        for _ in 0..10 {
            drop(admission.admit(A, CancellationToken::new()));
        }

        assert!(!token.is_cancelled());
        assert!(!second.promote(), "the publishing budget is full");
        drop(first);
        assert!(second.promote());
    }

    #[test]
    fn dropping_tickets_releases_slots_and_buffered_bytes() {
        let admission = admission(10, 10, 10);
        let mut ticket = admission.admit(A, CancellationToken::new());
        ticket.set_buffered(1000);
        ticket.set_buffered(10);
        assert_eq!(admission.stats().buffered_bytes, 10);
        assert_eq!(admission.stats().peak_buffered_bytes, 1000);

        drop(ticket);

        let stats = admission.stats();
        assert_eq!((stats.pending, stats.buffered_bytes), (0, 0));
    }

    #[test]
    fn ipv6_hosts_share_their_64() {
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(address_key(one), address_key(other));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(mapped), A);
    }
}
