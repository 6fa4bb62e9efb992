//! The media crate on its own: ffmpeg publishes RTMP to an [`Ingest`] with a stub authorizer,
//! ffprobe and ffmpeg read the HLS it writes. No database, no HTTP, no application.

// Test helpers are shared by tests that each use a part of them.
#![allow(unreachable_pub, dead_code)]

#[path = "support/ffmpeg.rs"]
mod ffmpeg;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ffmpeg::{PATIENCE, Publisher, Source, decode_errors, eventually, probe};
use media::{AuthError, Authorizer, ErrorCode, Ingest, IngestConfig, IngestHandle, MediaEvent};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Stream keys the stub knows, and what it answers for the rest.
#[derive(Debug, Clone, Default)]
struct StubAuthorizer {
    keys: Arc<HashMap<String, Uuid>>,
    /// Answer every key with this instead (the application's database being down, say).
    answer: Option<AuthError>,
}

impl Authorizer for StubAuthorizer {
    async fn authorize(&self, stream_key: &str, _peer: SocketAddr) -> Result<Uuid, AuthError> {
        if let Some(answer) = &self.answer {
            return Err(answer.clone());
        }
        self.keys
            .get(stream_key)
            .copied()
            .ok_or(AuthError::UnknownKey)
    }
}

/// A running ingest server, its events as they arrive, and its output directory.
struct Server {
    rtmp: SocketAddr,
    handle: IngestHandle,
    hls_root: PathBuf,
    events: Arc<Mutex<Vec<MediaEvent>>>,
    stop: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_dir_all(&self.hls_root);
    }
}

