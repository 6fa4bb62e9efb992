//! A local Midtrans (the `fake-midtrans` program) that speaks the real protocol, so the whole
//! donation flow runs on a fresh machine and in tests without Midtrans' servers.
//!
//! It is a third party to Siaran and shares no code with it: it reads Snap requests as JSON,
//! signs notifications with its own SHA-512, and renders its own page. A mistake in Siaran's
//! Midtrans client therefore cannot be mirrored here and pass unnoticed.
//!
//! What it does as Midtrans does:
//! - Basic auth with the server key on every API call (`401` with Midtrans' message otherwise).
//! - `POST /snap/v1/transactions`: Midtrans' validation errors (`400 {"error_messages": [...]}`),
//!   duplicate order ids refused forever, `201 {token, redirect_url}`.
//! - `GET /v2/{order_id}/status`: `404 "Transaction doesn't exist."` until the buyer chooses a
//!   payment method, then the transaction with `status_code`, `transaction_status`,
//!   `fraud_status`, `gross_amount` `"10000.00"`…
//! - A payment page at `redirect_url` where a person (or a test) pays, is denied, or lets it
//!   expire; `/snap/snap.js` with `window.snap.pay(token, {onSuccess, onPending, onError,
//!   onClose})` showing that page in an overlay.
//! - Signed HTTP notifications to the notification URL after every change, retried by
//!   Midtrans' rules (2xx none; 500 once; 503 four times; 400/404 twice; anything else up to
//!   five times, at about 2, 10, 30, 90 and 210 "minutes" — the minute is configurable).
//!
//! Test hooks under `/_sandbox/` (server key required): drive an order to any status, send
//! duplicate or stale notifications on demand, change the amount Midtrans holds, and read the
//! delivery log.

mod page;
mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use wire::{SnapRequest, format_time, signature};

/// Midtrans gives up on a notification after this long.
const NOTIFICATION_TIMEOUT: Duration = Duration::from_secs(15);
/// Midtrans' retry schedule, in its minutes.
const RETRY_MINUTES: [u64; 5] = [2, 10, 30, 90, 210];
const MERCHANT_ID: &str = "G000SIARAN";

/// Settings of a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    pub addr: SocketAddr,
    pub server_key: String,
    pub client_key: String,
    /// Where notifications go; changeable later ([`Sandbox::set_notification_url`]).
    pub notification_url: Option<String>,
    /// How long one "minute" of the retry schedule lasts (tests shrink it).
    pub retry_minute: Duration,
}

