//! What an RTMP client sends, from the first handshake byte: chunk stream, commands (AMF0) and
//! media, through the same state machine and parsers the ingest server runs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| media::fuzzing::rtmp_session(data));
