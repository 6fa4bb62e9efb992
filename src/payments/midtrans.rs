//! A client for the two Midtrans endpoints Siaran uses — Snap's create-transaction and the Core
//! API's transaction status — and the notification signature.
//!
//! Both base URLs come from configuration, so development and tests point them at the bundled
//! fake (the `fake-midtrans` program), which speaks the same protocol.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

use crate::config::MidtransConfig;

/// Midtrans answers within seconds when healthy; a donor should not wait longer than this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Jakarta time (WIB), the zone Midtrans reports and expects times in.
const WIB_SECONDS: i32 = 7 * 3600;

/// A configured Midtrans merchant. Cheap to clone.
#[derive(Clone)]
pub struct Midtrans {
    http: reqwest::Client,
    server_key: String,
    client_key: String,
    snap_url: String,
    api_url: String,
}

impl std::fmt::Debug for Midtrans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Midtrans")
            .field("snap_url", &self.snap_url)
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

/// Why a call to Midtrans did not give an answer Siaran can use.
#[derive(Debug, thiserror::Error)]
pub enum MidtransError {
    /// No answer: connection refused, timeout, TLS failure.
    #[error("Midtrans is unreachable: {0}")]
    Unreachable(String),
    /// Midtrans answered with an error (`error_messages` or `status_message`).
    #[error("Midtrans refused ({status}): {}", messages.join("; "))]
    Refused { status: u16, messages: Vec<String> },
    /// An answer that is not what the protocol promises.
    #[error("unexpected answer from Midtrans: {0}")]
    Unexpected(String),
}

