//! Publishing with ffmpeg (our stand-in for OBS) and reading HLS back with ffprobe/ffmpeg:
//! shared by the media crate's own tests and the application's media tests (which include this
//! file by path).
//!
//! Publishers encode a small test pattern live (320x180, 15 fps, 1 s GOP) so that each test
//! costs little CPU and the first segment closes after about a second.

use std::future::Future;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Generous: the machine may be busy with other tests.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// What a publisher sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    AudioVideo,
    VideoOnly,
    AudioOnly,
    /// H.264 with B-frames (composition offsets) and AAC.
    BFrames,
    /// H.264 with MP3 audio, which Siaran refuses.
    Mp3Audio,
    /// H.264 and AAC, but the audio ends after [`AUDIO_STOPS_AFTER_S`] seconds while the video
    /// goes on (an encoder whose audio device went away).
    AudioStops,
}

/// When the audio of [`Source::AudioStops`] ends.
pub const AUDIO_STOPS_AFTER_S: u32 = 2;

/// A running ffmpeg publisher, killed when dropped.
pub struct Publisher {
    child: Child,
}

impl Publisher {
    /// Publishes `source` to `url` for `seconds`.
    pub fn start(url: &str, source: Source, seconds: u32) -> Self {
        let mut args: Vec<String> = ["-hide_banner", "-loglevel", "error", "-nostdin", "-re"]
            .map(str::to_owned)
            .to_vec();
        let video = source != Source::AudioOnly;
        let audio = source != Source::VideoOnly;
        if video {
            args.extend(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=15"].map(str::to_owned));
        }
        if audio {
            let mut sine = "sine=frequency=440:sample_rate=44100".to_owned();
            if source == Source::AudioStops {
                sine.push_str(&format!(":duration={AUDIO_STOPS_AFTER_S}"));
            }
            args.extend(["-f".to_owned(), "lavfi".to_owned(), "-i".to_owned(), sine]);
        }
        args.extend(["-t".to_owned(), seconds.to_string()]);
        if video {
            let (preset, extra): (&str, &[&str]) = if source == Source::BFrames {
                ("veryfast", &["-bf", "2"])
            } else {
                ("ultrafast", &["-tune", "zerolatency"])
            };
            args.extend(
                [
                    "-c:v", "libx264", "-preset", preset, "-g", "15", "-pix_fmt", "yuv420p",
                    "-b:v", "300k",
                ]
                .map(str::to_owned),
            );
            args.extend(extra.iter().map(|s| (*s).to_owned()));
        }
        if audio {
            let codec = if source == Source::Mp3Audio {
                "libmp3lame"
            } else {
                "aac"
            };
            args.extend(["-c:a", codec, "-b:a", "64k", "-ar", "44100"].map(str::to_owned));
        }
        if source == Source::AudioStops {
            // Without this ffmpeg holds the video back for up to 10 s once the audio ended,
            // waiting to interleave it with audio that never comes.
            args.extend(["-max_interleave_delta", "100000"].map(str::to_owned));
        }
        args.extend(["-f".to_owned(), "flv".to_owned(), url.to_owned()]);
        let child = Command::new("ffmpeg")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("ffmpeg runs (scripts/setup.sh installs it)");
        Self { child }
    }

    /// Waits for ffmpeg to exit; `None` if it is still running after `timeout`.
    pub async fn exited_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// `kill -9`: the connection drops without an unpublish.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("killing ffmpeg");
    }
}

/// Polls `check` until it yields a value or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `ffprobe`'s view of the streams in an HLS playlist (URL or file): `(codec, width, height,
/// the stream's JSON)`.
pub async fn probe(url: &str) -> Vec<(String, Option<u64>, Option<u64>, Value)> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-of", "json", url])
        .output()
        .await
        .expect("ffprobe runs");
    assert!(
        output.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value = serde_json::from_slice(&output.stdout).expect("ffprobe JSON");
    json["streams"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            (
                s["codec_name"].as_str().unwrap_or_default().to_owned(),
                s["width"].as_u64(),
                s["height"].as_u64(),
                s,
            )
        })
        .collect()
}

/// Decodes the whole playlist (URL or file); returns ffmpeg's error output (empty when clean).
pub async fn decode_errors(url: &str) -> String {
    let output = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-i",
            url,
            "-f",
            "null",
            "-",
        ])
        .output()
        .await
        .expect("ffmpeg runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if output.status.success() {
        stderr
    } else {
        format!("ffmpeg exited with {}: {stderr}", output.status)
    }
}
