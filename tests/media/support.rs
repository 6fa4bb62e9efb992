//! Publishing with ffmpeg (our stand-in for OBS) and reading HLS back with ffprobe/ffmpeg.
//!
//! Publishers encode a small test pattern live (320x180, 15 fps, 1 s GOP) so that each test
//! costs little CPU and the first segment closes after about a second.

use std::future::Future;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::time::Instant;
use uuid::Uuid;

pub use crate::helpers::{Session, TestApp};

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

/// A streamer with a stream key: `(session, RTMP URL to publish to)`.
pub async fn streamer(app: &TestApp, username: &str) -> (Session, String) {
    let session = app.signed_up(username).await;
    let key: Value = app
        .post_as(
            "/api/users/me/stream-key",
            &session.access_token,
            &json!({}),
        )
        .await
        .json()
        .await
        .expect("stream key JSON");
    let key = key["stream_key"].as_str().expect("stream key").to_owned();
    let url = format!("rtmp://{}/live/{key}", app.rtmp_addr);
    (session, url)
}

/// The streamer's stream that is live, once there is one.
pub async fn live_stream_of(app: &TestApp, session: &Session) -> Uuid {
    eventually(PATIENCE, "the stream to go live", || async {
        sqlx::query_scalar("SELECT id FROM streams WHERE streamer_id = $1 AND is_active")
            .bind(session.id)
            .fetch_optional(&app.db)
            .await
            .expect("query")
    })
    .await
}

/// Waits until the stream has ended in the database.
pub async fn ended(app: &TestApp, stream_id: Uuid, timeout: Duration) {
    eventually(timeout, "the stream to end", || async {
        let row: (bool, Option<chrono::DateTime<chrono::Utc>>) =
            sqlx::query_as("SELECT is_active, ended_at FROM streams WHERE id = $1")
                .bind(stream_id)
                .fetch_one(&app.db)
                .await
                .expect("query");
        (!row.0 && row.1.is_some()).then_some(())
    })
    .await;
}

pub fn playlist_url(app: &TestApp, stream_id: Uuid) -> String {
    app.url(&format!("/hls/{stream_id}/index.m3u8"))
}

/// The playlist over HTTP, if served.
pub async fn playlist(app: &TestApp, stream_id: Uuid) -> Option<String> {
    let response = app.get(&format!("/hls/{stream_id}/index.m3u8")).await;
    if !response.status().is_success() {
        return None;
    }
    response.text().await.ok()
}

/// Segments listed in a playlist.
pub fn segments(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|l| l.ends_with(".ts"))
        .map(str::to_owned)
        .collect()
}

/// Waits until the playlist lists at least `n` segments, and returns it.
pub async fn playlist_with(app: &TestApp, stream_id: Uuid, n: usize) -> String {
    eventually(PATIENCE, "segments in the playlist", || async {
        playlist(app, stream_id)
            .await
            .filter(|p| segments(p).len() >= n)
    })
    .await
}

/// Waits until the playlist is final, and returns it.
pub async fn final_playlist(app: &TestApp, stream_id: Uuid, timeout: Duration) -> String {
    eventually(timeout, "#EXT-X-ENDLIST", || async {
        playlist(app, stream_id)
            .await
            .filter(|p| p.contains("#EXT-X-ENDLIST"))
    })
    .await
}

/// `ffprobe`'s view of the streams in an HLS playlist: `(codec, width, height)`.
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

/// Decodes the whole playlist over HTTP; returns ffmpeg's error output (empty when clean).
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

/// The `type` of each event published on the stream. For a stream that has ended in the
/// database, waits (up to [`PATIENCE`]) for its `stream.ended`, which is recorded just after.
pub async fn event_kinds(app: &TestApp, stream_id: Uuid) -> Vec<String> {
    let kinds = || async {
        app.stream_events(stream_id)
            .await
            .iter()
            .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<String>>()
    };
    let has_ended: bool =
        sqlx::query_scalar("SELECT ended_at IS NOT NULL FROM streams WHERE id = $1")
            .bind(stream_id)
            .fetch_optional(&app.db)
            .await
            .expect("query")
            .unwrap_or(false);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = kinds().await;
        if !has_ended || now.iter().any(|k| k == "stream.ended") || Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
