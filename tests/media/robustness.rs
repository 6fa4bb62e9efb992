//! Bad keys and bad bytes on the RTMP port harm no one else.

use std::time::Duration;

use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{
    PATIENCE, Publisher, Source, TestApp, decode_errors, ended, eventually, live_stream_of,
    playlist, playlist_url, playlist_with, segments, streamer,
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