/// A running sandbox.
#[derive(Debug)]
pub struct Sandbox {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[derive(Debug)]
struct Shared {
    server_key: String,
    client_key: String,
    base_url: String,
    notification_url: RwLock<Option<String>>,
    retry_minute: Duration,
    orders: Mutex<Orders>,
    http: reqwest::Client,
    stop: CancellationToken,
}

#[derive(Debug, Default)]
struct Orders {
    by_id: HashMap<String, Order>,
    by_token: HashMap<String, String>,
}

#[derive(Debug, Clone)]
struct Order {
    order_id: String,
    token: String,
    /// What Midtrans holds (a test can change it to simulate a tampered amount).
    gross_amount: i64,
    item_name: String,
    customer_name: String,
    expires_at: DateTime<Utc>,
    finish_url: Option<String>,
    transaction: Option<Transaction>,
    deliveries: Vec<Delivery>,
    /// Calls to the status endpoint for this order (tests count what notifications cost).
    status_requests: usize,
    /// The currency the order reports (a test can change it; Midtrans itself is IDR only).
    currency: String,
    /// Money returned so far by `refund` / `partial_refund`.
    refunded: i64,
}

#[derive(Debug, Clone)]
struct Transaction {
    transaction_id: Uuid,
    payment_type: String,
    transaction_status: String,
    fraud_status: Option<String>,
    transaction_time: DateTime<Utc>,
    settlement_time: Option<DateTime<Utc>>,
    va_number: Option<String>,
}

/// One notification attempt, as the delivery log shows it.
#[derive(Debug, Clone, Serialize)]
struct Delivery {
    transaction_status: String,
    attempt: usize,
    /// The HTTP status Siaran answered; `None` when it could not be reached.
    response_status: Option<u16>,
    at: DateTime<Utc>,
}

impl Sandbox {
    /// Binds and starts serving.
    pub async fn start(settings: SandboxSettings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.addr)
            .await
            .with_context(|| format!("binding the Midtrans sandbox on {}", settings.addr))?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            server_key: settings.server_key,
            client_key: settings.client_key,
            base_url: format!("http://{addr}"),
            notification_url: RwLock::new(settings.notification_url),
            retry_minute: settings.retry_minute,
            orders: Mutex::new(Orders::default()),
            http: reqwest::Client::builder()
                .timeout(NOTIFICATION_TIMEOUT)
                .build()?,
            stop: stop.clone(),
        });
        let app = router(shared.clone());
        let serving = stop.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { serving.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(cause = %e, "Midtrans sandbox stopped");
            }
        });
        Ok(Self { addr, shared, stop })
    }

    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, for both `MIDTRANS_SNAP_URL` and `MIDTRANS_API_URL`.
    #[must_use]
    pub fn url(&self) -> String {
        self.shared.base_url.clone()
    }

    pub fn set_notification_url(&self, url: impl Into<String>) {
        *self
            .shared
            .notification_url
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(url.into());
    }

    /// Stops serving (the port refuses connections afterwards) and sending notifications.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Serves until `shutdown` completes (the `fake-midtrans` program), writing the bound address
    /// to `addr_file` first so scripts can find a port chosen by the system.
    pub async fn run(
        self,
        addr_file: Option<PathBuf>,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        if let Some(path) = addr_file {
            std::fs::write(&path, self.addr.to_string())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        tracing::info!(url = %self.url(), "Midtrans sandbox listening");
        shutdown.await;
        self.stop();
        Ok(())
    }
}

fn router(shared: Arc<Shared>) -> Router {
    // What a merchant's server calls: the server key is required, as at Midtrans.
    let merchant_api = Router::new()
        .route("/snap/v1/transactions", post(create_transaction))
        .route("/v2/{order_id}/status", get(status))
        .route("/_sandbox/notification-url", put(hook_notification_url))
        .route(
            "/_sandbox/orders/{order_id}",
            get(hook_order).patch(hook_change_order),
        )
        .route(
            "/_sandbox/orders/{order_id}/notifications",
            post(hook_notify),
        )
        .route(
            "/_sandbox/orders/{order_id}/actions/{action}",
            post(hook_action),
        )
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            require_server_key,
        ));
    // What a buyer's browser loads: the token in the URL is the only credential, as at Midtrans.
    let browser = Router::new()
        .route("/snap/snap.js", get(snap_js))
        .route("/snap/v4/redirection/{token}", get(payment_page))
        .route("/snap/v4/redirection/{token}/{action}", post(page_action));
    merchant_api.merge(browser).with_state(shared)
}

async fn require_server_key(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    if shared.authorised(request.headers()) {
        next.run(request).await
    } else {
        unauthorised()
    }
}
// --- helpers -------------------------------------------------------------------------------

