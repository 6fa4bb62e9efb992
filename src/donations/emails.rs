//! The donation emails: "you received" to the streamer, a receipt to the donor, and word to
//! the donor when a bank transfer is rejected or expires. Each has a plain-text and an HTML body.

use super::jobs::Parties;
use super::model::{Donation, DonationStatus};
use crate::mail::{Email, escape};
use crate::payments::rupiah;
use crate::services::Services;

fn method_name(donation: &Donation) -> &'static str {
    if donation.is_bank_transfer() {
        "Bank transfer"
    } else {
        "Midtrans"
    }
}

fn quoted_message(donation: &Donation) -> (String, String) {
    if donation.message.is_empty() {
        (String::new(), String::new())
    } else {
        (
            format!("\nMessage: \"{}\"\n", donation.message),
            format!(
                r#"<blockquote style="border-left:3px solid #ddd;margin:12px 0;padding-left:12px">{}</blockquote>"#,
                escape(&donation.message)
            ),
        )
    }
}

pub(super) fn streamer_received(
    state: &Services,
    donation: &Donation,
    parties: &Parties,
    donor_name: &str,
) -> Email {
    let amount = rupiah(donation.rupiah());
    let link = format!("{}/dashboard/donations", state.config.public_base());
    let (message_text, message_html) = quoted_message(donation);
    Email {
        to_name: parties.streamer_name.clone(),
        to_address: parties.streamer_email.clone(),
        subject: format!("You received {amount} from {donor_name}"),
        text: format!(
            "Hi {streamer},\n\n{donor_name} donated {amount} on \"{title}\".\n{message_text}\n\
             Payment: {method}\nDonation: {id}\n\nAll your donations: {link}\n",
            streamer = parties.streamer_name,
            title = parties.stream_title,
            method = method_name(donation),
            id = donation.id,
        ),
        html: format!(
            "<h2>You received {amount}</h2><p>Hi {streamer},</p><p><b>{donor}</b> donated <b>{amount}</b> on \
             <i>{title}</i>.</p>{message_html}<p style=\"color:#555\">Payment: {method}<br>Donation: {id}</p>\
             <p><a href=\"{link}\">See all your donations</a></p>",
            streamer = escape(&parties.streamer_name),
            donor = escape(donor_name),
            title = escape(&parties.stream_title),
            method = method_name(donation),
            id = donation.id,
            link = escape(&link),
        ),
        message_id: None,
    }
}

pub(super) fn donor_receipt(
    state: &Services,
    donation: &Donation,
    parties: &Parties,
    donor_name: &str,
    donor_email: &str,
) -> Email {
    let amount = rupiah(donation.rupiah());
    let paid_at = donation
        .completed_at
        .unwrap_or(donation.updated_at)
        .format("%Y-%m-%d %H:%M UTC");
    let link = format!("{}/dashboard/donations/sent", state.config.public_base());
    let (message_text, message_html) = quoted_message(donation);
    Email {
        to_name: donor_name.to_owned(),
        to_address: donor_email.to_owned(),
        subject: format!(
            "Receipt: your donation of {amount} to {}",
            parties.streamer_name
        ),
        text: format!(
            "Hi {donor_name},\n\nThank you! Your donation was received.\n\n\
             Amount:    {amount}\nTo:        {streamer} (\"{title}\")\nPaid:      {paid_at}\n\
             Payment:   {method}\nReceipt:   {order}\n{message_text}\nYour donations: {link}\n",
            streamer = parties.streamer_name,
            title = parties.stream_title,
            method = method_name(donation),
            order = donation.transaction_id,
        ),
        html: format!(
            "<h2>Thank you!</h2><p>Hi {donor},</p><p>Your donation was received.</p>\
             <table style=\"border-collapse:collapse\">\
             <tr><td style=\"padding:2px 12px 2px 0\">Amount</td><td><b>{amount}</b></td></tr>\
             <tr><td style=\"padding:2px 12px 2px 0\">To</td><td>{streamer} ({title})</td></tr>\
             <tr><td style=\"padding:2px 12px 2px 0\">Paid</td><td>{paid_at}</td></tr>\
             <tr><td style=\"padding:2px 12px 2px 0\">Payment</td><td>{method}</td></tr>\
             <tr><td style=\"padding:2px 12px 2px 0\">Receipt</td><td>{order}</td></tr></table>\
             {message_html}<p><a href=\"{link}\">Your donations</a></p>",
            donor = escape(donor_name),
            streamer = escape(&parties.streamer_name),
            title = escape(&parties.stream_title),
            method = method_name(donation),
            order = donation.transaction_id,
            link = escape(&link),
        ),
        message_id: None,
    }
}

/// To the donor of a bank transfer that was rejected or expired: what happened, and what to do
/// if the money was sent anyway.
pub(super) fn donor_transfer_ended(
    state: &Services,
    donation: &Donation,
    parties: &Parties,
    donor_name: &str,
    donor_email: &str,
) -> Email {
    let amount = rupiah(donation.rupiah());
    let code = donation.reference_code.as_deref().unwrap_or("-");
    let link = format!("{}/dashboard/donations/sent", state.config.public_base());
    let (subject, headline, what, reason) = if donation.status() == DonationStatus::Rejected {
        let reason = if donation.status_reason.is_empty() {
            "No reason was given."
        } else {
            donation.status_reason.as_str()
        };
        (
            format!("Your bank transfer of {amount} was not confirmed"),
            "Transfer not confirmed",
            format!(
                "{} could not confirm your bank transfer",
                parties.streamer_name
            ),
            Some(reason),
        )
    } else {
        (
            format!("Your bank transfer donation of {amount} expired"),
            "Donation expired",
            format!(
                "{} did not confirm your bank transfer before it expired",
                parties.streamer_name
            ),
            None,
        )
    };
    let reason_text = reason.map_or_else(String::new, |r| format!("\nReason: {r}\n"));
    let reason_html = reason.map_or_else(String::new, |r| format!("<p>Reason: {}</p>", escape(r)));
    Email {
        to_name: donor_name.to_owned(),
        to_address: donor_email.to_owned(),
        subject,
        text: format!(
            "Hi {donor_name},\n\n{what}: {amount} (reference {code}) for \"{title}\".\n{reason_text}\n\
             If you did transfer the money, contact the streamer with your transfer receipt.\n\
             Your donations: {link}\n",
            title = parties.stream_title,
        ),
        html: format!(
            "<h2>{headline}</h2><p>Hi {donor},</p><p>{what}: <b>{amount}</b> (reference \
             <code>{code}</code>) for <i>{title}</i>.</p>{reason_html}<p>If you did transfer the \
             money, contact the streamer with your transfer receipt.</p>\
             <p><a href=\"{link}\">Your donations</a></p>",
            donor = escape(donor_name),
            what = escape(&what),
            code = escape(code),
            title = escape(&parties.stream_title),
            link = escape(&link),
        ),
        message_id: None,
    }
}
