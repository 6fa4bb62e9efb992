//! Bad keys and bad bytes on the RTMP port harm no one else.

use std::time::Duration;

use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::rtmp_client::{self, RawClient};
use crate::support::{
    AUDIO_STOPS_AFTER_S, PATIENCE, Publisher, Source, TestApp, decode_errors, ended, event_kinds,
    eventually, final_playlist, live_stream_of, playlist, playlist_url, playlist_with, segments,
    streamer,
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
        .and_then(|s| s.strip_suffix(".m4s"))
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

/// An FLV file of H.264 test video (1 s keyframe interval), as `media::flv` tags.
async fn flv_tags(seconds: u32) -> Vec<media::flv::FileTag> {
    let path = std::env::temp_dir().join(format!("siaran-abuse-{}.flv", uuid::Uuid::new_v4()));
    let status = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=15"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "15",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-f", "flv"])
        .arg(&path)
        .status()
        .await
        .expect("ffmpeg runs");
    assert!(status.success());
    let bytes = std::fs::read(&path).expect("the FLV file");
    let _ = std::fs::remove_file(&path);
    media::flv::read_file(&bytes).expect("ffmpeg writes FLV")
}

/// Sends the tags in real time on stream 1, as an encoder would.
async fn send_tags(client: &mut RawClient, tags: &[media::flv::FileTag]) {
    let start = tokio::time::Instant::now();
    for tag in tags {
        let (csid, type_id) = match tag.kind {
            media::flv::TagKind::Video => (rtmp_client::CSID_VIDEO, 9),
            media::flv::TagKind::Audio => (rtmp_client::CSID_AUDIO, 8),
            media::flv::TagKind::Script => continue,
        };
        tokio::time::sleep_until(start + Duration::from_millis(tag.timestamp.into())).await;
        client.drain().await;
        client
            .message(csid, type_id, 1, tag.timestamp, &tag.body)
            .await
            .expect("sending media");
    }
}

