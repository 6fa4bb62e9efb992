//! Media tests: ffmpeg publishes RTMP to a real Siaran, ffprobe/ffmpeg read the HLS back over
//! HTTP. CPU-heavy, so nextest runs this binary in the `media` group (two at a time).

// Test helpers are shared by modules that each use a part of them.
#![allow(unreachable_pub, dead_code)]

#[path = "../api/helpers.rs"]
mod helpers;
#[path = "../../media/examples/rtmp_client/mod.rs"]
mod rtmp_client;
mod support;

mod codecs;
mod lifecycle;
mod playback;
mod robustness;
