//! The built web app is served at `/`: its files, `index.html` for client-side routes, and
//! problem documents for everything that is neither.

use reqwest::StatusCode;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{TestApp, problem};

/// A stand-in for `frontend/dist`.
fn built_frontend() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("siaran-test-dist-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("assets")).expect("creating the dist folder");
    std::fs::write(dir.join("index.html"), "<!doctype html><div id=app></div>")
        .expect("writing index.html");
    std::fs::write(dir.join("assets/index-abc123.js"), "console.log(1)").expect("writing an asset");
    dir
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn client_routes_get_the_app_and_assets_are_cached_for_good(db: PgPool) {
    let dist = built_frontend();
    let app = TestApp::spawn_with(db, |c| c.frontend_dir.clone_from(&dist)).await;

    for route in [
        "/",
        "/streams/0190a7c4-1f2e-7c3d-9a5b-2f1e0d9c8b7a",
        "/overlay/sov_AbC-xyz_09",
        "/admin/users",
    ] {
        let page = app.get(route).await;
        assert_eq!(page.status(), StatusCode::OK, "{route}");
        assert_eq!(page.headers()["cache-control"], "no-cache", "{route}");
        assert!(page.text().await.unwrap().contains("id=app"), "{route}");
    }
    let asset = app.get("/assets/index-abc123.js").await;
    assert_eq!(asset.status(), StatusCode::OK);
    assert!(
        asset.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    std::fs::remove_dir_all(dist).ok();
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn missing_files_and_unknown_api_paths_are_problems_not_the_app(db: PgPool) {
    let dist = built_frontend();
    let app = TestApp::spawn_with(db, |c| c.frontend_dir.clone_from(&dist)).await;

    for path in [
        "/assets/index-old999.js",
        "/Cargo.toml",
        "/favicon.ico",
        "/api/nothing",
        "/ws/nothing",
        "/hls",
    ] {
        problem(
            app.get(path).await,
            StatusCode::NOT_FOUND,
            "route_not_found",
        )
        .await;
    }
    std::fs::remove_dir_all(dist).ok();
}
