//! The OpenAPI document describes exactly what the router serves.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::TestApp;

/// Every route the API has. A new route must be added here, and to the document.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/api/auth/register"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/refresh"),
    ("POST", "/api/auth/logout"),
    ("GET", "/api/users/me"),
    ("PATCH", "/api/users/me"),
    ("GET", "/api/admin/users"),
    ("POST", "/api/admin/users/{id}/deactivate"),
    ("POST", "/api/admin/users/{id}/reactivate"),
    ("GET", "/api/admin/streams"),
    ("POST", "/api/admin/streams/{id}/end"),
    ("GET", "/api/admin/donations"),
    ("GET", "/api/streams/{id}/comments"),
    ("POST", "/api/streams/{id}/comments"),
    ("DELETE", "/api/comments/{comment_id}"),
    ("GET", "/ws/stream/{stream_id}/"),
    ("GET", "/ws/overlay/{token}"),
    ("POST", "/api/users/me/overlay-token"),
    ("GET", "/api/users/me/overlay"),
    ("POST", "/api/streams"),
    ("GET", "/api/streams"),
    ("GET", "/api/streams/{id}"),
    ("PATCH", "/api/streams/{id}"),
    ("POST", "/api/streams/{id}/stop"),
    ("POST", "/api/users/me/stream-key"),
    ("GET", "/api/users/me/ingest"),
    ("GET", "/hls/{stream_id}/{file}"),
    ("GET", "/api/users/me/payout"),
    ("PATCH", "/api/users/me/payout"),
    ("GET", "/api/users/me/blocked-words"),
    ("PUT", "/api/users/me/blocked-words"),
    ("POST", "/api/streams/{id}/donations"),
    ("GET", "/api/streams/{id}/donations"),
    ("GET", "/api/donations/{id}"),
    ("POST", "/api/donations/{id}/confirm"),
    ("POST", "/api/donations/{id}/reject"),
    ("GET", "/api/donations/sent"),
    ("GET", "/api/donations/received"),
    ("POST", "/api/payments/midtrans/notification"),
];

async fn document(app: &TestApp) -> Value {
    let response = app.get("/api/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("OpenAPI JSON")
}

fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                ops.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops.sort();
    ops
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn the_document_lists_every_route(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let doc = document(&app).await;

    let mut expected: Vec<_> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    expected.sort();

    assert_eq!(operations(&doc), expected);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn every_documented_route_is_served(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let doc = document(&app).await;

    for (method, path) in operations(&doc) {
        let concrete = path
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    "00000000-0000-0000-0000-000000000000"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let response = app
            .request(Method::from_bytes(method.as_bytes()).unwrap(), &concrete)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_ne!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        if response.status() == StatusCode::NOT_FOUND {
            let body: Value = response.json().await.unwrap_or_default();
            assert_ne!(
                body["code"], "route_not_found",
                "{method} {path} is documented but not routed"
            );
        }
    }
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn every_operation_documents_its_responses(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let doc = document(&app).await;

    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path} has no responses"));
            assert!(
                responses.keys().any(|k| k.starts_with('2') || k == "101"),
                "{method} {path} has no success response"
            );
        }
    }
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn swagger_ui_is_served(db: PgPool) {
    let app = TestApp::spawn(db).await;

    let response = app.get("/api/docs/").await;

    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("swagger"));
}
