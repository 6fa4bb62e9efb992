//! FLV tag bodies (what a publisher's audio and video messages carry) and FLV files, through the
//! stream thread's parsers: codec, keyframe, AVC decoder configuration, NAL units.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| media::fuzzing::flv_tags(data));
