//! Payments: the Midtrans client Siaran uses. Development and tests point it at the fake
//! Midtrans, a program of its own (`fake-midtrans/`) that Siaran does not contain.

pub mod midtrans;

pub use midtrans::{Midtrans, MidtransError, StatusAnswer};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::text_column;

/// How the donor pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// Online through Midtrans Snap (cards, virtual accounts, e-wallets, QRIS).
    Midtrans,
    /// A manual transfer to the streamer's account, confirmed by the streamer.
    BankTransfer,
}

impl PaymentMethod {
    pub const ALL: [Self; 2] = [Self::Midtrans, Self::BankTransfer];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Midtrans => "midtrans",
            Self::BankTransfer => "bank_transfer",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|method| method.as_str() == s)
    }
}

text_column!(PaymentMethod, "payment method");

/// An amount in whole rupiah as Indonesians write it: `Rp 1.250.000`.
#[must_use]
pub fn rupiah(amount: i64) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_written_the_indonesian_way() {
        assert_eq!(rupiah(10_000), "Rp 10.000");
        assert_eq!(rupiah(1_250_000), "Rp 1.250.000");
        assert_eq!(rupiah(500), "Rp 500");
    }
}
