//! Bad keys and bad bytes on the RTMP port harm no one else.

use std::time::Duration;

use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{
    AUDIO_STOPS_AFTER_S, PATIENCE, Publisher, Source, TestApp, decode_errors, ended, eventually,
    final_playlist, live_stream_of, playlist, playlist_url, playlist_with, segments, streamer,
};

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_wrong_stream_key_is_refused(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (budi, url) = streamer(&app, "budi").await;
    let wrong = format!("{}x", &url[..url.len() - 1]);

    let mut publisher = Publisher::start(&wrong, Source::VideoOnly, 30);

    let status = publisher
        .exited_within(PATIENCE)
        .await
        .expect("the publisher is turned away");
    assert!(!status.success());
    let streams: i64 = sqlx::query_scalar("SELECT count(*) FROM streams WHERE streamer_id = $1")
        .bind(budi.id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(streams, 0);
}

/// Reads until the server closes the connection; `true` if it did within `timeout`.
async fn closed_by_server(socket: &mut TcpStream, timeout: Duration) -> bool {
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(timeout, async {
        loop {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn garbage_on_the_rtmp_port_harms_no_other_stream(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (budi, url) = streamer(&app, "budi").await;
    let mut publisher = Publisher::start(&url, Source::AudioVideo, 8);
    let id = live_stream_of(&app, &budi).await;
    let before = segments(&playlist_with(&app, id, 1).await).len();

    // Noise after a valid-looking version byte, half a handshake, and a client that says nothing.
    let mut noise = TcpStream::connect(app.rtmp_addr).await.unwrap();
    let junk: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let _ = noise.write_all(&[3]).await;
    let _ = noise.write_all(&junk).await;
    let mut half = TcpStream::connect(app.rtmp_addr).await.unwrap();
    half.write_all(&[3; 700]).await.unwrap();
    let mut idle = TcpStream::connect(app.rtmp_addr).await.unwrap();

    eventually(PATIENCE, "the stream to keep growing", || async {
        let p = playlist(&app, id).await?;
        (segments(&p).len() > before + 1).then_some(())
    })
    .await;
    assert!(
        closed_by_server(&mut noise, Duration::from_secs(15)).await,
        "noise is dropped"
    );
    assert!(
        closed_by_server(&mut half, Duration::from_secs(15)).await,
        "half handshakes time out"
    );
    assert!(
        closed_by_server(&mut idle, Duration::from_secs(15)).await,
        "idle clients time out"
    );
    assert!(
        publisher
            .exited_within(PATIENCE)
            .await
            .expect("publisher finished")
            .success()
    );
    ended(&app, id, Duration::from_secs(10)).await;
    let errors = decode_errors(&playlist_url(&app, id)).await;
    assert!(errors.is_empty(), "decoding the stream: {errors}");
}

/// The sequence number of the last segment a playlist lists.
fn last_sequence(playlist: &str) -> Option<u64> {
    segments(playlist)
        .last()
        .and_then(|s| s.strip_suffix(".ts"))
        .and_then(|n| n.parse().ok())
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn video_keeps_being_listed_when_the_audio_stops(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (budi, url) = streamer(&app, "budi").await;

    // Audio for the first seconds only; video (1 s keyframe interval) for 20 s.
    let mut publisher = Publisher::start(&url, Source::AudioStops, 20);
    let id = live_stream_of(&app, &budi).await;

    // The muxer waits for every track before it writes anything: unless the stream thread tells
    // it that the silent audio track has nothing (gap events), the video is held back from the
    // moment the audio stopped and nothing more is listed until the publisher leaves.
    let wanted = u64::from(AUDIO_STOPS_AFTER_S) + 6;
    let live = eventually(
        PATIENCE,
        "video segments listed after the audio stopped",
        || async {
            playlist(&app, id).await.filter(|p| {
                !p.contains("#EXT-X-ENDLIST") && last_sequence(p).is_some_and(|n| n >= wanted)
            })
        },
    )
    .await;
    assert!(live.contains("#EXTINF:"), "{live}");

    assert!(publisher.exited_within(PATIENCE).await.is_some());
    ended(&app, id, Duration::from_secs(10)).await;
    let finished = final_playlist(&app, id, Duration::from_secs(10)).await;
    assert!(
        last_sequence(&finished) > last_sequence(&live),
        "{finished}"
    );
    let errors = decode_errors(&playlist_url(&app, id)).await;
    assert!(errors.is_empty(), "decoding the stream: {errors}");
}
