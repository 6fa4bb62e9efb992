//! Donations as stored and as shown: the status state machine, the row, the views, and the
//! values parsed at the edge (amount, message, reference code).

use chrono::{DateTime, Utc};
use rand::Rng;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::config::DonationsConfig;
use crate::error::FieldError;

/// Shown instead of the donor's name when they chose to stay anonymous.
pub const ANONYMOUS: &str = "Anonymous";

/// The donor's name as the stream and the streamer see it: their display name, or
/// [`ANONYMOUS`] for an anonymous donation or a deleted account.
#[must_use]
pub fn public_donor_name(display_name: Option<&str>, anonymous: bool) -> String {
    match display_name {
        Some(name) if !anonymous => name.to_owned(),
        _ => ANONYMOUS.to_owned(),
    }
}
pub const CURRENCY: &str = "IDR";
const MESSAGE_MAX_CHARS: usize = 255;

/// Where a donation is in its life. Moves only forward:
///
/// ```text
/// pending ──▶ completed ──▶ partially_refunded ──▶ refunded
///    │            ▲  └──────────────────────────────▲
///    ├──────▶ expired (a late transfer, or a payment Midtrans settled after our expiry)
///    ├──────▶ failed
///    └──────▶ rejected
/// ```
///
/// Every state but `pending` is settled: none of them ever goes back to an earlier one. Only
/// `completed` moves on when Midtrans returns money (part of it, then the rest), and `expired`
/// only to `completed`, when money arrived after all (the streamer records a late bank
/// transfer; Midtrans verifies a settlement). Who may make each move is the caller's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DonationStatus {
    Pending,
    Completed,
    Failed,
    Expired,
    Rejected,
    Refunded,
    /// Midtrans returned part of the money (`refunded_amount` says how much).
    PartiallyRefunded,
}

impl DonationStatus {
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Completed,
        Self::Failed,
        Self::Expired,
        Self::Rejected,
        Self::Refunded,
        Self::PartiallyRefunded,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::Rejected => "rejected",
            Self::Refunded => "refunded",
            Self::PartiallyRefunded => "partially_refunded",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Whether the state machine allows `self → next`.
    #[must_use]
    pub fn can_become(self, next: Self) -> bool {
        matches!(
            (self, next),
            (
                Self::Pending,
                Self::Completed | Self::Failed | Self::Expired | Self::Rejected
            ) | (Self::Expired, Self::Completed)
                | (Self::Completed, Self::Refunded | Self::PartiallyRefunded)
                | (Self::PartiallyRefunded, Self::Refunded)
        )
    }
}

pub use crate::payments::PaymentMethod;

/// What a donation's arrival in a status must cause, stored as a `donation_outbox` row and
/// delivered once by a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The `donation.received` alert on the stream.
    EventReceived,
    /// Email to the streamer: a donation arrived.
    EmailStreamerReceived,
    /// Email to the donor: their receipt.
    EmailDonorReceipt,
    /// Email to the donor: the streamer rejected their transfer.
    EmailDonorRejected,
    /// Email to the donor: their transfer's time ran out.
    EmailDonorExpired,
}

impl Effect {
    pub const ALL: [Self; 5] = [
        Self::EventReceived,
        Self::EmailStreamerReceived,
        Self::EmailDonorReceipt,
        Self::EmailDonorRejected,
        Self::EmailDonorExpired,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EventReceived => "event_received",
            Self::EmailStreamerReceived => "email_streamer_received",
            Self::EmailDonorReceipt => "email_donor_receipt",
            Self::EmailDonorRejected => "email_donor_rejected",
            Self::EmailDonorExpired => "email_donor_expired",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|effect| effect.as_str() == s)
    }
}

use crate::db::text_column;

text_column!(DonationStatus, "donation status");
text_column!(Effect, "outbox effect");

