//! A streamer's donation settings: the bank account bank transfers go to, and the words they do
//! not want in donation messages.

use std::collections::BTreeSet;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::db;
use super::model::PayoutAccount;
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, ErrorCode, FieldError, Problem};
use crate::http::extract::Json;
use crate::state::AppState;

const MAX_BLOCKED_WORDS: usize = 200;
const MAX_WORD_CHARS: usize = 50;

/// Changes to the payout account. The first time, all three fields are required.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePayout {
    pub bank_name: Option<String>,
    /// Digits; spaces and dashes are ignored.
    pub account_number: Option<String>,
    pub account_holder: Option<String>,
}

fn parse_text(field: &'static str, raw: &str, what: &str) -> Result<String, FieldError> {
    let value = raw.trim();
    let len = value.chars().count();
    if len < 2 {
        return Err(FieldError::new(
            field,
            "too_short",
            format!("Enter the {what}."),
        ));
    }
    if len > 100 {
        return Err(FieldError::new(
            field,
            "too_long",
            format!("The {what} can be at most 100 characters."),
        ));
    }
    if value.chars().any(char::is_control) || crate::text::find_invisible(value).is_some() {
        return Err(FieldError::new(
            field,
            "invalid_characters",
            format!("The {what} cannot contain control or invisible formatting characters."),
        ));
    }
    Ok(value.to_owned())
}

fn parse_account_number(raw: &str) -> Result<String, FieldError> {
    let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(FieldError::new(
            "account_number",
            "invalid",
            "Account numbers contain only digits.",
        ));
    }
    if !(5..=34).contains(&digits.len()) {
        return Err(FieldError::new(
            "account_number",
            "invalid_length",
            "Account numbers have 5 to 34 digits.",
        ));
    }
    Ok(digits)
}

/// The signed-in user's payout account.
#[utoipa::path(get, path = "/api/users/me/payout", tag = "donations", security(("bearer" = [])), responses(
    (status = 200, description = "The payout account", body = PayoutAccount),
    (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "`payout_details_missing`: none set yet", body = Problem, content_type = "application/problem+json"),
))]
pub(super) async fn get_payout(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> AppResult<Json<PayoutAccount>> {
    db::payout_account(&state.db, user.id)
        .await?
        .map(Json)
        .ok_or_else(missing_payout)
}

fn missing_payout() -> AppError {
    AppError::NotFound {
        code: ErrorCode::PayoutDetailsMissing,
        detail: "No bank account for transfers has been set yet.".into(),
    }
}

/// Sets or changes the bank account donors transfer to.
#[utoipa::path(patch, path = "/api/users/me/payout", tag = "donations", security(("bearer" = [])),
    request_body = UpdatePayout,
    responses(
        (status = 200, description = "The payout account", body = PayoutAccount),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid or missing fields", body = Problem, content_type = "application/problem+json"),
))]
pub(super) async fn update_payout(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Json(body): Json<UpdatePayout>,
) -> AppResult<Json<PayoutAccount>> {
    let existing = db::payout_account(&state.db, user.id).await?;
    let mut errors = Vec::new();
    let mut field = |name: &'static str,
                     raw: Option<&str>,
                     current: Option<&str>,
                     parse: &dyn Fn(&str) -> Result<String, FieldError>| {
        match (raw, current) {
            (Some(raw), _) => parse(raw).map_err(|e| errors.push(e)).ok(),
            (None, Some(current)) => Some(current.to_owned()),
            (None, None) => {
                errors.push(FieldError::new(
                    name,
                    "required",
                    "Required when setting up a payout account.",
                ));
                None
            }
        }
    };
    let bank_name = field(
        "bank_name",
        body.bank_name.as_deref(),
        existing.as_ref().map(|e| e.bank_name.as_str()),
        &|raw| parse_text("bank_name", raw, "bank name"),
    );
    let account_number = field(
        "account_number",
        body.account_number.as_deref(),
        existing.as_ref().map(|e| e.account_number.as_str()),
        &parse_account_number,
    );
    let account_holder = field(
        "account_holder",
        body.account_holder.as_deref(),
        existing.as_ref().map(|e| e.account_holder.as_str()),
        &|raw| parse_text("account_holder", raw, "account holder's name"),
    );
    let (Some(bank_name), Some(account_number), Some(account_holder), true) =
        (bank_name, account_number, account_holder, errors.is_empty())
    else {
        return Err(AppError::Validation(errors));
    };
    let account = db::upsert_payout_account(
        &state.db,
        user.id,
        &bank_name,
        &account_number,
        &account_holder,
    )
    .await?;
    tracing::info!(user_id = %user.id, "payout account updated");
    Ok(Json(account))
}

/// Words and phrases refused in donation messages to this streamer (matched as whole words,
/// ignoring case).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockedWords {
    #[schema(example = json!(["judi", "slot gacor"]))]
    pub words: Vec<String>,
}

/// The signed-in user's blocked words.
#[utoipa::path(get, path = "/api/users/me/blocked-words", tag = "donations", security(("bearer" = [])), responses(
    (status = 200, description = "The list", body = BlockedWords),
    (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
))]
pub(super) async fn get_blocked_words(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> AppResult<Json<BlockedWords>> {
    Ok(Json(BlockedWords {
        words: db::blocked_words(&state.db, user.id).await?,
    }))
}

/// Replaces the whole list (an empty list clears it). At most 200 entries of 1–50 characters;
/// stored lower-case without duplicates.
#[utoipa::path(put, path = "/api/users/me/blocked-words", tag = "donations", security(("bearer" = [])),
    request_body = BlockedWords,
    responses(
        (status = 200, description = "The stored list", body = BlockedWords),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Too many or invalid entries (`words[i]`)", body = Problem,
            content_type = "application/problem+json"),
))]
pub(super) async fn replace_blocked_words(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Json(body): Json<BlockedWords>,
) -> AppResult<Json<BlockedWords>> {
    let mut errors = Vec::new();
    let mut words = BTreeSet::new();
    for (i, raw) in body.words.iter().enumerate() {
        let word = crate::text::strip_invisible(raw)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        let field = format!("words[{i}]");
        if word.is_empty() {
            errors.push(FieldError::new(
                field,
                "required",
                "Blocked words cannot be empty.",
            ));
        } else if word.chars().count() > MAX_WORD_CHARS {
            errors.push(FieldError::new(
                field,
                "too_long",
                format!("Blocked words can be at most {MAX_WORD_CHARS} characters."),
            ));
        } else if word.chars().any(char::is_control) {
            errors.push(FieldError::new(
                field,
                "invalid_characters",
                "Blocked words cannot contain control characters.",
            ));
        } else {
            words.insert(word);
        }
    }
    if words.len() > MAX_BLOCKED_WORDS {
        errors.push(FieldError::new(
            "words",
            "too_many",
            format!("At most {MAX_BLOCKED_WORDS} blocked words."),
        ));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let list: Vec<String> = words.into_iter().collect();
    let mut tx = state.db.begin().await?;
    db::replace_blocked_words(&mut tx, user.id, &list).await?;
    tx.commit().await?;
    Ok(Json(BlockedWords { words: list }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_numbers_are_digits() {
        assert_eq!(
            parse_account_number("123-456 7890").expect("valid"),
            "1234567890"
        );
        assert_eq!(parse_account_number("12a45").unwrap_err().code, "invalid");
        assert_eq!(
            parse_account_number("1234").unwrap_err().code,
            "invalid_length"
        );
    }
}