impl Server {
    async fn start(authorizer: StubAuthorizer) -> Self {
        let hls_root = std::env::temp_dir().join(format!("media-test-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&hls_root).expect("HLS directory");
        let listen: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let (ingest, receiver) =
            Ingest::bind(IngestConfig::new(listen, hls_root.clone()), authorizer)
                .await
                .expect("the ingest server binds");
        let rtmp = ingest.local_addr().expect("bound address");
        let handle = ingest.handle();
        let stop = CancellationToken::new();
        tokio::spawn(ingest.run(stop.clone()));
        let events = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(collect(receiver, Arc::clone(&events)));
        Self {
            rtmp,
            handle,
            hls_root,
            events,
            stop,
        }
    }

    /// A server that knows one stream key; returns it with its stream id and publish URL.
    async fn with_one_stream() -> (Self, Uuid, String) {
        let id = Uuid::new_v4();
        let key = format!("key-{}", Uuid::new_v4().simple());
        let authorizer = StubAuthorizer {
            keys: Arc::new(HashMap::from([(key.clone(), id)])),
            answer: None,
        };
        let server = Self::start(authorizer).await;
        let url = server.url(&key);
        (server, id, url)
    }

    fn url(&self, key: &str) -> String {
        format!("rtmp://{}/{}/{key}", self.rtmp, media::APP_NAME)
    }

    fn playlist_path(&self, id: Uuid) -> PathBuf {
        media::stream_dir(&self.hls_root, &id.to_string()).join(media::PLAYLIST)
    }

    fn events(&self) -> Vec<MediaEvent> {
        self.events.lock().clone()
    }

    async fn wait_for(&self, what: &str, matches: impl Fn(&MediaEvent) -> bool) -> MediaEvent {
        eventually(PATIENCE, what, || async {
            self.events.lock().iter().find(|e| matches(e)).cloned()
        })
        .await
    }

    async fn live(&self, id: Uuid) {
        self.wait_for("the stream to go live", |e| {
            *e == MediaEvent::Live { stream_id: id }
        })
        .await;
    }

    async fn ended(&self, id: Uuid) {
        self.wait_for("the stream to end", |e| {
            *e == MediaEvent::Ended { stream_id: id }
        })
        .await;
    }

    /// Publishes with `key` and checks that ffmpeg is refused (exits with an error) before the
    /// server reports anything.
    async fn assert_publish_refused(&self, key: &str) {
        let mut publisher = Publisher::start(&self.url(key), Source::AudioVideo, 30);
        let status = publisher
            .exited_within(PATIENCE)
            .await
            .expect("ffmpeg is refused and exits");
        assert!(!status.success());
        assert_eq!(self.events(), []);
    }

    /// The playlist once it is final (`#EXT-X-ENDLIST`).
    async fn final_playlist(&self, id: Uuid) -> String {
        let path = self.playlist_path(id);
        eventually(PATIENCE, "#EXT-X-ENDLIST", || async {
            std::fs::read_to_string(&path)
                .ok()
                .filter(|p| p.contains("#EXT-X-ENDLIST"))
        })
        .await
    }

    /// Publishes `source` for a few seconds and waits until the stream has gone live, ended and
    /// its playlist is final; checks that it decodes without error and returns ffprobe's view.
    async fn publish_and_probe(
        &self,
        id: Uuid,
        url: &str,
        source: Source,
    ) -> Vec<(String, Option<u64>, Option<u64>, serde_json::Value)> {
        let mut publisher = Publisher::start(url, source, 4);
        self.live(id).await;
        assert!(publisher.exited_within(PATIENCE).await.is_some());
        self.ended(id).await;
        let playlist = self.final_playlist(id).await;
        assert!(playlist.lines().any(|l| l.ends_with(".m4s")), "{playlist}");
        let path = self.playlist_path(id).display().to_string();
        let errors = decode_errors(&path).await;
        assert!(errors.is_empty(), "decoding the stream: {errors}");
        probe(&path).await
    }
}

async fn collect(mut receiver: mpsc::Receiver<MediaEvent>, into: Arc<Mutex<Vec<MediaEvent>>>) {
    while let Some(event) = receiver.recv().await {
        into.lock().push(event);
    }
}

fn lifecycle(events: &[MediaEvent], id: Uuid) -> Vec<&'static str> {
    events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Live { stream_id } if *stream_id == id => Some("live"),
            MediaEvent::Ended { stream_id } if *stream_id == id => Some("ended"),
            MediaEvent::Error { stream_id, .. } if *stream_id == id => Some("error"),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn audio_and_video_go_live_play_back_and_end_when_the_publisher_leaves() {
    let (server, id, url) = Server::with_one_stream().await;

    let streams = server.publish_and_probe(id, &url, Source::AudioVideo).await;

    let codecs: Vec<_> = streams.iter().map(|s| (s.0.as_str(), s.1, s.2)).collect();
    assert_eq!(
        codecs,
        [("h264", Some(320), Some(180)), ("aac", None, None)]
    );
    assert_eq!(lifecycle(&server.events(), id), ["live", "ended"]);
    assert!(!server.handle.is_publishing(id));
    let health = server.events().into_iter().find_map(|e| match e {
        MediaEvent::Health { stream_id, health } if stream_id == id => Some(health),
        _ => None,
    });
    let health = health.expect("a health report while live");
    assert_eq!((health.width, health.height), (Some(320), Some(180)));
}

#[tokio::test]
async fn video_only_publishes_play_back() {
    let (server, id, url) = Server::with_one_stream().await;

    let streams = server.publish_and_probe(id, &url, Source::VideoOnly).await;

    let codecs: Vec<_> = streams.iter().map(|s| (s.0.as_str(), s.1, s.2)).collect();
    assert_eq!(codecs, [("h264", Some(320), Some(180))]);
}

#[tokio::test]
async fn audio_only_publishes_play_back() {
    let (server, id, url) = Server::with_one_stream().await;

    let streams = server.publish_and_probe(id, &url, Source::AudioOnly).await;

    let codecs: Vec<_> = streams.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(codecs, ["aac"]);
}

#[tokio::test]
async fn b_frames_pass_through_intact() {
    let (server, id, url) = Server::with_one_stream().await;

    let streams = server.publish_and_probe(id, &url, Source::BFrames).await;

    let video = streams
        .iter()
        .find(|s| s.0 == "h264")
        .expect("a video stream");
    assert!(
        video.3["has_b_frames"].as_u64().unwrap_or_default() > 0,
        "{}",
        video.3
    );
}

#[tokio::test]
async fn mp3_audio_is_refused_with_unsupported_codec() {
    let (server, id, url) = Server::with_one_stream().await;

    let mut publisher = Publisher::start(&url, Source::Mp3Audio, 30);

    assert!(
        publisher.exited_within(PATIENCE).await.is_some(),
        "the publisher is disconnected"
    );
    let error = server
        .wait_for("an error event", |e| matches!(e, MediaEvent::Error { .. }))
        .await;
    let MediaEvent::Error {
        stream_id,
        code,
        message,
    } = error
    else {
        unreachable!("matched above");
    };
    assert_eq!((stream_id, code), (id, ErrorCode::UnsupportedCodec));
    assert!(message.contains("MP3"), "{message}");
    assert!(!server.handle.is_publishing(id));
}

#[tokio::test]
async fn an_unknown_key_is_refused_before_any_stream_starts() {
    let (server, _id, _url) = Server::with_one_stream().await;

    server.assert_publish_refused("not-a-key").await;
    assert!(server.handle.publishing().is_empty());
}

#[tokio::test]
async fn an_application_that_cannot_decide_refuses_the_publish() {
    let authorizer = StubAuthorizer {
        keys: Arc::default(),
        answer: Some(AuthError::Unavailable("database down".to_owned())),
    };
    let server = Server::start(authorizer).await;

    server.assert_publish_refused("any").await;
}

#[tokio::test]
async fn a_second_publish_with_the_same_key_takes_over_one_continuous_stream() {
    let (server, id, url) = Server::with_one_stream().await;
    let mut first = Publisher::start(&url, Source::AudioVideo, 60);
    server.live(id).await;
    let path = server.playlist_path(id);
    eventually(PATIENCE, "a segment", || async {
        std::fs::read_to_string(&path)
            .ok()
            .filter(|p| p.lines().any(|l| l.ends_with(".m4s")))
    })
    .await;

    let mut second = Publisher::start(&url, Source::AudioVideo, 4);

    assert!(
        first.exited_within(PATIENCE).await.is_some(),
        "the first publisher is disconnected"
    );
    assert!(second.exited_within(PATIENCE).await.is_some());
    let playlist = server.final_playlist(id).await;
    assert!(playlist.contains("#EXT-X-DISCONTINUITY\n"), "{playlist}");
    server.ended(id).await;
    assert_eq!(lifecycle(&server.events(), id), ["live", "ended"]);
    let errors = decode_errors(&path.display().to_string()).await;
    assert!(
        errors.is_empty(),
        "decoding across the discontinuity: {errors}"
    );
}

#[tokio::test]
async fn stopping_a_stream_through_the_handle_disconnects_its_publisher_and_ends_it() {
    let (server, id, url) = Server::with_one_stream().await;
    let mut publisher = Publisher::start(&url, Source::AudioVideo, 60);
    server.live(id).await;
    assert!(server.handle.is_publishing(id));

    assert!(server.handle.stop(id), "a publisher was there to stop");

    assert!(
        publisher.exited_within(PATIENCE).await.is_some(),
        "the publisher is disconnected"
    );
    server.ended(id).await;
    assert!(server.final_playlist(id).await.contains("#EXT-X-ENDLIST"));
    assert!(!server.handle.stop(id), "nothing left to stop");
}