/// A row of `donations`.
#[derive(Debug, Clone, FromRow)]
pub struct Donation {
    pub id: Uuid,
    /// Our order id at Midtrans.
    pub transaction_id: Uuid,
    pub stream_id: Uuid,
    pub donor_id: Option<Uuid>,
    pub amount: Decimal,
    pub message: String,
    pub payment_method: PaymentMethod,
    pub status: DonationStatus,
    pub is_anonymous: bool,
    pub reference_code: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub amount_mismatch: bool,
    pub provider_status: Option<String>,
    pub payment_type: Option<String>,
    pub fraud_status: Option<String>,
    pub snap_token: Option<String>,
    pub snap_redirect_url: Option<String>,
    pub status_reason: String,
    pub completed_at: Option<DateTime<Utc>>,
    pub checked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Bank transfers: the payout account the donor was told to pay into, when they were told.
    pub payout_bank_name: Option<String>,
    pub payout_account_number: Option<String>,
    pub payout_account_holder: Option<String>,
    pub refunded_amount: Decimal,
    pub currency_mismatch: bool,
}

impl Donation {
    #[must_use]
    pub fn status(&self) -> DonationStatus {
        self.status
    }

    #[must_use]
    pub fn is_bank_transfer(&self) -> bool {
        self.payment_method == PaymentMethod::BankTransfer
    }

    #[must_use]
    pub fn payment_method(&self) -> PaymentMethod {
        self.payment_method
    }

    /// Whole rupiah (amounts are stored with two decimals, always `.00` for IDR).
    #[must_use]
    pub fn rupiah(&self) -> i64 {
        whole_rupiah(self.amount)
    }

    /// A pending donation whose time to pay has run out.
    #[must_use]
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.status() == DonationStatus::Pending && self.expires_at.is_some_and(|at| at <= now)
    }
}

#[must_use]
pub fn whole_rupiah(amount: Decimal) -> i64 {
    amount.trunc().to_i64().unwrap_or(i64::MAX)
}

/// The donor as the streamer and the donor see them (never for anonymous donations).
#[derive(Debug, Clone, Serialize, ToSchema, FromRow)]
pub struct Donor {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
}

/// A donation as its donor and its streamer see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DonationView {
    pub id: Uuid,
    /// The order id at Midtrans; quote it to support.
    pub transaction_id: Uuid,
    pub stream_id: Uuid,
    pub stream_title: String,
    /// Whose stream it is (the donor's history names them).
    pub streamer: crate::users::model::PublicUser,
    /// Whole rupiah.
    #[schema(example = 50000)]
    pub amount: i64,
    #[schema(example = "IDR")]
    pub currency: &'static str,
    pub message: String,
    pub payment_method: PaymentMethod,
    pub status: DonationStatus,
    pub anonymous: bool,
    /// Absent for anonymous donations (except in the donor's own history).
    pub donor: Option<Donor>,
    /// The donor's display name, or "Anonymous".
    pub donor_name: String,
    /// Bank transfers: the code the donor writes in the transfer note.
    pub reference_code: Option<String>,
    /// When a pending donation expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Midtrans reported a different amount: held for review, never completed automatically.
    pub amount_mismatch: bool,
    /// Whole rupiah Midtrans returned (`partially_refunded`, `refunded`); 0 otherwise.
    #[schema(example = 0)]
    pub refunded_amount: i64,
    /// The streamer's reason for a rejection, or what ended the donation.
    pub status_reason: String,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// A completed donation as everyone sees it on the stream.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublicDonation {
    pub id: Uuid,
    pub stream_id: Uuid,
    /// Always `completed` here.
    pub status: DonationStatus,
    pub payment_method: PaymentMethod,
    #[schema(example = 50000)]
    pub amount: i64,
    #[schema(example = "IDR")]
    pub currency: &'static str,
    pub message: String,
    /// Absent for anonymous donations.
    pub donor: Option<crate::users::model::PublicUser>,
    /// The donor's display name, or "Anonymous".
    pub donor_name: String,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// A donation request that passed every check: its amount and message are proven valid.
#[derive(Debug)]
pub(crate) struct NewDonation {
    pub stream_id: Uuid,
    pub donor_id: Uuid,
    pub amount: Amount,
    pub message: Message,
    pub anonymous: bool,
}

/// A donation amount in whole rupiah that is within the configured limits. Only
/// [`Amount::parse`] makes one, so code past the request handler holds proof that the amount
/// was checked and never checks again (zero-to-production's `domain` types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(i64);