/// The process still answers HTTP.
async fn alive(app: &TestApp) {
    let response = app.get("/healthz").await;
    assert!(response.status().is_success(), "{}", response.status());
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn nested_amf_arrays_close_that_connection_and_another_stream_keeps_playing(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (budi, url) = streamer(&app, "budi").await;
    let mut publisher = Publisher::start(&url, Source::AudioVideo, 10);
    let id = live_stream_of(&app, &budi).await;
    let before = segments(&playlist_with(&app, id, 1).await).len();

    // As in the report: Set Chunk Size 65536, then a ~250 KB connect of 50,000 nested arrays
    // (refused at its header: more than any command may be). Then one that fits the size
    // limit, so that the nesting itself is what is refused.
    let mut attacks = Vec::new();
    for depth in [50_000, 12_000] {
        let mut client = RawClient::handshaken(app.rtmp_addr).await.unwrap();
        client.set_chunk_size(65_536).await.unwrap();
        let body = rtmp_client::nested_arrays(depth);
        let _ = client
            .message(rtmp_client::CSID_COMMAND, 20, 0, 0, &body)
            .await;
        attacks.push(client);
    }

    for client in &mut attacks {
        assert!(
            client.closed_within(Duration::from_secs(15)).await,
            "the attacking connection is closed"
        );
    }
    alive(&app).await;
    eventually(PATIENCE, "the other stream to keep growing", || async {
        let p = playlist(&app, id).await?;
        (segments(&p).len() > before + 1).then_some(())
    })
    .await;
    assert!(publisher.exited_within(PATIENCE).await.is_some());
    ended(&app, id, Duration::from_secs(10)).await;
    let errors = decode_errors(&playlist_url(&app, id)).await;
    assert!(errors.is_empty(), "decoding the stream: {errors}");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_single_string_command_after_going_live_ends_the_stream_and_frees_the_key(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (budi, url) = streamer(&app, "budi").await;
    let key = url.rsplit('/').next().unwrap().to_owned();
    let tags = flv_tags(3).await;
    let mut client = RawClient::handshaken(app.rtmp_addr).await.unwrap();
    client.publish("live", &key).await.unwrap();
    send_tags(&mut client, &tags).await;
    let id = live_stream_of(&app, &budi).await;
    assert!(app.state.ingest.is_publishing(id));

    // rml_rtmp panicked here (`arguments.drain(..3)`) and the stream stayed live forever.
    let single = rtmp_client::command(&[rtmp_client::Amf::String("x")]);
    client
        .message(rtmp_client::CSID_STREAM_COMMAND, 20, 1, 0, &single)
        .await
        .unwrap();

    assert!(
        client.closed_within(Duration::from_secs(15)).await,
        "the connection is closed"
    );
    ended(&app, id, PATIENCE).await;
    assert!(
        event_kinds(&app, id)
            .await
            .contains(&"stream.ended".to_owned())
    );
    eventually(PATIENCE, "the stream to be released", || async {
        (!app.state.ingest.is_publishing(id)).then_some(())
    })
    .await;
    alive(&app).await;

    let mut publisher = Publisher::start(&url, Source::VideoOnly, 6);
    let again = live_stream_of(&app, &budi).await;
    assert_ne!(again, id, "a new stream goes live with the same key");
    playlist_with(&app, again, 1).await;
    assert!(publisher.exited_within(PATIENCE).await.is_some());
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn anonymous_connections_cannot_make_the_server_buffer_big_messages(db: PgPool) {
    let app = TestApp::spawn(db).await;

    // As in the report: 64 connections announce a chunk size of 2^31 and a 16 MiB message and
    // send 64 KiB of it, before any authentication.
    let mut clients = Vec::new();
    for _ in 0..64 {
        let mut client = RawClient::handshaken(app.rtmp_addr).await.unwrap();
        let mut bytes = rtmp_client::set_chunk_size(1 << 31);
        bytes.extend(rtmp_client::header(
            rtmp_client::CSID_COMMAND,
            0,
            16 * 1024 * 1024 - 1,
            20,
            0,
        ));
        bytes.extend(std::iter::repeat_n(0u8, 64 * 1024));
        let _ = client.send(&bytes).await;
        clients.push(client);
    }
    for client in &mut clients {
        assert!(client.closed_within(Duration::from_secs(15)).await);
    }
    // Messages within the limits are buffered, and only up to the limits: 16 connections (one
    // address's pending budget) each half-way through a 60 KiB command.
    let declared = 60 * 1024;
    let mut partial = Vec::new();
    for _ in 0..16 {
        let mut client = RawClient::handshaken(app.rtmp_addr).await.unwrap();
        client.set_chunk_size(65_536).await.unwrap();
        let mut bytes = rtmp_client::header(rtmp_client::CSID_COMMAND, 0, declared, 20, 0);
        bytes.extend(std::iter::repeat_n(0u8, 30 * 1024));
        client.send(&bytes).await.unwrap();
        partial.push(client);
    }
    let buffered = eventually(PATIENCE, "the partial messages to be buffered", || async {
        let stats = app.state.ingest.connections();
        (stats.buffered_bytes >= 16 * declared as usize).then_some(stats)
    })
    .await;

    // At most what the limits before authorization allow: 64 KiB of messages per connection,
    // 16 pending connections per address.
    assert!(buffered.buffered_bytes <= 16 * 64 * 1024, "{buffered:?}");
    assert!(
        buffered.peak_buffered_bytes <= 16 * (64 * 1024 + 4 * 1024),
        "{buffered:?}"
    );
    drop(partial);
    eventually(PATIENCE, "the buffers to be freed", || async {
        let stats = app.state.ingest.connections();
        (stats.buffered_bytes == 0 && stats.pending == 0).then_some(())
    })
    .await;
    alive(&app).await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_real_publish_goes_live_while_256_idle_sockets_from_its_address_are_open(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (budi, url) = streamer(&app, "budi").await;
    let mut idle = Vec::new();
    for _ in 0..256 {
        idle.push(RawClient::connect(app.rtmp_addr).await.unwrap());
    }
    eventually(PATIENCE, "the idle sockets to be accepted", || async {
        let stats = app.state.ingest.connections();
        (stats.evicted >= 256 - 16).then_some(())
    })
    .await;

    let mut publisher = Publisher::start(&url, Source::VideoOnly, 8);

    let id = live_stream_of(&app, &budi).await;
    playlist_with(&app, id, 1).await;
    let stats = app.state.ingest.connections();
    assert_eq!(stats.publishing, 1, "{stats:?}");
    assert!(stats.pending <= 16, "{stats:?}");
    assert!(publisher.exited_within(PATIENCE).await.is_some());
    drop(idle);
}
