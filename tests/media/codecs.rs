//! What the application makes of a refused codec. What passes through (H.264 and AAC, either
//! alone, B-frames) is the media crate's own test (`media/tests/ingest.rs`).

use std::time::Duration;

use sqlx::PgPool;

use crate::support::{PATIENCE, Publisher, Source, TestApp, event_kinds, eventually, streamer};

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
