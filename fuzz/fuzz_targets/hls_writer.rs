//! The segment and playlist writer, fed what a publisher controls through the muxer: chunk
//! shapes, keyframe flags, timestamps that jump or go backwards, takeovers and the end; after
//! each step the playlist on disk must still be one a player accepts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| media::fuzzing::hls_writer(data));
