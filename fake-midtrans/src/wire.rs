//! What the fake reads and writes on the wire, written from Midtrans' documentation rather than
//! shared with Siaran's client: the Snap request body, the notification signature, Midtrans'
//! time format, and the page's rupiah and HTML escaping.

use chrono::{DateTime, FixedOffset, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha512};

/// Western Indonesia Time, the zone of every Midtrans timestamp.
const WIB_SECONDS: i32 = 7 * 3600;

/// The parts of a Snap `POST /snap/v1/transactions` body the fake keeps (after `validate`).
#[derive(Debug, Deserialize)]
pub(crate) struct SnapRequest {
    pub transaction_details: TransactionDetails,
    #[serde(default)]
    pub item_details: Vec<ItemDetails>,
    pub customer_details: Option<CustomerDetails>,
    pub callbacks: Option<Callbacks>,
    pub expiry: Option<Expiry>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TransactionDetails {
    pub order_id: String,
    pub gross_amount: i64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ItemDetails {
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CustomerDetails {
    #[serde(default)]
    pub first_name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Callbacks {
    pub finish: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Expiry {
    /// `yyyy-MM-dd HH:mm:ss Z`.
    pub start_time: String,
    /// `minute`, `hour` or `day`.
    pub unit: String,
    pub duration: i64,
}

/// `signature_key` of a notification or status response:
/// SHA-512 hex of `order_id + status_code + gross_amount + server_key`.
pub(crate) fn signature(
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

/// `at` in WIB, as Midtrans writes times.
pub(crate) fn format_time(at: DateTime<Utc>, format: &str) -> String {
    match FixedOffset::east_opt(WIB_SECONDS) {
        Some(wib) => at.with_timezone(&wib).format(format).to_string(),
        None => at.format(format).to_string(),
    }
}

/// `Rp 10.000`.
pub(crate) fn rupiah(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(c);
    }
    format!("Rp {}{grouped}", if amount < 0 { "-" } else { "" })
}

/// Text made safe for HTML element content and quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_sha512_of_the_four_fields_in_order() {
        // SHA-512 of "ORDER-1" "200" "10000.00" "key", computed independently with sha512sum.
        let expected = "40be90c770dcb4f7b22f8a09457a26ac52c3ad982d4dd22c4d0ed31fd1b1dde77451845515f4dc47e80758e1c6b33cf4ee9edb7aa0fe50b3d43c5ff45a5316f7";
        assert_eq!(signature("ORDER-1", "200", "10000.00", "key"), expected);
    }

    #[test]
    fn rupiah_groups_thousands() {
        assert_eq!(rupiah(10_000), "Rp 10.000");
        assert_eq!(rupiah(1_234_567), "Rp 1.234.567");
        assert_eq!(rupiah(500), "Rp 500");
    }

    #[test]
    fn escape_covers_html_specials() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
