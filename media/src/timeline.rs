//! One publisher session's timeline: RTMP's 32-bit millisecond timestamps turned into the
//! muxer's running time, and the gaps a stalled track needs declared. Pure arithmetic, so the
//! media worker only applies what this decides.

use std::time::Duration;

/// A track this far behind the other is declared empty up to near the other's time, so the
/// muxer stops waiting for it (and, its queue full, blocking the worker thread).
pub(crate) const STALL: Duration = Duration::from_secs(1);
/// Timestamps are offset by this much so that a track starting slightly before the first
/// payload seen still has a positive time.
pub(crate) const TIME_HEADROOM_MS: u32 = 500;

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Track {
    Video,
    Audio,
}

impl Track {
    fn other(self) -> Self {
        match self {
            Self::Video => Self::Audio,
            Self::Audio => Self::Video,
        }
    }
}

/// "Track `track` has nothing from `from` to `until`": what the muxer is told for a stall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gap {
    pub track: Track,
    pub from: Duration,
    pub until: Duration,
}

/// Where a session's time starts and how far each track has got.
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    base_ms: Option<u32>,
    video_until: Duration,
    audio_until: Duration,
}

impl Timeline {
    /// A payload's time on this session's timeline. The first timestamp seen (less
    /// [`TIME_HEADROOM_MS`]) is zero; RTMP timestamps wrap at 2³² ms, and the difference is
    /// taken modulo that. A payload from before the base (beyond the headroom) is clamped to
    /// zero rather than wrapping to 49 days.
    pub(crate) fn time(&mut self, timestamp: u32) -> Duration {
        let base = *self
            .base_ms
            .get_or_insert(timestamp.saturating_sub(TIME_HEADROOM_MS));
        let relative = timestamp.wrapping_sub(base);
        Duration::from_millis(u64::from(if relative > u32::MAX / 2 {
            0
        } else {
            relative
        }))
    }

    /// Records that `track` reached `time`, and returns the gap to declare on the other track
    /// if that one — present in the pipeline (`other_present`) — has fallen more than
    /// [`STALL`] behind. The gap ends [`STALL`]/2 before `time`, so a late frame of the
    /// stalled track still fits after it.
    pub(crate) fn advance(
        &mut self,
        track: Track,
        time: Duration,
        other_present: bool,
    ) -> Option<Gap> {
        let other = track.other();
        let other_until = self.until(other);
        let gap = (other_present && other_until + STALL < time).then(|| Gap {
            track: other,
            from: other_until,
            until: time.saturating_sub(STALL / 2),
        });
        if let Some(gap) = gap {
            *self.until_mut(other) = gap.until;
        }
        let own = self.until_mut(track);
        *own = (*own).max(time);
        gap
    }

    fn until(&self, track: Track) -> Duration {
        match track {
            Track::Video => self.video_until,
            Track::Audio => self.audio_until,
        }
    }

    fn until_mut(&mut self, track: Track) -> &mut Duration {
        match track {
            Track::Video => &mut self.video_until,
            Track::Audio => &mut self.audio_until,
        }
    }
}

/// A video frame's presentation time from its decode time and FLV composition offset (which
/// may be negative).
pub(crate) fn presentation_time(dts: Duration, cts_ms: i32) -> Duration {
    let offset = Duration::from_millis(cts_ms.unsigned_abs().into());
    if cts_ms >= 0 {
        dts + offset
    } else {
        dts.saturating_sub(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_first_timestamp_starts_the_timeline_after_the_headroom() {
        let mut timeline = Timeline::default();
        assert_eq!(timeline.time(10_000), ms(500));
        assert_eq!(timeline.time(10_040), ms(540));
        // A track that starts a little earlier still has a positive time.
        assert_eq!(timeline.time(9_800), ms(300));
    }

    #[test]
    fn a_timestamp_before_the_base_is_clamped_not_wrapped() {
        let mut timeline = Timeline::default();
        timeline.time(10_000);
        assert_eq!(timeline.time(1_000), Duration::ZERO);
    }

    #[test]
    fn a_publisher_starting_near_zero_keeps_its_timestamps() {
        let mut timeline = Timeline::default();
        assert_eq!(timeline.time(0), Duration::ZERO);
        assert_eq!(timeline.time(33), ms(33));
    }

    #[test]
    fn timestamps_wrapping_past_two_to_the_32_ms_keep_counting() {
        let mut timeline = Timeline::default();
        let start = u32::MAX - 1_000;
        assert_eq!(timeline.time(start), ms(500));
        // 2,000 ms later the 32-bit timestamp has wrapped to 999.
        assert_eq!(timeline.time(start.wrapping_add(2_000)), ms(2_500));
    }

    #[test]
    fn a_stalled_track_is_declared_empty_up_to_half_a_stall_before_the_other() {
        let mut timeline = Timeline::default();
        assert_eq!(timeline.advance(Track::Audio, ms(1_000), true), None);
        assert_eq!(timeline.advance(Track::Video, ms(1_000), true), None);
        // Video goes on; audio stops. Within STALL nothing happens.
        assert_eq!(timeline.advance(Track::Video, ms(2_000), true), None);
        assert_eq!(
            timeline.advance(Track::Video, ms(2_040), true),
            Some(Gap {
                track: Track::Audio,
                from: ms(1_000),
                until: ms(1_540),
            })
        );
        // The next gap starts where the last one ended.
        assert_eq!(timeline.advance(Track::Video, ms(2_500), true), None);
        assert_eq!(
            timeline.advance(Track::Video, ms(2_600), true),
            Some(Gap {
                track: Track::Audio,
                from: ms(1_540),
                until: ms(2_100),
            })
        );
    }

    #[test]
    fn a_track_the_pipeline_does_not_have_gets_no_gaps() {
        let mut timeline = Timeline::default();
        for t in (0..10_000).step_by(40) {
            assert_eq!(timeline.advance(Track::Video, ms(t), false), None);
        }
    }

    #[test]
    fn a_late_frame_does_not_move_its_track_back() {
        let mut timeline = Timeline::default();
        timeline.advance(Track::Video, ms(5_000), true);
        timeline.advance(Track::Video, ms(4_000), true);
        // Audio at 5,900 is within STALL of video's 5,000, not of the late 4,000.
        assert_eq!(timeline.advance(Track::Audio, ms(5_900), true), None);
    }

    #[test]
    fn composition_offsets_move_presentation_either_way() {
        assert_eq!(presentation_time(ms(1_000), 80), ms(1_080));
        assert_eq!(presentation_time(ms(1_000), -80), ms(920));
        assert_eq!(presentation_time(ms(50), -80), Duration::ZERO);
    }
}