/// Snap create-transaction request (the parts Siaran sends).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapRequest {
    pub transaction_details: TransactionDetails,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub item_details: Vec<ItemDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_details: Option<CustomerDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callbacks: Option<Callbacks>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry: Option<Expiry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransactionDetails {
    pub order_id: String,
    /// Whole rupiah.
    pub gross_amount: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemDetails {
    pub id: String,
    pub price: i64,
    pub quantity: i64,
    /// At most 50 characters.
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustomerDetails {
    pub first_name: String,
    pub email: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Callbacks {
    pub finish: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Expiry {
    /// `yyyy-MM-dd HH:mm:ss Z`.
    pub start_time: String,
    /// `minute`, `hour` or `day`.
    pub unit: String,
    pub duration: i64,
}

impl Expiry {
    /// Expiry `minutes` after `start`.
    #[must_use]
    pub fn minutes_from(start: DateTime<Utc>, minutes: i64) -> Self {
        Self {
            start_time: format_time(start, "%Y-%m-%d %H:%M:%S %z"),
            unit: "minute".to_owned(),
            duration: minutes,
        }
    }
}

/// Snap's answer: the token for Snap.js and the hosted payment page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapToken {
    pub token: String,
    pub redirect_url: String,
}

/// The Core API's status of a transaction. Every value is a string; anything Siaran does not
/// read is ignored, as new fields appear over time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TransactionStatus {
    #[serde(default)]
    pub status_code: String,
    #[serde(default)]
    pub status_message: String,
    #[serde(default)]
    pub order_id: String,
    #[serde(default)]
    pub transaction_id: String,
    #[serde(default)]
    pub transaction_status: String,
    #[serde(default)]
    pub fraud_status: Option<String>,
    #[serde(default)]
    pub gross_amount: String,
    #[serde(default)]
    pub payment_type: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    /// Money returned so far (`refund`, `partial_refund`), e.g. `"5000.00"`.
    #[serde(default)]
    pub refund_amount: Option<String>,
}

/// What a verified Midtrans status means for a donation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Money received.
    Paid,
    /// Card captured but held for fraud review: not paid yet.
    Held,
    /// Waiting for the buyer.
    Waiting,
    Failed,
    Expired,
    Refunded,
    /// Part of the money returned.
    PartlyRefunded,
    /// Nothing to do (`authorize`, or a status this code does not know).
    Ignored,
}

impl TransactionStatus {
    /// What this status means for the order it is about.
    #[must_use]
    pub fn verdict(&self) -> Verdict {
        verdict(&self.transaction_status, self.fraud_status.as_deref())
    }
}

/// Maps Midtrans' `transaction_status` (and `fraud_status` for captures) to a verdict: the one
/// place Midtrans' status vocabulary is read.
#[must_use]
pub fn verdict(transaction_status: &str, fraud_status: Option<&str>) -> Verdict {
    match (transaction_status, fraud_status) {
        ("settlement", _) | ("capture", Some("accept")) => Verdict::Paid,
        ("capture", Some("deny")) => Verdict::Failed,
        ("capture", _) => Verdict::Held,
        ("pending", _) => Verdict::Waiting,
        ("deny" | "cancel" | "failure", _) => Verdict::Failed,
        ("expire", _) => Verdict::Expired,
        ("refund", _) => Verdict::Refunded,
        ("partial_refund", _) => Verdict::PartlyRefunded,
        _ => Verdict::Ignored,
    }
}

/// What the status endpoint said about an order.
#[derive(Debug, Clone)]
pub enum StatusAnswer {
    /// "Transaction doesn't exist": the buyer has not chosen a payment method (yet).
    NotFound,
    Found(Box<TransactionStatus>),
}

impl Midtrans {
    /// The configured merchant, or `None` without a server key.
    pub fn from_config(config: &MidtransConfig) -> anyhow::Result<Option<Self>> {
        let Some(server_key) = config.server_key.clone().filter(|k| !k.trim().is_empty()) else {
            return Ok(None);
        };
        // Mixed-up environments fail every payment with 401; say so at start, without the key.
        let sandbox_key = server_key.starts_with("SB-");
        let sandbox_url = config.snap_url.contains("sandbox") || config.api_url.contains("sandbox");
        if config.is_production && (sandbox_key || sandbox_url) {
            tracing::warn!(
                "MIDTRANS_IS_PRODUCTION is set but the server key or URLs are sandbox ones"
            );
        } else if !config.is_production && !sandbox_key && sandbox_url {
            tracing::warn!(
                "the Midtrans server key looks like a production key but the URLs are the sandbox's"
            );
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("siaran/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Some(Self {
            http,
            server_key,
            client_key: config.client_key.clone().unwrap_or_default(),
            snap_url: config.snap_url.trim_end_matches('/').to_owned(),
            api_url: config.api_url.trim_end_matches('/').to_owned(),
        }))
    }

    /// The public client key Snap.js needs.
    #[must_use]
    pub fn client_key(&self) -> &str {
        &self.client_key
    }

    /// Where the browser loads Snap.js from.
    #[must_use]
    pub fn snap_js_url(&self) -> String {
        format!("{}/snap/snap.js", self.snap_url)
    }

    /// Sends with the server key and reads the whole answer.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, bytes::Bytes), MidtransError> {
        let response = request
            .basic_auth(&self.server_key, Some(""))
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| MidtransError::Unreachable(without_url(e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| MidtransError::Unreachable(without_url(e)))?;
        Ok((status, body))
    }

    /// Asks Snap for a payment token (`POST /snap/v1/transactions`).
    pub async fn create_transaction(
        &self,
        request: &SnapRequest,
    ) -> Result<SnapToken, MidtransError> {
        let (status, body) = self
            .send(
                self.http
                    .post(format!("{}/snap/v1/transactions", self.snap_url))
                    .json(request),
            )
            .await?;
        if !status.is_success() {
            return Err(refused(status.as_u16(), &body));
        }
        serde_json::from_slice(&body).map_err(|e| MidtransError::Unexpected(e.to_string()))
    }

    /// Asks the Core API for the verified status of an order (`GET /v2/{order_id}/status`).
    pub async fn status(&self, order_id: &str) -> Result<StatusAnswer, MidtransError> {
        let url = format!("{}/v2/{}/status", self.api_url, urlencode(order_id));
        let (status, body) = self.send(self.http.get(url)).await?;
        let parsed: Option<TransactionStatus> = serde_json::from_slice(&body).ok();
        // Before a payment method is chosen Midtrans answers body status_code "404", with HTTP
        // 404 or 200 depending on the endpoint's mood.
        if let Some(parsed) = &parsed
            && parsed.status_code == "404"
            && (status.is_success() || status.as_u16() == 404)
        {
            return Ok(StatusAnswer::NotFound);
        }
        match parsed {
            Some(parsed) if status.is_success() && !parsed.transaction_status.is_empty() => {
                Ok(StatusAnswer::Found(Box::new(parsed)))
            }
            // An expired order that never had a method: body 407 without a transaction status.
            Some(parsed) if status.is_success() && parsed.status_code == "407" => {
                Ok(StatusAnswer::Found(Box::new(TransactionStatus {
                    transaction_status: "expire".to_owned(),
                    ..parsed
                })))
            }
            _ if !status.is_success() => Err(refused(status.as_u16(), &body)),
            _ => Err(MidtransError::Unexpected(format!(
                "status answer without a transaction status (HTTP {status})"
            ))),
        }
    }

    /// Whether a notification's `signature_key` is the one Midtrans computes with our server key,
    /// compared in constant time.
    #[must_use]
    pub fn verify_signature(
        &self,
        order_id: &str,
        status_code: &str,
        gross_amount: &str,
        signature_key: &str,
    ) -> bool {
        let expected = signature(order_id, status_code, gross_amount, &self.server_key);
        let given = signature_key.trim().to_ascii_lowercase();
        expected.as_bytes().ct_eq(given.as_bytes()).into()
    }
}

