//! Comments over REST: posting while live, listing newest first, deleting, and the limits.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{TestApp, field_errors, problem};
use crate::ws::{Ws, create_stream, quick_user, set_live};

fn comments_of(stream_id: Uuid) -> String {
    format!("/api/streams/{stream_id}/comments")
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn posting_a_comment_returns_it_with_its_author(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (streamer, _) = quick_user(&app.db, "andi").await;
    let stream_id = create_stream(&app.db, streamer, true).await;
    let viewer = app.signed_up("rina").await;

    let response = app
        .post_as(
            &comments_of(stream_id),
            &viewer.access_token,
            &json!({"content": "\n GG! \t"}),
        )
        .await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let comment: Value = response.json().await.unwrap();
    assert_eq!(comment["content"], "GG!");
    assert_eq!(comment["stream_id"], stream_id.to_string());
    assert_eq!(
        comment["author"],
        json!({"id": viewer.id, "username": "rina"})
    );
    assert!(comment["id"].is_string() && comment["created_at"].is_string());
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn invalid_comments_are_refused_with_reasons(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (streamer, _) = quick_user(&app.db, "andi").await;
    let stream_id = create_stream(&app.db, streamer, true).await;
    let (_, token) = quick_user(&app.db, "rina").await;
    let path = comments_of(stream_id);

    let anonymous = app.post(&path, &json!({"content": "hi"})).await;
    let blank = app
        .post_as(&path, &token, &json!({"content": "  \n "}))
        .await;
    let long = app
        .post_as(&path, &token, &json!({"content": "a".repeat(501)}))
        .await;
    let extra = app
        .post_as(
            &path,
            &token,
            &json!({"content": "hi", "author_id": Uuid::new_v4()}),
        )
        .await;
    let unknown = app
        .post_as(
            &comments_of(Uuid::new_v4()),
            &token,
            &json!({"content": "hi"}),
        )
        .await;
    let longest = app
        .post_as(&path, &token, &json!({"content": "a".repeat(500)}))
        .await;

    problem(anonymous, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    let blank = problem(blank, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(
        field_errors(&blank),
        [("content".to_owned(), "blank".to_owned())]
    );
    let long = problem(long, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(
        field_errors(&long),
        [("content".to_owned(), "too_long".to_owned())]
    );
    let extra = problem(extra, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(field_errors(&extra)[0].1, "unknown_field");
    problem(unknown, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(longest.status(), StatusCode::CREATED);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn comments_are_refused_unless_the_stream_is_live(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (streamer, _) = quick_user(&app.db, "andi").await;
    let upcoming = create_stream(&app.db, streamer, false).await;
    let ended = create_stream(&app.db, streamer, true).await;
    set_live(&app.db, ended, false).await;
    let (_, token) = quick_user(&app.db, "rina").await;

    for stream_id in [upcoming, ended] {
        let response = app
            .post_as(
                &comments_of(stream_id),
                &token,
                &json!({"content": "halo?"}),
            )
            .await;
        problem(response, StatusCode::CONFLICT, "stream_not_live").await;
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM comments")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn the_sixth_comment_in_ten_seconds_is_rate_limited(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (streamer, _) = quick_user(&app.db, "andi").await;
    let stream_id = create_stream(&app.db, streamer, true).await;
    let (_, spammer) = quick_user(&app.db, "spammer").await;
    let (_, other) = quick_user(&app.db, "other").await;
    let path = comments_of(stream_id);

    for n in 1..=5 {
        let response = app
            .post_as(&path, &spammer, &json!({"content": format!("spam {n}")}))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let sixth = app
        .post_as(&path, &spammer, &json!({"content": "spam 6"}))
        .await;
    let someone_else = app.post_as(&path, &other, &json!({"content": "hi"})).await;

    let retry_after: u64 = sixth
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After header");
    assert!((1..=10).contains(&retry_after));
    let body = problem(sixth, StatusCode::TOO_MANY_REQUESTS, "comment_rate_limited").await;
    assert_eq!(body["retry_after"], retry_after);
    assert_eq!(
        someone_else.status(),
        StatusCode::CREATED,
        "limits are per user"
    );
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn comments_are_listed_newest_first_page_by_page(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (streamer, _) = quick_user(&app.db, "andi").await;
    let stream_id = create_stream(&app.db, streamer, true).await;
    let other_stream = create_stream(&app.db, streamer, true).await;
    let (_, rina) = quick_user(&app.db, "rina").await;
    let (_, dewi) = quick_user(&app.db, "dewi").await;
    for n in 1..=5 {
        let token = if n % 2 == 0 { &dewi } else { &rina };
        app.post_as(
            &comments_of(stream_id),
            token,
            &json!({"content": format!("c{n}")}),
        )
        .await;
    }
    app.post_as(
        &comments_of(other_stream),
        &dewi,
        &json!({"content": "elsewhere"}),
    )
    .await;

    let mut contents = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("{}?limit=2", comments_of(stream_id));
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page: Value = app.get(&path).await.json().await.unwrap();
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            contents.push(item["content"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let first: Value = app.get(&comments_of(stream_id)).await.json().await.unwrap();

    assert_eq!(contents, ["c5", "c4", "c3", "c2", "c1"]);
    assert_eq!(pages, 3);
    assert_eq!(first["items"][0]["author"]["username"], "rina");
    assert_eq!(first["next_cursor"], Value::Null);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn listing_rejects_bad_cursors_and_unknown_streams(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (streamer, _) = quick_user(&app.db, "andi").await;
    let stream_id = create_stream(&app.db, streamer, false).await;

    let bad_cursor = app
        .get(&format!("{}?cursor=abc!", comments_of(stream_id)))
        .await;
    let bad_limit = app
        .get(&format!("{}?limit=1000", comments_of(stream_id)))
        .await;
    let unknown = app.get(&comments_of(Uuid::new_v4())).await;
    let empty: Value = app.get(&comments_of(stream_id)).await.json().await.unwrap();

    let body = problem(
        bad_cursor,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_errors(&body),
        [("cursor".to_owned(), "invalid".to_owned())]
    );
    problem(
        bad_limit,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    problem(unknown, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(empty, json!({"items": [], "next_cursor": null}));
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn the_streamer_deletes_a_comment_and_viewers_are_told(db: PgPool) {
    let app = TestApp::spawn_with(db, |c| c.live.viewers_interval_secs = 3600).await;
    let (streamer, streamer_token) = quick_user(&app.db, "andi").await;
    let stream_id = create_stream(&app.db, streamer, true).await;
    let (_, rina) = quick_user(&app.db, "rina").await;
    let comment: Value = app
        .post_as(
            &comments_of(stream_id),
            &rina,
            &json!({"content": "kata kasar"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let comment_id = comment["id"].as_str().unwrap();
    let mut socket = Ws::connect(app.addr, &format!("/ws/stream/{stream_id}/")).await;
    socket.next_json().await;

    let by_author = app
        .delete_as(&format!("/api/comments/{comment_id}"), &rina)
        .await;
    let by_owner = app
        .delete_as(&format!("/api/comments/{comment_id}"), &streamer_token)
        .await;
    let again = app
        .delete_as(&format!("/api/comments/{comment_id}"), &streamer_token)
        .await;

    problem(by_author, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(by_owner.status(), StatusCode::NO_CONTENT);
    problem(again, StatusCode::NOT_FOUND, "not_found").await;
    let event = socket.next_json().await;
    assert_eq!(event["type"], "comment.deleted");
    assert_eq!(event["data"]["id"], comment_id);
    let listed: Value = app.get(&comments_of(stream_id)).await.json().await.unwrap();
    assert_eq!(listed["items"], json!([]));
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn staff_can_delete_any_comment_other_streamers_cannot(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let (streamer, _) = quick_user(&app.db, "andi").await;
    let (other_streamer, other_token) = quick_user(&app.db, "sari").await;
    create_stream(&app.db, other_streamer, true).await;
    let stream_id = create_stream(&app.db, streamer, true).await;
    let (_, rina) = quick_user(&app.db, "rina").await;
    let (staff, staff_token) = quick_user(&app.db, "moderator").await;
    app.make_staff(staff).await;
    let comment: Value = app
        .post_as(
            &comments_of(stream_id),
            &rina,
            &json!({"content": "spam link"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/api/comments/{}", comment["id"].as_str().unwrap());

    let by_other_streamer = app.delete_as(&path, &other_token).await;
    let anonymous = app
        .request(reqwest::Method::DELETE, &path)
        .send()
        .await
        .unwrap();
    let by_staff = app.delete_as(&path, &staff_token).await;

    problem(by_other_streamer, StatusCode::FORBIDDEN, "forbidden").await;
    problem(anonymous, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    assert_eq!(by_staff.status(), StatusCode::NO_CONTENT);
}
