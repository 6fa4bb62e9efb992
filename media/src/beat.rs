//! The beat the media core works on: publishers' sockets are read on it (the ingest thread),
//! and each stream thread takes what was read a moment later.
//!
//! Waking once per beat for every stream, rather than once per packet or payload, is what keeps
//! the wake-ups (which cost more than the work they do) at a few dozen a second whatever the
//! bitrate. Both sides use the same instants, so a payload read on a beat is muxed
//! [`STREAM_OFFSET`] later, not up to a whole beat later: a keyframe waits at most one beat in the
//! socket, plus the offset, before the muxer has it (latency budget: 100 ms).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How often publishers' sockets are read and stream threads take their payloads.
pub(crate) const BEAT: Duration = Duration::from_millis(40);
/// How long after a beat the stream threads wake: by then the ingest thread has read and parsed
/// every socket that beat (a millisecond or two for dozens of publishers).
pub(crate) const STREAM_OFFSET: Duration = Duration::from_millis(6);

/// The first beat after `now`: a multiple of [`BEAT`] since the media core started, the same
/// instant for every connection and stream, so one timer expiry serves them all.
pub(crate) fn next(now: Instant) -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(|| now);
    let beat = BEAT.as_nanos();
    let into = now.saturating_duration_since(epoch).as_nanos() % beat;
    now + Duration::from_nanos(u64::try_from(beat - into).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beats_are_shared_instants() {
        let now = Instant::now();
        let a = next(now);
        let b = next(now + Duration::from_millis(7));
        assert!(a > now && a <= now + BEAT);
        assert!(b == a || b == a + BEAT, "one grid for every caller");
        assert_eq!(
            next(a),
            a + BEAT,
            "a caller on a beat waits for the next one"
        );
    }
}
