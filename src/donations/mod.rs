//! Donations: donating to a live stream (Midtrans Snap or a bank transfer the streamer
//! confirms), Midtrans notifications, the status state machine and its exactly-once effects
//! (the live `donation.received` alert and the emails), history, and the streamer's payout
//! account and blocked words.
//!
//! Money flows through one path ([`service`]): every status change locks the row, checks the
//! state machine, and writes its effects to an outbox in the same transaction; jobs deliver them.

pub mod create;
pub(crate) mod db;
mod emails;
pub mod history;
pub mod jobs;
pub mod manual;
pub mod model;
pub mod service;
pub mod settings;
mod views;
pub mod webhook;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create::create_donation, history::public_list))
        .routes(routes!(create::get_donation))
        .routes(routes!(manual::confirm))
        .routes(routes!(manual::reject))
        .routes(routes!(history::sent))
        .routes(routes!(history::received))
        .routes(routes!(webhook::notification))
        .routes(routes!(settings::get_payout, settings::update_payout))
        .routes(routes!(
            settings::get_blocked_words,
            settings::replace_blocked_words
        ))
}
