//! What passes through (H.264 and AAC, either alone, B-frames) and what is refused.

use std::time::Duration;

use sqlx::PgPool;

use crate::support::{
    PATIENCE, Publisher, Source, TestApp, decode_errors, ended, event_kinds, eventually,
    final_playlist, live_stream_of, playlist_url, probe, segments, streamer,
};

async fn publish_and_probe(
    app: &TestApp,
    source: Source,
) -> Vec<(String, Option<u64>, Option<u64>, serde_json::Value)> {
    let (budi, url) = streamer(app, "budi").await;
    let mut publisher = Publisher::start(&url, source, 4);
    let id = live_stream_of(app, &budi).await;
    assert!(publisher.exited_within(PATIENCE).await.is_some());
    ended(app, id, Duration::from_secs(10)).await;
    let playlist = final_playlist(app, id, Duration::from_secs(10)).await;
    assert!(!segments(&playlist).is_empty(), "{playlist}");
    let errors = decode_errors(&playlist_url(app, id)).await;
    assert!(errors.is_empty(), "decoding the stream: {errors}");
    probe(&playlist_url(app, id)).await
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn video_only_publishes_play_back(db: PgPool) {
    let app = TestApp::spawn(db).await;

    let streams = publish_and_probe(&app, Source::VideoOnly).await;

    let codecs: Vec<_> = streams.iter().map(|s| (s.0.as_str(), s.1, s.2)).collect();
    assert_eq!(codecs, [("h264", Some(320), Some(180))]);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn audio_only_publishes_play_back(db: PgPool) {
    let app = TestApp::spawn(db).await;

    let streams = publish_and_probe(&app, Source::AudioOnly).await;

    let codecs: Vec<_> = streams.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(codecs, ["aac"]);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn b_frames_pass_through_intact(db: PgPool) {
    let app = TestApp::spawn(db).await;

    let streams = publish_and_probe(&app, Source::BFrames).await;

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

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn an_unsupported_codec_is_refused_with_a_stream_error(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (budi, url) = streamer(&app, "budi").await;

    let mut publisher = Publisher::start(&url, Source::Mp3Audio, 30);

    assert!(
        publisher.exited_within(PATIENCE).await.is_some(),
        "the publisher is disconnected"
    );
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM streams WHERE streamer_id = $1")
        .bind(budi.id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let error = eventually(Duration::from_secs(10), "a stream.error event", || async {
        app.stream_events(id)
            .await
            .into_iter()
            .find(|e| e["type"] == "stream.error")
    })
    .await;
    assert_eq!(error["data"]["code"], "unsupported_codec");
    assert!(
        error["data"]["message"].as_str().unwrap().contains("MP3"),
        "{error}"
    );
    eventually(
        Duration::from_secs(10),
        "the stream not to be live",
        || async {
            let live: bool = sqlx::query_scalar("SELECT is_active FROM streams WHERE id = $1")
                .bind(id)
                .fetch_one(&app.db)
                .await
                .ok()?;
            (!live).then_some(())
        },
    )
    .await;
    let kinds = event_kinds(&app, id).await;
    assert!(
        !kinds.iter().any(|k| k == "stream.live") || kinds.iter().any(|k| k == "stream.ended"),
        "{kinds:?}"
    );
}