/// `hex(SHA512(order_id + status_code + gross_amount + server_key))`, over the strings as sent.
#[must_use]
pub fn signature(
    order_id: &str,
    status_code: &str,
    gross_amount: &str,
    server_key: &str,
) -> String {
    let mut hasher = Sha512::new();
    hasher.update(order_id.as_bytes());
    hasher.update(status_code.as_bytes());
    hasher.update(gross_amount.as_bytes());
    hasher.update(server_key.as_bytes());
    hex::encode(hasher.finalize())
}

/// Formats a time in WIB as Midtrans writes it (`%Y-%m-%d %H:%M:%S`).
#[must_use]
pub fn format_time(at: DateTime<Utc>, format: &str) -> String {
    match FixedOffset::east_opt(WIB_SECONDS) {
        Some(wib) => at.with_timezone(&wib).format(format).to_string(),
        None => at.format(format).to_string(),
    }
}

fn refused(status: u16, body: &[u8]) -> MidtransError {
    #[derive(Deserialize)]
    struct ErrorBody {
        #[serde(default)]
        error_messages: Vec<String>,
        #[serde(default)]
        status_message: Option<String>,
    }
    let messages = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) if !b.error_messages.is_empty() => b.error_messages,
        Ok(ErrorBody {
            status_message: Some(m),
            ..
        }) => vec![m],
        _ => vec![String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()],
    };
    MidtransError::Refused { status, messages }
}

/// reqwest errors print the URL; ours carry no secrets, but keep logs short and uniform.
#[allow(clippy::needless_pass_by_value)] // used as `map_err(|e| without_url(e))` on owned errors
fn without_url(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    format!("{kind}: {}", e.without_url())
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_follow_midtrans_statuses() {
        assert_eq!(verdict("settlement", None), Verdict::Paid);
        assert_eq!(verdict("capture", Some("accept")), Verdict::Paid);
        assert_eq!(verdict("capture", Some("challenge")), Verdict::Held);
        assert_eq!(verdict("capture", None), Verdict::Held);
        assert_eq!(verdict("capture", Some("deny")), Verdict::Failed);
        assert_eq!(verdict("pending", None), Verdict::Waiting);
        for failed in ["deny", "cancel", "failure"] {
            assert_eq!(verdict(failed, None), Verdict::Failed, "{failed}");
        }
        assert_eq!(verdict("expire", None), Verdict::Expired);
        assert_eq!(verdict("refund", None), Verdict::Refunded);
        assert_eq!(verdict("partial_refund", None), Verdict::PartlyRefunded);
        assert_eq!(verdict("authorize", None), Verdict::Ignored);
        assert_eq!(verdict("something_new", None), Verdict::Ignored);
    }

    #[test]
    fn signature_is_sha512_of_the_concatenation() {
        // Midtrans' documented example: order "Postman-1578568851", status 200, "10000.00".
        let sig = signature(
            "Postman-1578568851",
            "200",
            "10000.00",
            "VT-server-HJMpl9HLr_ntOKt5mRONdmKj",
        );
        assert_eq!(sig.len(), 128);
        let mut hasher = Sha512::new();
        hasher.update(b"Postman-157856885120010000.00VT-server-HJMpl9HLr_ntOKt5mRONdmKj");
        assert_eq!(sig, hex::encode(hasher.finalize()));
    }

    #[test]
    fn expiry_is_written_in_wib() {
        let at = DateTime::parse_from_rfc3339("2024-01-31T17:30:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let expiry = Expiry::minutes_from(at, 60);
        assert_eq!(expiry.start_time, "2024-02-01 00:30:00 +0700");
    }
}
