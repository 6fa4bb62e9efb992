//! Streams, stream keys and HLS serving, without media (the `media` test binary publishes).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{Session, TestApp, field_errors, problem};

async fn create_stream(app: &TestApp, session: &Session, title: &str) -> Value {
    let response = app
        .post_as(
            "/api/streams",
            &session.access_token,
            &json!({"title": title, "description": "Main bareng"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.expect("stream JSON")
}

fn id_of(stream: &Value) -> Uuid {
    stream["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("stream id")
}

/// Marks a stream live as the media bridge would.
async fn set_live(app: &TestApp, id: Uuid) {
    sqlx::query("UPDATE streams SET is_active = true, started_at = now() WHERE id = $1")
        .bind(id)
        .execute(&app.db)
        .await
        .expect("marking the stream live");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn creating_a_stream_makes_the_user_a_streamer(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let budi = app.signed_up("budi").await;

    let stream = create_stream(&app, &budi, "  Main bareng malam ini ").await;

    assert_eq!(stream["title"], "Main bareng malam ini");
    assert_eq!(stream["streamer"]["username"], "budi");
    assert_eq!(stream["is_live"], false);
    assert!(stream["hls_url"].is_null() && stream["started_at"].is_null());
    let me: Value = app
        .get_as("/api/users/me", &budi.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["is_streamer"], true);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_stream_needs_a_title_of_sensible_length(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let budi = app.signed_up("budi").await;

    let response = app
        .post_as(
            "/api/streams",
            &budi.access_token,
            &json!({"title": "  ", "description": "x".repeat(5001)}),
        )
        .await;

    let body = problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_errors(&body),
        vec![
            ("title".into(), "required".into()),
            ("description".into(), "too_long".into())
        ]
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM streams")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn anonymous_visitors_cannot_create_streams(db: PgPool) {
    let app = TestApp::spawn(db).await;

    let response = app.post("/api/streams", &json!({"title": "Sneaky"})).await;

    problem(response, StatusCode::UNAUTHORIZED, "not_authenticated").await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn live_streams_are_listed_first_and_can_be_filtered(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let budi = app.signed_up("budi").await;
    let sari = app.signed_up("sari").await;
    let older = create_stream(&app, &budi, "Older, live").await;
    let newer = create_stream(&app, &sari, "Newer, offline").await;
    set_live(&app, id_of(&older)).await;

    let all: Value = app.get("/api/streams").await.json().await.unwrap();
    let live: Value = app
        .get("/api/streams?live=true")
        .await
        .json()
        .await
        .unwrap();
    let offline: Value = app
        .get("/api/streams?live=false")
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(all["total"], 2);
    assert_eq!(all["items"][0]["id"], older["id"]);
    assert_eq!(all["items"][0]["is_live"], true);
    assert!(
        all["items"][0]["hls_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!(
                "/hls/{}/index.m3u8",
                older["id"].as_str().unwrap()
            ))
    );
    assert_eq!(all["items"][1]["id"], newer["id"]);
    assert_eq!(live["total"], 1);
    assert_eq!(live["items"][0]["id"], older["id"]);
    assert_eq!(offline["total"], 1);
    assert_eq!(offline["items"][0]["id"], newer["id"]);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_streamers_own_streams_can_be_listed(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let budi = app.signed_up("budi").await;
    let sari = app.signed_up("sari").await;
    let first = create_stream(&app, &budi, "Budi pertama").await;
    let second = create_stream(&app, &budi, "Budi kedua").await;
    create_stream(&app, &sari, "Punya Sari").await;

    let budis: Value = app
        .get(&format!("/api/streams?streamer_id={}", budi.id))
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(budis["total"], 2);
    let ids: Vec<&Value> = budis["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["id"])
        .collect();
    assert_eq!(ids, [&second["id"], &first["id"]], "newest first");
    let nobody = app.get("/api/streams?streamer_id=not-a-uuid").await;
    let body = problem(
        nobody,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(field_errors(&body)[0].0, "streamer_id");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn bad_paging_and_filters_are_field_errors(db: PgPool) {
    let app = TestApp::spawn(db).await;

    let per_page = app.get("/api/streams?per_page=1000").await;
    let live = app.get("/api/streams?live=maybe").await;

    let body = problem(
        per_page,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(field_errors(&body)[0].0, "per_page");
    let body = problem(live, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(field_errors(&body)[0].0, "live");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn unknown_streams_are_not_found(db: PgPool) {
    let app = TestApp::spawn(db).await;

    let unknown = app.get(&format!("/api/streams/{}", Uuid::new_v4())).await;
    let not_a_uuid = app.get("/api/streams/not-a-uuid").await;

    problem(unknown, StatusCode::NOT_FOUND, "not_found").await;
    problem(not_a_uuid, StatusCode::NOT_FOUND, "not_found").await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn only_the_owner_may_edit_or_stop_a_stream(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let budi = app.signed_up("budi").await;
    let rina = app.signed_up("rina").await;
    let stream = create_stream(&app, &budi, "Budi's").await;
    let id = id_of(&stream);
    set_live(&app, id).await;

    let edit = app
        .patch_as(
            &format!("/api/streams/{id}"),
            &rina.access_token,
            &json!({"title": "Mine now"}),
        )
        .await;
    let stop = app
        .post_as(
            &format!("/api/streams/{id}/stop"),
            &rina.access_token,
            &json!({}),
        )
        .await;
    let anonymous = app
        .request(Method::POST, &format!("/api/streams/{id}/stop"))
        .send()
        .await
        .unwrap();

    problem(edit, StatusCode::FORBIDDEN, "forbidden").await;
    problem(stop, StatusCode::FORBIDDEN, "forbidden").await;
    problem(anonymous, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    let after: Value = app
        .get(&format!("/api/streams/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after["title"], "Budi's");
    assert_eq!(after["is_live"], true);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn the_owner_edits_title_and_description(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let budi = app.signed_up("budi").await;
    let id = id_of(&create_stream(&app, &budi, "Draft").await);

    let response = app
        .patch_as(
            &format!("/api/streams/{id}"),
            &budi.access_token,
            &json!({"title": "Final title"}),
        )
        .await;
    let unknown_field = app
        .patch_as(
            &format!("/api/streams/{id}"),
            &budi.access_token,
            &json!({"is_active": true}),
        )
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["title"], "Final title");
    assert_eq!(body["description"], "Main bareng");
    problem(
        unknown_field,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn stopping_ends_a_live_stream_once(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let budi = app.signed_up("budi").await;
    let id = id_of(&create_stream(&app, &budi, "Live").await);
    set_live(&app, id).await;
    let path = format!("/api/streams/{id}/stop");

    let first = app.post_as(&path, &budi.access_token, &json!({})).await;
    let second = app.post_as(&path, &budi.access_token, &json!({})).await;

    assert_eq!(first.status(), StatusCode::OK);
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["is_live"], false);
    assert!(body["ended_at"].is_string() && body["hls_url"].is_null());
    problem(second, StatusCode::CONFLICT, "stream_not_live").await;
    let kinds: Vec<String> = app
        .stream_events(id)
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(kinds, ["stream.ended"]);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn a_stream_key_is_shown_once_and_masked_after(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let budi = app.signed_up("budi").await;

    let before: Value = app
        .get_as("/api/users/me/ingest", &budi.access_token)
        .await
        .json()
        .await
        .unwrap();
    let created = app
        .post_as("/api/users/me/stream-key", &budi.access_token, &json!({}))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    let after = app.get_as("/api/users/me/ingest", &budi.access_token).await;
    let after_text = after.text().await.unwrap();
    let after: Value = serde_json::from_str(&after_text).unwrap();

    assert!(before["masked_key"].is_null());
    assert!(
        before["ingest_url"]
            .as_str()
            .unwrap()
            .starts_with("rtmp://")
    );
    let key = created["stream_key"].as_str().unwrap();
    assert!(key.starts_with("sk_") && key.len() > 40, "{key}");
    assert_eq!(created["ingest_url"], before["ingest_url"]);
    assert_eq!(after["masked_key"], created["masked_key"]);
    assert!(!after_text.contains(key) && !after_text.contains(&key[20..]));
    let stored: Vec<u8> = sqlx::query_scalar("SELECT secret_hash FROM stream_keys")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored.len(), 32, "only a hash is stored");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn rotating_a_key_replaces_it_and_ends_the_live_stream(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let budi = app.signed_up("budi").await;
    let first: Value = app
        .post_as("/api/users/me/stream-key", &budi.access_token, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let id = id_of(&create_stream(&app, &budi, "Live").await);
    set_live(&app, id).await;

    let second: Value = app
        .post_as("/api/users/me/stream-key", &budi.access_token, &json!({}))
        .await
        .json()
        .await
        .unwrap();

    assert_ne!(first["stream_key"], second["stream_key"]);
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM stream_keys")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(keys, 1);
    let stream: Value = app
        .get(&format!("/api/streams/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stream["is_live"], false);
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn stream_keys_need_a_login(db: PgPool) {
    let app = TestApp::spawn(db).await;

    let rotate = app
        .request(Method::POST, "/api/users/me/stream-key")
        .send()
        .await
        .unwrap();
    let ingest = app.get("/api/users/me/ingest").await;

    problem(rotate, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    problem(ingest, StatusCode::UNAUTHORIZED, "not_authenticated").await;
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn hls_files_are_served_with_their_types_and_cache_rules(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let id = Uuid::new_v4();
    let dir = app.hls_dir.join(id.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.m3u8"), "#EXTM3U\n").unwrap();
    std::fs::write(dir.join("3.m4s"), [0x47u8; 188]).unwrap();
    std::fs::write(dir.join("thumbnail.jpg"), [0xffu8, 0xd8]).unwrap();

    let get = |file: &str| {
        app.request(Method::GET, &format!("/hls/{id}/{file}"))
            .header("origin", "http://player.example")
            .send()
    };
    let playlist = get("index.m3u8").await.unwrap();
    let segment = get("3.m4s").await.unwrap();
    let thumbnail = get("thumbnail.jpg").await.unwrap();

    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(playlist.status(), StatusCode::OK);
    assert_eq!(
        header(&playlist, "content-type"),
        "application/vnd.apple.mpegurl"
    );
    assert!(header(&playlist, "cache-control").contains("no-cache"));
    assert_eq!(header(&playlist, "access-control-allow-origin"), "*");
    assert_eq!(header(&segment, "content-type"), "video/mp4");
    assert!(header(&segment, "cache-control").contains("max-age"));
    assert_eq!(header(&thumbnail, "content-type"), "image/jpeg");
    assert_eq!(playlist.text().await.unwrap(), "#EXTM3U\n");
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn hls_segments_larger_than_a_read_chunk_arrive_whole_with_their_length(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let id = Uuid::new_v4();
    let dir = app.hls_dir.join(id.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    // 3 MiB and a bit, each byte different from its neighbours: a lost or repeated chunk shows.
    let bytes: Vec<u8> = (0..3 * 1024 * 1024 + 4321_u32)
        .map(|i| (i % 251) as u8)
        .collect();
    std::fs::write(dir.join("7.m4s"), &bytes).unwrap();

    let response = app.get(&format!("/hls/{id}/7.m4s")).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-length"].to_str().unwrap(),
        bytes.len().to_string()
    );
    assert!(
        response.bytes().await.unwrap() == bytes,
        "the body differs from the file"
    );
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn hls_paths_outside_a_stream_are_not_found(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let id = Uuid::new_v4();
    std::fs::create_dir_all(app.hls_dir.join(id.to_string())).unwrap();
    std::fs::write(app.hls_dir.join("secret.m4s"), b"nope").unwrap();

    for path in [
        format!("/hls/{}/index.m3u8", Uuid::new_v4()),
        format!("/hls/{id}/index.m3u8"),
        format!("/hls/{id}/..%2Fsecret.m4s"),
        format!("/hls/{id}/%2e%2e"),
        "/hls/../Cargo.toml".to_owned(),
        format!("/hls/{id}/../secret.m4s"),
        "/hls/not-a-uuid/index.m3u8".to_owned(),
    ] {
        let response = app.get(&path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
    }
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn ended_streams_hls_files_are_deleted_after_retention_but_their_thumbnail_stays(db: PgPool) {
    let app = TestApp::spawn_with(db, |c| {
        c.hls_retention_secs = 60;
        c.hls_sweep_secs = 1;
    })
    .await;
    let session = app.signed_up("sari").await;
    let stream = |state: &'static str| {
        let (db, owner) = (app.db.clone(), session.id);
        async move {
            sqlx::query_scalar::<_, Uuid>(
                "INSERT INTO streams (streamer_id, title, is_active, started_at, ended_at)
                 VALUES ($1, $2, $2 = 'live', now() - interval '10 minutes',
                         CASE $2 WHEN 'old' THEN now() - interval '2 minutes'
                                 WHEN 'recent' THEN now() END)
                 RETURNING id",
            )
            .bind(owner)
            .bind(state)
            .fetch_one(&db)
            .await
            .expect("a stream")
        }
    };
    let (old, recent, live) = (
        stream("old").await,
        stream("recent").await,
        stream("live").await,
    );
    let deleted = Uuid::new_v4();
    let files = [
        "index.m3u8",
        "init-0.mp4",
        "0.m4s",
        "1.m4s",
        "thumbnail.jpg",
    ];
    for dir in [
        old.to_string(),
        recent.to_string(),
        live.to_string(),
        deleted.to_string(),
        "not-a-stream".to_owned(),
    ] {
        let dir = app.hls_dir.join(dir);
        std::fs::create_dir_all(&dir).expect("a stream directory");
        for file in files {
            std::fs::write(dir.join(file), b"x").expect("a file");
        }
    }
    // The deleted stream's directory has not changed for longer than the retention; a fresh
    // directory of an unknown stream stays (another deployment may share the directory).
    let unknown_fresh = Uuid::new_v4();
    std::fs::create_dir_all(app.hls_dir.join(unknown_fresh.to_string())).expect("a directory");
    std::fs::File::open(app.hls_dir.join(deleted.to_string()))
        .and_then(|d| {
            d.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(120))
        })
        .expect("dating the directory");
    let listing = |name: String| {
        let mut names: Vec<String> = std::fs::read_dir(app.hls_dir.join(name))
            .map(|d| {
                d.map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let gone = app.hls_dir.join(deleted.to_string());
    while listing(old.to_string()) != ["thumbnail.jpg"] || gone.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the old stream's segments or the deleted stream's directory were never deleted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Passes have run over every directory since they were all written.
    assert!(
        app.hls_dir.join(unknown_fresh.to_string()).exists(),
        "a fresh unknown one stays"
    );
    let mut all = files.map(str::to_owned).to_vec();
    all.sort();
    for kept in [
        recent.to_string(),
        live.to_string(),
        "not-a-stream".to_owned(),
    ] {
        assert_eq!(listing(kept.clone()), all, "{kept} is untouched");
    }
    let thumbnail = app.get(&format!("/hls/{old}/thumbnail.jpg")).await;
    assert_eq!(thumbnail.status(), StatusCode::OK);
    let playlist = app.get(&format!("/hls/{old}/index.m3u8")).await;
    assert_eq!(playlist.status(), StatusCode::NOT_FOUND);
}