impl Shared {
    fn orders(&self) -> std::sync::MutexGuard<'_, Orders> {
        self.orders.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        let expected =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:", self.server_key));
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .is_some_and(|given| given.trim() == expected)
    }

    fn notification_url(&self) -> Option<String> {
        self.notification_url
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn errors(status: StatusCode, messages: &[&str]) -> Response {
    (status, Json(json!({ "error_messages": messages }))).into_response()
}

fn unauthorised() -> Response {
    errors(
        StatusCode::UNAUTHORIZED,
        &[
            "Access denied due to unauthorized transaction, please check client or server key",
            "Visit https://snap-docs.midtrans.com/#request-headers for more details",
        ],
    )
}

fn not_found_body() -> Value {
    json!({
        "status_code": "404",
        "status_message": "Transaction doesn't exist.",
        "id": Uuid::new_v4().to_string(),
    })
}

fn amount_text(amount: i64) -> String {
    format!("{amount}.00")
}

/// `status_code` and `status_message` Midtrans gives each transaction status.
fn status_line(
    transaction_status: &str,
    fraud_status: Option<&str>,
) -> (&'static str, &'static str) {
    match (transaction_status, fraud_status) {
        ("capture", Some("challenge")) => ("201", "Challenge by FDS"),
        ("capture" | "settlement" | "cancel" | "refund" | "partial_refund" | "authorize", _) => {
            ("200", "Success, transaction is found")
        }
        ("pending", _) => ("201", "Success, transaction is found"),
        ("expire", _) => ("407", "Success, transaction is found"),
        _ => ("202", "Success, transaction is found"),
    }
}

/// The transaction as the status endpoint and notifications describe it.
fn describe(order: &Order, txn: &Transaction, server_key: &str) -> Value {
    let (status_code, status_message) =
        status_line(&txn.transaction_status, txn.fraud_status.as_deref());
    let gross = amount_text(order.gross_amount);
    let mut body = json!({
        "status_code": status_code,
        "status_message": status_message,
        "transaction_id": txn.transaction_id.to_string(),
        "order_id": order.order_id,
        "merchant_id": MERCHANT_ID,
        "gross_amount": gross,
        "currency": order.currency,
        "payment_type": txn.payment_type,
        "transaction_time": format_time(txn.transaction_time, "%Y-%m-%d %H:%M:%S"),
        "transaction_status": txn.transaction_status,
        "expiry_time": format_time(order.expires_at, "%Y-%m-%d %H:%M:%S"),
        "signature_key": signature(&order.order_id, status_code, &gross, server_key),
    });
    if let Some(fraud) = &txn.fraud_status {
        body["fraud_status"] = json!(fraud);
    }
    if let Some(at) = txn.settlement_time {
        body["settlement_time"] = json!(format_time(at, "%Y-%m-%d %H:%M:%S"));
    }
    if order.refunded > 0 {
        body["refund_amount"] = json!(amount_text(order.refunded));
    }
    if let Some(va) = &txn.va_number {
        body["va_numbers"] = json!([{ "bank": "bca", "va_number": va }]);
    }
    body
}

// --- Snap ----------------------------------------------------------------------------------

async fn create_transaction(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Ok(raw) = serde_json::from_slice::<Value>(&body) else {
        return errors(
            StatusCode::BAD_REQUEST,
            &["There was a problem in the JSON you submitted"],
        );
    };
    let problems = validate(&raw);
    if !problems.is_empty() {
        let refs: Vec<&str> = problems.iter().map(String::as_str).collect();
        return errors(StatusCode::BAD_REQUEST, &refs);
    }
    let Ok(request) = serde_json::from_value::<SnapRequest>(raw) else {
        return errors(
            StatusCode::BAD_REQUEST,
            &["There was a problem in the JSON you submitted"],
        );
    };
    let order_id = request.transaction_details.order_id.clone();
    let token = Uuid::new_v4().to_string();
    let expires_at = request
        .expiry
        .as_ref()
        .and_then(|e| {
            let start = DateTime::parse_from_str(&e.start_time, "%Y-%m-%d %H:%M:%S %z").ok()?;
            let minutes = match e.unit.as_str() {
                "day" | "days" => e.duration * 24 * 60,
                "hour" | "hours" => e.duration * 60,
                _ => e.duration,
            };
            Some(start.with_timezone(&Utc) + chrono::Duration::minutes(minutes))
        })
        .unwrap_or_else(|| Utc::now() + chrono::Duration::days(1));
    {
        let mut orders = shared.orders();
        if orders.by_id.contains_key(&order_id) {
            return errors(
                StatusCode::BAD_REQUEST,
                &["transaction_details.order_id sudah digunakan"],
            );
        }
        orders.by_token.insert(token.clone(), order_id.clone());
        orders.by_id.insert(
            order_id.clone(),
            Order {
                order_id: order_id.clone(),
                token: token.clone(),
                gross_amount: request.transaction_details.gross_amount,
                item_name: request
                    .item_details
                    .first()
                    .map(|i| i.name.clone())
                    .unwrap_or_default(),
                customer_name: request
                    .customer_details
                    .as_ref()
                    .map(|c| c.first_name.clone())
                    .unwrap_or_default(),
                expires_at,
                finish_url: request.callbacks.map(|c| c.finish),
                transaction: None,
                deliveries: Vec::new(),
                status_requests: 0,
                currency: "IDR".to_owned(),
                refunded: 0,
            },
        );
    }
    tracing::info!(order_id, "sandbox: Snap transaction created");
    let redirect_url = format!("{}/snap/v4/redirection/{token}", shared.base_url);
    (
        StatusCode::CREATED,
        Json(json!({ "token": token, "redirect_url": redirect_url })),
    )
        .into_response()
}

/// Midtrans' checks on a Snap request, with its messages.
fn validate(raw: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let details = &raw["transaction_details"];
    match details["order_id"].as_str() {
        None | Some("") => problems.push("transaction_details.order_id is required".to_owned()),
        Some(id) if id.chars().count() > 50 => {
            problems.push("transaction_details.order_id too long, maximum length is 50".to_owned());
        }
        Some(id)
            if !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_~.".contains(c)) =>
        {
            problems.push("transaction_details.order_id has invalid characters".to_owned());
        }
        Some(_) => {}
    }
    let gross = &details["gross_amount"];
    let gross_amount = gross.as_i64();
    match gross_amount {
        None if gross.is_null() => {
            problems.push("transaction_details.gross_amount is required".to_owned());
        }
        None => problems.push(
            "transaction_details.gross_amount must be an integer (no decimals for IDR)".to_owned(),
        ),
        Some(g) if g < 1 => problems
            .push("transaction_details.gross_amount must be greater than or equal to 1".to_owned()),
        Some(_) => {}
    }
    if let Some(items) = raw["item_details"].as_array() {
        let mut sum = 0i64;
        for item in items {
            let price = item["price"].as_i64();
            let quantity = item["quantity"].as_i64();
            match (price, quantity) {
                (Some(p), Some(q)) => sum = sum.saturating_add(p.saturating_mul(q)),
                _ => problems.push(
                    "item_details.price and item_details.quantity must be integers".to_owned(),
                ),
            }
            match item["name"].as_str() {
                None | Some("") => problems.push("item_details.name is required".to_owned()),
                Some(name) if name.chars().count() > 50 => {
                    problems.push("item_details.name too long, maximum length is 50".to_owned());
                }
                Some(_) => {}
            }
        }
        if let Some(g) = gross_amount
            && !items.is_empty()
            && sum != g
        {
            problems.push(
                "transaction_details.gross_amount is not equal to the sum of item_details"
                    .to_owned(),
            );
        }
    }
    if let Some(expiry) = raw.get("expiry").filter(|e| !e.is_null()) {
        let minutes = expiry["duration"].as_i64().unwrap_or(0)
            * match expiry["unit"].as_str() {
                Some("day" | "days") => 24 * 60,
                Some("hour" | "hours") => 60,
                _ => 1,
            };
        if !(1..=7 * 24 * 60).contains(&minutes) {
            problems.push("expiry.duration must be between 1 minute and 7 days".to_owned());
        }
    }
    problems
}

async fn status(State(shared): State<Arc<Shared>>, Path(order_id): Path<String>) -> Response {
    let mut orders = shared.orders();
    let Some(order) = orders.by_id.get_mut(&order_id) else {
        return (StatusCode::NOT_FOUND, Json(not_found_body())).into_response();
    };
    order.status_requests += 1;
    expire_if_due(order);
    match &order.transaction {
        Some(txn) => Json(describe(order, txn, &shared.server_key)).into_response(),
        None => (StatusCode::NOT_FOUND, Json(not_found_body())).into_response(),
    }
}

/// An order past its expiry that is still waiting becomes `expire`, as at Midtrans (an order
/// whose buyer never chose a method stays "doesn't exist").
fn expire_if_due(order: &mut Order) -> bool {
    let due = Utc::now() >= order.expires_at;
    match &mut order.transaction {
        Some(txn) if due && txn.transaction_status == "pending" => {
            txn.transaction_status = "expire".to_owned();
            true
        }
        _ => false,
    }
}

async fn snap_js(State(shared): State<Arc<Shared>>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/javascript; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        page::snap_js(&shared.base_url),
    )
        .into_response()
}