impl Amount {
    /// Checks `rupiah` against `SIARAN_DONATION_MIN` / `SIARAN_DONATION_MAX`.
    pub fn parse(rupiah: i64, limits: &DonationsConfig) -> Result<Self, FieldError> {
        parse_amount(rupiah, limits).map(Self)
    }

    /// Whole rupiah.
    #[must_use]
    pub fn rupiah(self) -> i64 {
        self.0
    }

    /// As the `numeric(12, 2)` column stores it.
    #[must_use]
    pub fn to_decimal(self) -> Decimal {
        Decimal::from(self.0)
    }
}

impl std::fmt::Display for Amount {
    /// `Rp 10.000`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::payments::rupiah(self.0))
    }
}

/// A donation message as it may be shown and read aloud: invisible characters removed,
/// trimmed, at most 255 characters, no control characters but newlines, none of the
/// streamer's blocked words. Only [`Message::parse`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message(String);

impl Message {
    pub fn parse(raw: &str, blocked: &[String]) -> Result<Self, FieldError> {
        parse_message(raw, blocked).map(Self)
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks an amount against the configured limits.
fn parse_amount(amount: i64, limits: &DonationsConfig) -> Result<i64, FieldError> {
    if amount < limits.donation_min {
        return Err(FieldError::new(
            "amount",
            "too_small",
            format!(
                "The smallest donation is {}.",
                crate::payments::rupiah(limits.donation_min)
            ),
        ));
    }
    if amount > limits.donation_max {
        return Err(FieldError::new(
            "amount",
            "too_large",
            format!(
                "The largest donation is {}.",
                crate::payments::rupiah(limits.donation_max)
            ),
        ));
    }
    Ok(amount)
}

/// Checks a donation message (see [`Message`]).
fn parse_message(raw: &str, blocked: &[String]) -> Result<String, FieldError> {
    // Invisible characters are dropped before the checks, so none hides a blocked word.
    let stripped = crate::text::strip_invisible(raw);
    let message = stripped.trim();
    if message.chars().count() > MESSAGE_MAX_CHARS {
        return Err(FieldError::new(
            "message",
            "too_long",
            format!("Messages can be at most {MESSAGE_MAX_CHARS} characters."),
        ));
    }
    if message.chars().any(|c| c.is_control() && c != '\n') {
        return Err(FieldError::new(
            "message",
            "invalid_characters",
            "Messages cannot contain control characters.",
        ));
    }
    if let Some(word) = find_blocked(message, blocked) {
        return Err(FieldError::new(
            "message",
            "blocked_word",
            format!("The streamer does not allow \"{word}\" in messages."),
        ));
    }
    Ok(message.to_owned())
}

/// The first blocked word or phrase that appears in `text` as a whole word (case-insensitive),
/// so that blocking "ass" does not refuse "class".
#[must_use]
pub fn find_blocked<'a>(text: &str, blocked: &'a [String]) -> Option<&'a str> {
    let haystack = text.to_lowercase();
    blocked.iter().map(String::as_str).find(|word| {
        !word.is_empty()
            && haystack.match_indices(*word).any(|(start, found)| {
                let before = haystack[..start].chars().next_back();
                let after = haystack[start + found.len()..].chars().next();
                !before.is_some_and(char::is_alphanumeric)
                    && !after.is_some_and(char::is_alphanumeric)
            })
    })
}

/// Characters of reference codes: no 0/O or 1/I/L to misread in a banking app.
const REFERENCE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// A fresh reference code, `SRN-` and six characters (31⁶ ≈ 887 million codes; uniqueness is
/// enforced by the database and a collision is retried).
#[must_use]
pub fn new_reference_code() -> String {
    let mut rng = rand::rng();
    let tail: String = (0..6)
        .map(|_| char::from(REFERENCE_ALPHABET[rng.random_range(0..REFERENCE_ALPHABET.len())]))
        .collect();
    format!("SRN-{tail}")
}

