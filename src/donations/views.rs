//! Donations joined with their stream and donor, turned into the views the API shows.

use super::model::{
    CURRENCY, Donation, DonationView, Donor, PublicDonation, public_donor_name, whole_rupiah,
};
use crate::users::model::PublicUser;

/// A donation with what its views need from `streams` and `users` (read by
/// [`db::row`](super::db::row) and the history queries).
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub donation: Donation,
    pub stream_title: String,
    pub streamer_id: uuid::Uuid,
    pub streamer_username: String,
    pub donor_username: Option<String>,
    pub donor_display_name: Option<String>,
}

impl Row {
    /// The donor's name as others may see it.
    pub(super) fn public_name(&self) -> String {
        public_donor_name(
            self.donor_display_name.as_deref(),
            self.donation.is_anonymous,
        )
    }

    /// The full view; `reveal_donor` shows an anonymous donation's donor (to the donor).
    pub(super) fn view(&self, reveal_donor: bool) -> DonationView {
        let d = &self.donation;
        let donor = match (d.donor_id, &self.donor_username, &self.donor_display_name) {
            (Some(id), Some(username), Some(display_name)) if reveal_donor || !d.is_anonymous => {
                Some(Donor {
                    id,
                    username: username.clone(),
                    display_name: display_name.clone(),
                })
            }
            _ => None,
        };
        DonationView {
            id: d.id,
            transaction_id: d.transaction_id,
            stream_id: d.stream_id,
            stream_title: self.stream_title.clone(),
            streamer: PublicUser {
                id: self.streamer_id,
                username: self.streamer_username.clone(),
            },
            amount: d.rupiah(),
            currency: CURRENCY,
            message: d.message.clone(),
            payment_method: d.payment_method(),
            status: d.status(),
            anonymous: d.is_anonymous,
            donor_name: match &donor {
                Some(donor) => donor.display_name.clone(),
                None => self.public_name(),
            },
            donor,
            reference_code: d.reference_code.clone(),
            expires_at: d.expires_at,
            amount_mismatch: d.amount_mismatch,
            refunded_amount: whole_rupiah(d.refunded_amount),
            status_reason: d.status_reason.clone(),
            created_at: d.created_at,
            completed_at: d.completed_at,
            updated_at: d.updated_at,
        }
    }

    pub(super) fn public(&self) -> PublicDonation {
        let d = &self.donation;
        let donor = match (d.donor_id, &self.donor_username, d.is_anonymous) {
            (Some(id), Some(username), false) => Some(PublicUser {
                id,
                username: username.clone(),
            }),
            _ => None,
        };
        PublicDonation {
            id: d.id,
            stream_id: d.stream_id,
            status: d.status(),
            payment_method: d.payment_method(),
            amount: d.rupiah(),
            currency: CURRENCY,
            message: d.message.clone(),
            donor,
            donor_name: self.public_name(),
            created_at: d.created_at,
            completed_at: d.completed_at,
        }
    }
}

/// One donation's view (re-read with its stream and donor).
pub(super) async fn one(
    db: &sqlx::PgPool,
    donation: &Donation,
    reveal_donor: bool,
) -> sqlx::Result<DonationView> {
    Ok(super::db::row(db, donation.id).await?.view(reveal_donor))
}