// --- the payment page ----------------------------------------------------------------------

async fn payment_page(State(shared): State<Arc<Shared>>, Path(token): Path<String>) -> Response {
    let orders = shared.orders();
    let Some(order) = orders
        .by_token
        .get(&token)
        .and_then(|id| orders.by_id.get(id))
    else {
        return (StatusCode::NOT_FOUND, Html(page::not_found())).into_response();
    };
    Html(page::payment(&page::PageOrder {
        token: &order.token,
        order_id: &order.order_id,
        amount: order.gross_amount,
        item: &order.item_name,
        customer: &order.customer_name,
        client_key_set: !shared.client_key.is_empty(),
        status: order
            .transaction
            .as_ref()
            .map(|t| t.transaction_status.as_str()),
    }))
    .into_response()
}

async fn page_action(
    State(shared): State<Arc<Shared>>,
    Path((token, action)): Path<(String, String)>,
) -> Response {
    let order_id = {
        let orders = shared.orders();
        match orders.by_token.get(&token) {
            Some(id) => id.clone(),
            None => return (StatusCode::NOT_FOUND, Html(page::not_found())).into_response(),
        }
    };
    match transition(&shared, &order_id, &action) {
        Ok((result, finish_url)) => {
            Html(page::result(&result, finish_url.as_deref())).into_response()
        }
        Err((status, message)) => (status, Html(page::error(&message))).into_response(),
    }
}

