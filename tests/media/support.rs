//! The application's side of the media tests: streamers, live streams and playlists through
//! the API and the database. Publishing and probing are the media crate's test helpers.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

pub use crate::helpers::{Session, TestApp};

#[path = "../../media/tests/support/ffmpeg.rs"]
mod ffmpeg;
pub use ffmpeg::*;

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
        .filter(|l| l.ends_with(".m4s") && !l.starts_with('#'))
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
