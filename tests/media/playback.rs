//! A publish becomes a live stream that plays back over HTTP.

use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;

use crate::support::{
    PATIENCE, Publisher, Source, TestApp, decode_errors, ended, event_kinds, eventually,
    final_playlist, live_stream_of, playlist_url, playlist_with, probe, segments, streamer,
};

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_published_stream_goes_live_and_plays_back_over_http(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (budi, url) = streamer(&app, "budi").await;

    let mut publisher = Publisher::start(&url, Source::AudioVideo, 5);

    let id = live_stream_of(&app, &budi).await;
    let first = playlist_with(&app, id, 1).await;
    assert!(first.starts_with("#EXTM3U"), "{first}");
    let streams = probe(&playlist_url(&app, id)).await;
    let codecs: Vec<_> = streams.iter().map(|s| (s.0.as_str(), s.1, s.2)).collect();
    assert!(
        codecs.contains(&("h264", Some(320), Some(180))),
        "{codecs:?}"
    );
    assert!(codecs.iter().any(|c| c.0 == "aac"), "{codecs:?}");
    let stream: Value = eventually(PATIENCE, "health on the stream", || async {
        let s: Value = app
            .get(&format!("/api/streams/{id}"))
            .await
            .json()
            .await
            .ok()?;
        s["health"]["width"].is_number().then_some(s)
    })
    .await;
    assert_eq!(stream["is_live"], true);
    assert_eq!(stream["health"]["height"], 180);
    assert!(
        stream["health"]["video_codec"]
            .as_str()
            .unwrap()
            .starts_with("avc1.")
    );
    assert!(stream["health"]["fps"].as_f64().unwrap() > 5.0, "{stream}");
    let thumbnail = eventually(PATIENCE, "a thumbnail", || async {
        let r = app.get(&format!("/hls/{id}/thumbnail.jpg")).await;
        r.status().is_success().then_some(r)
    })
    .await;
    assert_eq!(thumbnail.headers()["content-type"], "image/jpeg");
    assert!(thumbnail.bytes().await.unwrap().starts_with(&[0xff, 0xd8]));

    assert!(publisher.exited_within(PATIENCE).await.is_some());
    ended(&app, id, Duration::from_secs(10)).await;
    let last = final_playlist(&app, id, Duration::from_secs(10)).await;
    assert!(segments(&last).len() >= 3, "{last}");
    let errors = decode_errors(&playlist_url(&app, id)).await;
    assert!(errors.is_empty(), "decoding the stream: {errors}");
    let kinds = event_kinds(&app, id).await;
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("stream.live"),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("stream.ended"),
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|k| k == "stream.health"), "{kinds:?}");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn two_streams_at_once_are_kept_apart(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (budi, budi_url) = streamer(&app, "budi").await;
    let (sari, sari_url) = streamer(&app, "sari").await;

    let mut first = Publisher::start(&budi_url, Source::AudioVideo, 4);
    let mut second = Publisher::start(&sari_url, Source::VideoOnly, 4);

    let budi_stream = live_stream_of(&app, &budi).await;
    let sari_stream = live_stream_of(&app, &sari).await;
    assert_ne!(budi_stream, sari_stream);
    playlist_with(&app, budi_stream, 1).await;
    playlist_with(&app, sari_stream, 1).await;
    assert!(first.exited_within(PATIENCE).await.is_some());
    assert!(second.exited_within(PATIENCE).await.is_some());
    ended(&app, budi_stream, Duration::from_secs(10)).await;
    ended(&app, sari_stream, Duration::from_secs(10)).await;
    let budi_codecs: Vec<_> = probe(&playlist_url(&app, budi_stream))
        .await
        .into_iter()
        .map(|s| s.0)
        .collect();
    let sari_codecs: Vec<_> = probe(&playlist_url(&app, sari_stream))
        .await
        .into_iter()
        .map(|s| s.0)
        .collect();
    assert!(budi_codecs.contains(&"aac".to_owned()), "{budi_codecs:?}");
    assert_eq!(
        sari_codecs,
        ["h264"],
        "the video-only stream has no audio of the other"
    );
}