/// Moves an order's transaction as a payment method or Midtrans would, then notifies Siaran.
/// Returns what Snap.js reports to the page and the finish URL.
fn transition(
    shared: &Arc<Shared>,
    order_id: &str,
    action: &str,
) -> Result<(Value, Option<String>), (StatusCode, String)> {
    let (status, payment_type, fraud): (&str, &str, Option<&str>) = match action {
        "pay" | "settlement" => ("settlement", "qris", None),
        "card" => ("capture", "credit_card", Some("accept")),
        "challenge" => ("capture", "credit_card", Some("challenge")),
        "bank_transfer" | "pending" => ("pending", "bank_transfer", None),
        "deny" => ("deny", "credit_card", Some("deny")),
        "expire" => ("expire", "bank_transfer", None),
        "cancel" => ("cancel", "", None),
        "accept_challenge" => ("capture", "credit_card", Some("accept")),
        "refund" => ("refund", "", None),
        // Returns half of what is left (the merchant dashboard's partial refund).
        "partial_refund" => ("partial_refund", "", None),
        other => return Err((StatusCode::NOT_FOUND, format!("unknown action {other}"))),
    };
    let (body, finish_url) = {
        let mut orders = shared.orders();
        let order = orders.by_id.get_mut(order_id).ok_or((
            StatusCode::NOT_FOUND,
            "Transaction doesn't exist.".to_owned(),
        ))?;
        expire_if_due(order);
        let current = order
            .transaction
            .as_ref()
            .map(|t| (t.transaction_status.clone(), t.fraud_status.clone()));
        let allowed = match (&current, action) {
            (None, "cancel" | "refund" | "partial_refund" | "accept_challenge") => false,
            (None, _) => true,
            (Some((s, _)), "refund" | "partial_refund") => {
                s == "settlement" || s == "capture" || s == "partial_refund"
            }
            (Some((s, f)), "accept_challenge" | "deny" | "cancel") if s == "capture" => {
                f.as_deref() == Some("challenge")
            }
            (Some((s, _)), _) => s == "pending",
        };
        if !allowed {
            return Err((
                StatusCode::PRECONDITION_FAILED,
                "Merchant cannot modify the status of the transaction".to_owned(),
            ));
        }
        let now = Utc::now();
        let txn = order.transaction.get_or_insert_with(|| Transaction {
            transaction_id: Uuid::new_v4(),
            payment_type: payment_type.to_owned(),
            transaction_status: String::new(),
            fraud_status: None,
            transaction_time: now,
            settlement_time: None,
            va_number: None,
        });
        if !payment_type.is_empty() && txn.transaction_status.is_empty() {
            txn.payment_type = payment_type.to_owned();
        }
        if txn.payment_type == "bank_transfer" && txn.va_number.is_none() {
            txn.va_number = Some(format!(
                "{:011}",
                rand::rng().random_range(0..100_000_000_000u64)
            ));
        }
        txn.transaction_status = status.to_owned();
        txn.fraud_status = fraud
            .map(str::to_owned)
            .or_else(|| (txn.payment_type == "credit_card").then(|| "accept".to_owned()));
        if status == "settlement" {
            txn.settlement_time = Some(now);
        }
        let txn = txn.clone();
        match status {
            "refund" => order.refunded = order.gross_amount,
            "partial_refund" => order.refunded += (order.gross_amount - order.refunded) / 2,
            _ => {}
        }
        let body = describe(order, &txn, &shared.server_key);
        (body, order.finish_url.clone())
    };
    tracing::info!(
        order_id,
        transaction_status = status,
        "sandbox: transaction changed"
    );
    deliver_with_retries(shared.clone(), order_id.to_owned(), body.clone());
    Ok((body, finish_url))
}

