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

/// The numbers in `URI="p<n>.m4s"` of the line starting with `tag`, in order.
fn part_ids(playlist: &str, tag: &str) -> Vec<u64> {
    playlist
        .lines()
        .filter(|l| l.starts_with(tag))
        .filter_map(|l| l.split("URI=\"p").nth(1))
        .filter_map(|r| r.split('.').next()?.parse().ok())
        .collect()
}

fn media_sequence(playlist: &str) -> u64 {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.parse().ok())
        .expect("a media sequence")
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn the_live_playlist_is_low_latency_hls_with_blocking_reload_and_delta_updates(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (budi, url) = streamer(&app, "budi").await;
    // 1 s keyframes (ffmpeg -g 15 at 15 fps): segments of about a second.
    let mut publisher = Publisher::start(&url, Source::AudioVideo, 16);
    let id = live_stream_of(&app, &budi).await;
    let first = playlist_with(&app, id, 1).await;
    for tag in [
        "#EXT-X-VERSION:9\n",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=",
        ",PART-HOLD-BACK=",
        "#EXT-X-PART-INF:PART-TARGET=",
        "#EXT-X-MAP:URI=\"init-0.mp4\"\n",
        "#EXT-X-PROGRAM-DATE-TIME:",
        ",INDEPENDENT=YES\n",
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p",
    ] {
        assert!(first.contains(tag), "{tag} in\n{first}");
    }
    let init = app.get(&format!("/hls/{id}/init-0.mp4")).await;
    assert_eq!(init.headers()["content-type"], "video/mp4");
    assert_eq!(&init.bytes().await.unwrap()[4..8], b"ftyp");

    // A blocking reload for the part after the last one listed returns once it exists, and
    // lists it; the preload-hinted part is held until its bytes exist.
    let now = app
        .get(&format!("/hls/{id}/index.m3u8"))
        .await
        .text()
        .await
        .unwrap();
    let hinted = part_ids(&now, "#EXT-X-PRELOAD-HINT:")[0];
    let last_msn: u64 = segments(&now)
        .last()
        .and_then(|s| s.strip_suffix(".m4s")?.parse().ok())
        .expect("a complete segment");
    let open_parts = now
        .rsplit_once(&format!("{last_msn}.m4s\n"))
        .map_or(0, |(_, open)| open.matches("#EXT-X-PART:").count());
    let part_path = format!("/hls/{id}/p{hinted}.m4s");
    let reload_path = format!(
        "/hls/{id}/index.m3u8?_HLS_msn={}&_HLS_part={open_parts}",
        last_msn + 1
    );
    let (part, reload) = tokio::join!(app.get(&part_path), app.get(&reload_path));
    assert_eq!(reload.status(), 200);
    let reloaded = reload.text().await.unwrap();
    assert!(
        part_ids(&reloaded, "#EXT-X-PART:").contains(&hinted),
        "p{hinted} listed after the blocking reload:\n{reloaded}"
    );
    assert_eq!(part.status(), 200);
    assert_eq!(part.headers()["content-type"], "video/mp4");
    assert_eq!(
        &part.bytes().await.unwrap()[4..8],
        b"moof",
        "a part is a CMAF chunk"
    );

    // Too far ahead: 400 at once; a malformed directive: 422.
    let ahead = app
        .get(&format!("/hls/{id}/index.m3u8?_HLS_msn={}", last_msn + 10))
        .await;
    assert_eq!(ahead.status(), 400);
    let problem: Value = ahead.json().await.unwrap();
    assert_eq!(problem["code"], "hls_too_far_ahead");
    let bad = app
        .get(&format!("/hls/{id}/index.m3u8?_HLS_msn=soon"))
        .await;
    assert_eq!(bad.status(), 422);

    // A delta update once the playlist is longer than the skip boundary (6 s at 1 s segments).
    playlist_with(&app, id, 9).await;
    let delta = app
        .get(&format!("/hls/{id}/index.m3u8?_HLS_skip=YES"))
        .await
        .text()
        .await
        .unwrap();
    let skipped: u64 = delta
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-SKIP:SKIPPED-SEGMENTS="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a delta update skips segments:\n{delta}"));
    assert!(skipped > 0, "{delta}");
    let first_listed: u64 = segments(&delta)[0]
        .strip_suffix(".m4s")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(media_sequence(&delta) + skipped, first_listed, "{delta}");

    assert!(publisher.exited_within(PATIENCE).await.is_some());
    ended(&app, id, Duration::from_secs(10)).await;
    let last = final_playlist(&app, id, Duration::from_secs(10)).await;
    assert!(!last.contains("#EXT-X-PRELOAD-HINT"), "{last}");
    let errors = decode_errors(&playlist_url(&app, id)).await;
    assert!(errors.is_empty(), "decoding the stream: {errors}");
}
