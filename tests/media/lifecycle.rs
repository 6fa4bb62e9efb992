//! How a live stream ends, or survives its publisher being replaced.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{
    PATIENCE, Publisher, Session, Source, TestApp, decode_errors, ended, event_kinds,
    final_playlist, live_stream_of, playlist_url, playlist_with, segments, streamer,
};

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_second_publish_with_the_same_key_takes_over(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (budi, url) = streamer(&app, "budi").await;
    let mut first = Publisher::start(&url, Source::AudioVideo, 60);
    let id = live_stream_of(&app, &budi).await;
    playlist_with(&app, id, 1).await;

    let mut second = Publisher::start(&url, Source::AudioVideo, 4);

    assert!(
        first.exited_within(PATIENCE).await.is_some(),
        "the first publisher is disconnected"
    );
    assert!(second.exited_within(PATIENCE).await.is_some());
    ended(&app, id, Duration::from_secs(10)).await;
    let playlist = final_playlist(&app, id, Duration::from_secs(10)).await;
    assert!(playlist.contains("#EXT-X-DISCONTINUITY\n"), "{playlist}");
    let streams: i64 = sqlx::query_scalar("SELECT count(*) FROM streams WHERE streamer_id = $1")
        .bind(budi.id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(streams, 1, "the same stream continued");
    let kinds = event_kinds(&app, id).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "stream.live").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "stream.ended").count(),
        1,
        "{kinds:?}"
    );
    let errors = decode_errors(&playlist_url(&app, id)).await;
    assert!(
        errors.is_empty(),
        "decoding across the discontinuity: {errors}"
    );
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_killed_publisher_ends_the_stream_within_ten_seconds(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (budi, url) = streamer(&app, "budi").await;
    let mut publisher = Publisher::start(&url, Source::AudioVideo, 60);
    let id = live_stream_of(&app, &budi).await;
    playlist_with(&app, id, 1).await;

    publisher.kill().await;

    ended(&app, id, Duration::from_secs(10)).await;
    let playlist = final_playlist(&app, id, Duration::from_secs(10)).await;
    assert!(
        playlist.trim_end().ends_with("#EXT-X-ENDLIST"),
        "{playlist}"
    );
    let kinds = event_kinds(&app, id).await;
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("stream.ended"),
        "{kinds:?}"
    );
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn stopping_a_stream_disconnects_its_publisher(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (budi, url) = streamer(&app, "budi").await;
    let mut publisher = Publisher::start(&url, Source::VideoOnly, 60);
    let id = live_stream_of(&app, &budi).await;

    stop_through(&app, &app, &budi, &mut publisher, id).await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn rotating_the_key_disconnects_the_publisher(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (budi, url) = streamer(&app, "budi").await;
    let mut publisher = Publisher::start(&url, Source::VideoOnly, 60);
    let id = live_stream_of(&app, &budi).await;

    app.post_as("/api/users/me/stream-key", &budi.access_token, &json!({}))
        .await;

    disconnected_and_refused(&app, &mut publisher, id, &url).await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn deactivating_a_live_streamer_disconnects_them_and_refuses_their_key(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (budi, url) = streamer(&app, "budi").await;
    let admin = app.signed_up("admin").await;
    app.make_staff(admin.id).await;
    let mut publisher = Publisher::start(&url, Source::VideoOnly, 60);
    let id = live_stream_of(&app, &budi).await;

    let response = app
        .post_as(
            &format!("/api/admin/users/{}/deactivate", budi.id),
            &admin.access_token,
            &json!({}),
        )
        .await;

    assert_eq!(response.status(), 200);
    disconnected_and_refused(&app, &mut publisher, id, &url).await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn shutting_down_ends_live_streams_cleanly(db: PgPool) {
    let mut app = TestApp::spawn(db).await;
    let (budi, url) = streamer(&app, "budi").await;
    let mut publisher = Publisher::start(&url, Source::VideoOnly, 60);
    let id = live_stream_of(&app, &budi).await;
    playlist_with(&app, id, 1).await;

    app.shut_down().await;

    assert!(publisher.exited_within(PATIENCE).await.is_some());
    // The server closed its pool on the way out; look with a connection of our own.
    let options = app.db.connect_options().as_ref().clone();
    let db = PgPool::connect_with(options).await.unwrap();
    let (live, ended_at): (bool, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as("SELECT is_active, ended_at FROM streams WHERE id = $1")
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(
        !live && ended_at.is_some(),
        "the stream was ended before the server stopped"
    );
    let playlist =
        std::fs::read_to_string(app.hls_dir.join(id.to_string()).join("index.m3u8")).unwrap();
    assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    assert!(!segments(&playlist).is_empty());
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn stopping_through_another_server_disconnects_the_publisher(db: PgPool) {
    // Two servers on one database, as behind a load balancer: OBS is connected to `a`, the
    // streamer's stop request reaches `b`.
    let a = TestApp::spawn(db.clone()).await;
    let b = TestApp::spawn(db).await;
    let (budi, url) = streamer(&a, "budi").await;
    let mut publisher = Publisher::start(&url, Source::VideoOnly, 60);
    let id = live_stream_of(&a, &budi).await;
    playlist_with(&a, id, 1).await;

    stop_through(&a, &b, &budi, &mut publisher, id).await;
}

/// The owner stops the stream through `via`: the publisher, connected to `holder`, is
/// disconnected, the playlist ends and `stream.ended` is announced once.
/// The publisher was disconnected, its stream ended, and its key no longer publishes.
async fn disconnected_and_refused(app: &TestApp, publisher: &mut Publisher, id: Uuid, url: &str) {
    assert!(
        publisher.exited_within(PATIENCE).await.is_some(),
        "the publisher is disconnected"
    );
    ended(app, id, Duration::from_secs(10)).await;
    let mut again = Publisher::start(url, Source::VideoOnly, 30);
    let status = again
        .exited_within(PATIENCE)
        .await
        .expect("the key is refused");
    assert!(!status.success());
}

async fn stop_through(
    holder: &TestApp,
    via: &TestApp,
    owner: &Session,
    publisher: &mut Publisher,
    id: Uuid,
) {
    let response = via
        .post_as(
            &format!("/api/streams/{id}/stop"),
            &owner.access_token,
            &json!({}),
        )
        .await;

    assert_eq!(response.status(), 200);
    assert!(
        publisher.exited_within(PATIENCE).await.is_some(),
        "the publisher is disconnected"
    );
    final_playlist(holder, id, PATIENCE).await;
    let kinds = event_kinds(holder, id).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "stream.ended").count(),
        1,
        "{kinds:?}"
    );
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_stream_whose_server_died_is_ended_and_a_fed_one_is_not(db: PgPool) {
    let stale = Duration::from_secs(2);
    let app = TestApp::spawn_with(db, |c| c.ingest_stale_secs = stale.as_secs()).await;
    let (budi, url) = streamer(&app, "budi").await;
    let mut publisher = Publisher::start(&url, Source::VideoOnly, 60);
    let fed = live_stream_of(&app, &budi).await;
    // What a crashed server leaves behind: a stream marked live that no ingest feeds.
    let (sari, _) = streamer(&app, "sari").await;
    let orphan: Uuid = sqlx::query_scalar(
        "INSERT INTO streams (streamer_id, title, is_active, started_at)
         VALUES ($1, 'Left live', true, now() - interval '1 minute') RETURNING id",
    )
    .bind(sari.id)
    .fetch_one(&app.db)
    .await
    .expect("an orphaned stream");
    let since = tokio::time::Instant::now();

    ended(&app, orphan, PATIENCE).await;
    let kinds = event_kinds(&app, orphan).await;
    assert_eq!(kinds, ["stream.ended"], "{kinds:?}");

    // Several stale periods later the stream with a publisher is still live.
    tokio::time::sleep((stale * 3).saturating_sub(since.elapsed())).await;
    let live: bool = sqlx::query_scalar("SELECT is_active FROM streams WHERE id = $1")
        .bind(fed)
        .fetch_one(&app.db)
        .await
        .expect("query");
    assert!(live, "a stream with a publisher is never swept");
    assert!(
        publisher
            .exited_within(Duration::from_millis(100))
            .await
            .is_none(),
        "its publisher is still connected"
    );
}
