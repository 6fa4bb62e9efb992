//! A WebSocket client's text message on `/ws/stream/{id}/` and `/ws/overlay/{token}`, through
//! the parser both sockets use.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Text frames are UTF-8: the socket closes on anything else before parsing.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = siaran::live::protocol::parse_client_message(text);
    }
});