// --- notifications -------------------------------------------------------------------------

/// How many retries Midtrans makes after a first attempt answered `status`.
fn retries_after(status: Option<u16>) -> usize {
    match status {
        Some(200..=299) => 0,
        Some(500) => 1,
        Some(503) => 4,
        Some(400 | 404) => 2,
        _ => 5,
    }
}

/// Sends a notification once; returns Siaran's HTTP status.
async fn deliver_once(
    shared: &Shared,
    order_id: &str,
    body: &Value,
    attempt: usize,
) -> Option<u16> {
    let url = shared.notification_url()?;
    let response = shared.http.post(&url).json(body).send().await;
    let status = match response {
        Ok(r) => Some(r.status().as_u16()),
        Err(e) => {
            tracing::info!(order_id, cause = %e.without_url(), "sandbox: notification not delivered");
            None
        }
    };
    if let Some(order) = shared.orders().by_id.get_mut(order_id) {
        order.deliveries.push(Delivery {
            transaction_status: body["transaction_status"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            attempt,
            response_status: status,
            at: Utc::now(),
        });
    }
    status
}

fn deliver_with_retries(shared: Arc<Shared>, order_id: String, body: Value) {
    tokio::spawn(async move {
        let first = deliver_once(&shared, &order_id, &body, 1).await;
        let retries = retries_after(first);
        for (i, minutes) in RETRY_MINUTES.iter().take(retries).enumerate() {
            let jitter = rand::rng().random_range(0.9..1.1);
            let wait = shared.retry_minute.mul_f64(*minutes as f64 * jitter);
            tokio::select! {
                () = shared.stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            let status = deliver_once(&shared, &order_id, &body, i + 2).await;
            if matches!(status, Some(200..=299)) {
                return;
            }
        }
    });
}

// --- test hooks ----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct NotificationUrl {
    url: String,
}

async fn hook_notification_url(
    State(shared): State<Arc<Shared>>,
    Json(body): Json<NotificationUrl>,
) -> Response {
    *shared
        .notification_url
        .write()
        .unwrap_or_else(PoisonError::into_inner) = Some(body.url);
    StatusCode::NO_CONTENT.into_response()
}

async fn hook_order(State(shared): State<Arc<Shared>>, Path(order_id): Path<String>) -> Response {
    let orders = shared.orders();
    let Some(order) = orders.by_id.get(&order_id) else {
        return (StatusCode::NOT_FOUND, Json(not_found_body())).into_response();
    };
    Json(json!({
        "order_id": order.order_id,
        "token": order.token,
        "gross_amount": order.gross_amount,
        "transaction": order.transaction.as_ref().map(|t| describe(order, t, &shared.server_key)),
        "deliveries": order.deliveries,
        "status_requests": order.status_requests,
    }))
    .into_response()
}

/// What a test changes in an order Midtrans holds.
#[derive(Debug, Deserialize)]
struct ChangeOrder {
    gross_amount: Option<i64>,
    currency: Option<String>,
}

async fn hook_change_order(
    State(shared): State<Arc<Shared>>,
    Path(order_id): Path<String>,
    Json(body): Json<ChangeOrder>,
) -> Response {
    match shared.orders().by_id.get_mut(&order_id) {
        Some(order) => {
            if let Some(amount) = body.gross_amount {
                order.gross_amount = amount;
            }
            if let Some(currency) = body.currency {
                order.currency = currency;
            }
            StatusCode::NO_CONTENT.into_response()
        }
        None => (StatusCode::NOT_FOUND, Json(not_found_body())).into_response(),
    }
}

async fn hook_action(
    State(shared): State<Arc<Shared>>,
    Path((order_id, action)): Path<(String, String)>,
) -> Response {
    match transition(&shared, &order_id, &action) {
        Ok((body, _)) => Json(body).into_response(),
        Err((status, message)) => (
            status,
            Json(json!({"status_code": status.as_str(), "status_message": message})),
        )
            .into_response(),
    }
}

/// A notification sent on demand: the current state, or an older one (out of order), any
/// number of copies (duplicates), optionally with a wrong signature (forged).
#[derive(Debug, Default, Deserialize)]
struct NotifyRequest {
    transaction_status: Option<String>,
    fraud_status: Option<String>,
    /// Overrides the amount in the body (the signature is computed over it unless forged).
    gross_amount: Option<String>,
    #[serde(default)]
    copies: Option<usize>,
    /// Send this signature instead of the right one.
    signature_key: Option<String>,
}

async fn hook_notify(
    State(shared): State<Arc<Shared>>,
    Path(order_id): Path<String>,
    body: Bytes,
) -> Response {
    let request: NotifyRequest = if body.is_empty() {
        NotifyRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return errors(StatusCode::BAD_REQUEST, &[&e.to_string()]),
        }
    };
    let notification = {
        let orders = shared.orders();
        let Some(order) = orders.by_id.get(&order_id) else {
            return (StatusCode::NOT_FOUND, Json(not_found_body())).into_response();
        };
        let mut txn = order.transaction.clone().unwrap_or(Transaction {
            transaction_id: Uuid::new_v4(),
            payment_type: "bank_transfer".to_owned(),
            transaction_status: "pending".to_owned(),
            fraud_status: None,
            transaction_time: Utc::now(),
            settlement_time: None,
            va_number: None,
        });
        if let Some(status) = &request.transaction_status {
            txn.transaction_status.clone_from(status);
            txn.fraud_status.clone_from(&request.fraud_status);
        }
        let mut body = describe(order, &txn, &shared.server_key);
        if let Some(gross) = &request.gross_amount {
            let code = body["status_code"].as_str().unwrap_or_default().to_owned();
            body["gross_amount"] = json!(gross);
            body["signature_key"] = json!(signature(&order_id, &code, gross, &shared.server_key));
        }
        if let Some(forged) = &request.signature_key {
            body["signature_key"] = json!(forged);
        }
        body
    };
    let mut responses = Vec::new();
    for copy in 0..request.copies.unwrap_or(1).clamp(1, 20) {
        responses.push(deliver_once(&shared, &order_id, &notification, copy + 1).await);
    }
    Json(json!({ "notification": notification, "responses": responses })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_rules_follow_midtrans() {
        assert_eq!(retries_after(Some(200)), 0);
        assert_eq!(retries_after(Some(201)), 0);
        assert_eq!(retries_after(Some(500)), 1);
        assert_eq!(retries_after(Some(503)), 4);
        assert_eq!(retries_after(Some(404)), 2);
        assert_eq!(retries_after(Some(400)), 2);
        assert_eq!(retries_after(Some(401)), 5);
        assert_eq!(retries_after(None), 5);
    }

    #[test]
    fn snap_validation_reports_midtrans_messages() {
        let bad = json!({
            "transaction_details": {"order_id": "has space", "gross_amount": 10000.5},
            "item_details": [{"id": "x", "price": 5000, "quantity": 1, "name": "n".repeat(51)}]
        });
        let problems = validate(&bad);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("order_id has invalid characters")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("gross_amount must be an integer")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("name too long")),
            "{problems:?}"
        );
        let mismatch = json!({
            "transaction_details": {"order_id": "a-1", "gross_amount": 10000},
            "item_details": [{"id": "x", "price": 5000, "quantity": 1, "name": "Donasi"}]
        });
        assert_eq!(
            validate(&mismatch),
            vec!["transaction_details.gross_amount is not equal to the sum of item_details"]
        );
    }
}
