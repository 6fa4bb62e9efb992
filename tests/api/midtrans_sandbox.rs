//! The fake Midtrans speaks Midtrans' protocol: checked here through Siaran's own Midtrans
//! client and plain HTTP, the way Siaran and a browser use it.

use std::time::Duration;

use fake_midtrans::{Sandbox, SandboxSettings};
use reqwest::StatusCode;
use serde_json::{Value, json};
use siaran::config::MidtransConfig;
use siaran::payments::midtrans::{ItemDetails, SnapRequest, TransactionDetails};
use siaran::payments::{Midtrans, MidtransError, StatusAnswer};

use crate::donation_support::{CLIENT_KEY, SERVER_KEY};

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxSettings {
        addr: "127.0.0.1:0".parse().expect("address"),
        server_key: SERVER_KEY.to_owned(),
        client_key: CLIENT_KEY.to_owned(),
        notification_url: None,
        retry_minute: Duration::from_millis(10),
    })
    .await
    .expect("starting the sandbox")
}

fn client(url: &str, key: &str) -> Midtrans {
    Midtrans::from_config(&MidtransConfig {
        server_key: Some(key.to_owned()),
        client_key: Some(CLIENT_KEY.to_owned()),
        snap_url: url.to_owned(),
        api_url: url.to_owned(),
        is_production: false,
    })
    .expect("valid settings")
    .expect("a server key")
}

fn order(id: &str, amount: i64) -> SnapRequest {
    SnapRequest {
        transaction_details: TransactionDetails {
            order_id: id.to_owned(),
            gross_amount: amount,
        },
        item_details: vec![ItemDetails {
            id: "donation".into(),
            price: amount,
            quantity: 1,
            name: "Donasi".into(),
        }],
        customer_details: None,
        callbacks: None,
        expiry: None,
    }
}

#[tokio::test]
async fn the_status_is_404_until_the_buyer_chooses_a_payment_method() {
    let sandbox = sandbox().await;
    let midtrans = client(&sandbox.url(), SERVER_KEY);
    let token = midtrans
        .create_transaction(&order("order-1", 15_000))
        .await
        .unwrap();

    let before = midtrans.status("order-1").await.unwrap();
    let page = reqwest::Client::new()
        .post(format!("{}/bank_transfer", token.redirect_url))
        .send()
        .await
        .unwrap();
    let after = midtrans.status("order-1").await.unwrap();

    assert!(matches!(before, StatusAnswer::NotFound), "{before:?}");
    assert_eq!(page.status(), StatusCode::OK);
    let StatusAnswer::Found(status) = after else {
        panic!("{after:?}")
    };
    assert_eq!(status.transaction_status, "pending");
    assert_eq!(status.status_code, "201");
    assert_eq!(status.gross_amount, "15000.00");
    assert_eq!(status.order_id, "order-1");
}

#[tokio::test]
async fn an_order_id_can_be_used_only_once() {
    let sandbox = sandbox().await;
    let midtrans = client(&sandbox.url(), SERVER_KEY);
    midtrans
        .create_transaction(&order("order-1", 10_000))
        .await
        .unwrap();

    let again = midtrans.create_transaction(&order("order-1", 10_000)).await;

    let Err(MidtransError::Refused { status, messages }) = again else {
        panic!("{again:?}")
    };
    assert_eq!(status, 400);
    assert_eq!(
        messages,
        vec!["transaction_details.order_id sudah digunakan"]
    );
}

#[tokio::test]
async fn a_wrong_server_key_is_refused_with_midtrans_message() {
    let sandbox = sandbox().await;
    let midtrans = client(&sandbox.url(), "SB-Mid-server-wrong");

    let created = midtrans.create_transaction(&order("order-1", 10_000)).await;
    let status = midtrans.status("order-1").await;

    let Err(MidtransError::Refused {
        status: code,
        messages,
    }) = created
    else {
        panic!("{created:?}")
    };
    assert_eq!(code, 401);
    assert!(messages[0].starts_with("Access denied due to unauthorized transaction"));
    assert!(
        matches!(status, Err(MidtransError::Refused { status: 401, .. })),
        "{status:?}"
    );
}

#[tokio::test]
async fn invalid_transactions_get_midtrans_validation_errors() {
    let sandbox = sandbox().await;
    let response = reqwest::Client::new()
        .post(format!("{}/snap/v1/transactions", sandbox.url()))
        .basic_auth(SERVER_KEY, Some(""))
        .json(&json!({
            "transaction_details": {"order_id": "bad id!", "gross_amount": 10000},
            "item_details": [{"id": "a", "price": 5000, "quantity": 1, "name": "Donasi"}]
        }))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    let messages: Vec<&str> = body["error_messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(
        messages.contains(&"transaction_details.order_id has invalid characters"),
        "{messages:?}"
    );
    assert!(
        messages
            .contains(&"transaction_details.gross_amount is not equal to the sum of item_details"),
        "{messages:?}"
    );
}

#[tokio::test]
async fn the_payment_page_and_snap_js_are_served_for_browsers() {
    let sandbox = sandbox().await;
    let midtrans = client(&sandbox.url(), SERVER_KEY);
    let token = midtrans
        .create_transaction(&order("order-1", 123_000))
        .await
        .unwrap();
    let http = reqwest::Client::new();

    let page = http.get(&token.redirect_url).send().await.unwrap();
    let script = http.get(midtrans.snap_js_url()).send().await.unwrap();
    let unknown = http
        .get(format!("{}/snap/v4/redirection/nope", sandbox.url()))
        .send()
        .await
        .unwrap();

    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Rp 123.000"), "{html}");
    for action in [
        "pay",
        "card",
        "challenge",
        "bank_transfer",
        "deny",
        "expire",
    ] {
        assert!(
            html.contains(&format!("/{}/{action}\"", token.token)),
            "{action} button"
        );
    }
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/javascript")
    );
    let js = script.text().await.unwrap();
    assert!(js.contains("window.snap") && js.contains("onSuccess") && js.contains("onPending"));
    assert!(js.contains("onError") && js.contains("onClose"));
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}