/// Where bank transfers to this streamer go. Shown to donors who choose bank transfer.
#[derive(Debug, Clone, Serialize, ToSchema, FromRow)]
pub struct PayoutAccount {
    #[schema(example = "BCA")]
    pub bank_name: String,
    #[schema(example = "1234567890")]
    pub account_number: String,
    #[schema(example = "Budi Santoso")]
    pub account_holder: String,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_only_move_forward() {
        use DonationStatus::*;
        for to in [Completed, Failed, Expired, Rejected] {
            assert!(Pending.can_become(to), "pending → {to:?}");
        }
        assert!(Completed.can_become(Refunded));
        assert!(Completed.can_become(PartiallyRefunded));
        assert!(PartiallyRefunded.can_become(Refunded));
        assert!(Expired.can_become(Completed), "money that arrived late");
        for from in [
            Completed,
            Failed,
            Expired,
            Rejected,
            Refunded,
            PartiallyRefunded,
        ] {
            assert!(!from.can_become(Pending), "{from:?} → pending");
            for to in [Failed, Expired, Rejected] {
                assert!(!from.can_become(to), "{from:?} → {to:?}");
            }
        }
        assert!(!Refunded.can_become(Completed));
        assert!(!PartiallyRefunded.can_become(Completed));
        assert!(!Refunded.can_become(PartiallyRefunded));
        for from in [Failed, Rejected, Refunded, PartiallyRefunded] {
            assert!(!from.can_become(Completed), "{from:?} → completed");
        }
        assert!(!Pending.can_become(Refunded));
        assert!(!Completed.can_become(Completed));
    }

    #[test]
    fn blocked_words_match_whole_words_in_any_case() {
        let blocked = vec!["judi".to_owned(), "slot gacor".to_owned()];
        assert_eq!(find_blocked("Ayo main JUDI!", &blocked), Some("judi"));
        assert_eq!(
            find_blocked("info Slot Gacor hari ini", &blocked),
            Some("slot gacor")
        );
        assert_eq!(find_blocked("perjudian itu buruk", &blocked), None);
        assert_eq!(find_blocked("semangat!", &blocked), None);
        assert_eq!(find_blocked("semangat!", &[]), None);
    }

    #[test]
    fn messages_are_limited() {
        assert_eq!(parse_message("  halo  ", &[]).expect("valid"), "halo");
        assert_eq!(
            parse_message(&"x".repeat(256), &[]).unwrap_err().code,
            "too_long"
        );
        assert!(
            parse_message(&"é".repeat(255), &[]).is_ok(),
            "characters, not bytes"
        );
        assert_eq!(
            parse_message("a\u{7}b", &[]).unwrap_err().code,
            "invalid_characters"
        );
    }

    #[test]
    fn reference_codes_are_short_and_unambiguous() {
        let code = new_reference_code();
        assert_eq!(code.len(), 10);
        assert!(code.starts_with("SRN-"));
        assert!(!code[4..].contains(['0', 'O', '1', 'I', 'L']), "{code}");
    }

    #[test]
    fn an_amount_is_made_only_within_the_limits() {
        let config = crate::config::Config::from_args(["siaran"]).expect("defaults");
        let limits = &config.donations;
        let smallest = Amount::parse(limits.donation_min, limits).expect("the minimum is allowed");
        assert_eq!(smallest.rupiah(), limits.donation_min);
        assert_eq!(smallest.to_decimal(), Decimal::from(limits.donation_min));
        assert!(Amount::parse(limits.donation_max, limits).is_ok());
        let codes = [limits.donation_min - 1, limits.donation_max + 1, 0, -5]
            .map(|rupiah| Amount::parse(rupiah, limits).unwrap_err().code);
        assert_eq!(codes, ["too_small", "too_large", "too_small", "too_small"]);
        assert_eq!(Amount(1_250_000).to_string(), "Rp 1.250.000");
    }

    #[test]
    fn a_message_is_what_may_be_shown() {
        let message = Message::parse("  Semangat\u{200b} terus!  ", &[]).expect("valid");
        assert_eq!(message.as_str(), "Semangat terus!");
        let blocked = ["bodoh".to_owned()];
        assert_eq!(
            Message::parse("dasar BODOH", &blocked).unwrap_err().code,
            "blocked_word"
        );
    }
}
