//! The reorder buffer in front of a hub: events that arrived ahead of a missing one wait here,
//! briefly, for it. Pure bookkeeping — no I/O, no clock of its own — so that [`super::hub`]
//! decides what to read from the log and this decides only what is next in line.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

/// Events held by id until the ones before them arrive, with the moment the wait ends.
#[derive(Debug)]
pub(crate) struct Reorder<T> {
    waiting: BTreeMap<u64, T>,
    capacity: usize,
    deadline: Option<Instant>,
}

/// What [`Reorder::hold`] did with an event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Held {
    /// It waits; the deadline is set if it was not already.
    Waiting,
    /// The buffer is full: read the log now instead of waiting.
    Full,
}

impl<T> Reorder<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            waiting: BTreeMap::new(),
            capacity,
            deadline: None,
        }
    }

    /// Keeps `event` (id `id`) until the events before it arrive, waiting at most `grace` from
    /// `now` — measured from the first event held, so a steady trickle of later events does not
    /// postpone the log read for ever.
    pub(crate) fn hold(&mut self, id: u64, event: T, now: Instant, grace: Duration) -> Held {
        if self.waiting.len() >= self.capacity {
            return Held::Full;
        }
        self.waiting.insert(id, event);
        self.deadline.get_or_insert(now + grace);
        Held::Waiting
    }

    /// The held event that comes right after `last` (the last id delivered), if it is here.
    /// Held events at or before `last` were delivered another way (the log) and are dropped.
    /// Once nothing is held, there is nothing to wait for and the deadline is cleared.
    pub(crate) fn next_after(&mut self, last: u64) -> Option<T> {
        let next = loop {
            let Some(entry) = self.waiting.first_entry() else {
                break None;
            };
            let id = *entry.key();
            if id <= last {
                entry.remove();
            } else if id == last + 1 {
                break Some(entry.remove());
            } else {
                break None;
            }
        };
        if self.waiting.is_empty() {
            self.deadline = None;
        }
        next
    }

    /// When to stop waiting and read the missing events from the log; `None` with nothing held.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// After a log read that still left a gap: wait `wait` more from `now`.
    pub(crate) fn wait_again(&mut self, now: Instant, wait: Duration) {
        if !self.waiting.is_empty() {
            self.deadline = Some(now + wait);
        }
    }

    /// Forgets everything held (the hub rewound to the log).
    pub(crate) fn clear(&mut self) {
        self.waiting.clear();
        self.deadline = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_millis(25);

    /// Delivers everything that is next in line after `last`, as the hub does.
    fn drain(buffer: &mut Reorder<&'static str>, last: &mut u64) -> Vec<&'static str> {
        let mut out = Vec::new();
        while let Some(event) = buffer.next_after(*last) {
            *last += 1;
            out.push(event);
        }
        out
    }

    #[test]
    fn events_ahead_of_a_gap_wait_and_come_out_in_id_order() {
        let now = Instant::now();
        let mut buffer = Reorder::new(8);
        let mut last = 1;
        assert_eq!(buffer.hold(4, "four", now, GRACE), Held::Waiting);
        assert_eq!(buffer.hold(3, "three", now, GRACE), Held::Waiting);
        assert!(
            drain(&mut buffer, &mut last).is_empty(),
            "2 is still missing"
        );
        // 2 arrives and is delivered by the hub; the buffer then yields 3 and 4.
        last = 2;
        assert_eq!(drain(&mut buffer, &mut last), ["three", "four"]);
        assert_eq!(last, 4);
        assert!(buffer.waiting.is_empty());
        assert_eq!(buffer.deadline(), None);
    }

    #[test]
    fn the_deadline_runs_from_the_first_event_held() {
        let start = Instant::now();
        let mut buffer = Reorder::new(8);
        buffer.hold(5, "five", start, GRACE);
        buffer.hold(6, "six", start + Duration::from_millis(20), GRACE);
        assert_eq!(buffer.deadline(), Some(start + GRACE));
    }

    #[test]
    fn events_the_log_already_delivered_are_dropped() {
        let now = Instant::now();
        let mut buffer = Reorder::new(8);
        buffer.hold(3, "three", now, GRACE);
        buffer.hold(5, "five", now, GRACE);
        buffer.hold(6, "six", now, GRACE);
        // The log read delivered up to 5: 3 and 5 are stale, 6 is next.
        let mut last = 5;
        assert_eq!(drain(&mut buffer, &mut last), ["six"]);
        assert!(buffer.waiting.is_empty());
    }

    #[test]
    fn a_full_buffer_refuses_so_the_hub_reads_the_log() {
        let now = Instant::now();
        let mut buffer = Reorder::new(2);
        assert_eq!(buffer.hold(3, "a", now, GRACE), Held::Waiting);
        assert_eq!(buffer.hold(4, "b", now, GRACE), Held::Waiting);
        assert_eq!(buffer.hold(5, "c", now, GRACE), Held::Full);
    }

    #[test]
    fn a_gap_still_open_after_a_log_read_waits_again_and_a_cleared_buffer_waits_for_nothing() {
        let now = Instant::now();
        let mut buffer = Reorder::new(8);
        buffer.hold(9, "nine", now, GRACE);
        let later = now + Duration::from_secs(1);
        buffer.wait_again(later, Duration::from_secs(1));
        assert_eq!(buffer.deadline(), Some(later + Duration::from_secs(1)));
        buffer.clear();
        assert_eq!(buffer.deadline(), None);
        buffer.wait_again(later, GRACE);
        assert_eq!(buffer.deadline(), None, "nothing held, nothing to wait for");
    }
}
