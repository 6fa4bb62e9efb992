//! Donation history: what a donor sent, what a streamer received (also as CSV), and a stream's
//! public list of completed donations.

// utoipa's expansion of `params(HistoryParams)` re-names the query type by its full path next to
// the handler, which this lint flags in code we did not write; without `params(...)` the filters
// would be missing from the OpenAPI document (our `Query` is not axum's, so utoipa cannot infer them).
#![allow(unused_qualifications)]

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::db::{self, HistoryFilters, Side};
use super::model::{DonationStatus, DonationView, PublicDonation, whole_rupiah};
use super::views::Row;
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, FieldError, Problem};
use crate::http::extract::{Json, Path, Query};
use crate::http::pagination::{PageParams, PageRequest, Paginated};
use crate::state::AppState;

/// Rows a CSV export holds at most.
const CSV_MAX_ROWS: i64 = 50_000;

/// Filters of the history lists.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    #[param(minimum = 1, default = 1)]
    pub page: Option<u32>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub per_page: Option<u32>,
    /// Only this status (`pending`, `completed`, `failed`, `expired`, `rejected`, `refunded`).
    pub status: Option<String>,
    /// Only donations on this stream.
    pub stream_id: Option<Uuid>,
    /// Created at or after: a date (`2024-05-01`) or an RFC 3339 time.
    pub from: Option<String>,
    /// Created at or before: a date (the whole day counts) or an RFC 3339 time.
    pub to: Option<String>,
    /// `json` (default) or `csv` (received donations only: every matching row, no pages).
    pub format: Option<String>,
}

fn parse_time(
    field: &'static str,
    raw: &str,
    end_of_day: bool,
) -> Result<DateTime<Utc>, FieldError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map(|d| {
            let time = if end_of_day {
                NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).unwrap_or(NaiveTime::MIN)
            } else {
                NaiveTime::MIN
            };
            d.and_time(time).and_utc()
        })
        .map_err(|_| {
            FieldError::new(
                field,
                "invalid",
                "Use a date (2024-05-01) or an RFC 3339 time (2024-05-01T10:00:00Z).",
            )
        })
}

impl HistoryParams {
    fn parse(&self) -> Result<(PageRequest, HistoryFilters, bool), AppError> {
        let mut errors = Vec::new();
        let page = PageParams {
            page: self.page,
            per_page: self.per_page,
        }
        .resolve()
        .map_err(|e| {
            if let AppError::Validation(mut v) = e {
                errors.append(&mut v);
            }
        });
        let status = match self.status.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => DonationStatus::parse(s).or_else(|| {
                errors.push(FieldError::new(
                    "status",
                    "invalid",
                    "Status must be one of pending, completed, failed, expired, rejected, refunded.",
                ));
                None
            }),
        };
        let mut time =
            |field, raw: &Option<String>, end| match raw.as_deref().filter(|s| !s.is_empty()) {
                None => None,
                Some(raw) => parse_time(field, raw, end).map_err(|e| errors.push(e)).ok(),
            };
        let from = time("from", &self.from, false);
        let to = time("to", &self.to, true);
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            errors.push(FieldError::new(
                "to",
                "before_from",
                "`to` must not be before `from`.",
            ));
        }
        let csv = match self.format.as_deref() {
            None | Some("" | "json") => false,
            Some("csv") => true,
            Some(_) => {
                errors.push(FieldError::new(
                    "format",
                    "invalid",
                    "Format must be json or csv.",
                ));
                false
            }
        };
        match page {
            Ok(page) if errors.is_empty() => Ok((
                page,
                HistoryFilters {
                    status,
                    stream_id: self.stream_id,
                    from,
                    to,
                },
                csv,
            )),
            _ => Err(AppError::Validation(errors)),
        }
    }
}

/// Totals over every page of the filtered list.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryTotals {
    /// Money received: the completed and partially refunded donations' amounts less what was
    /// refunded, whole rupiah.
    pub completed_amount: i64,
    /// Completed and partially refunded donations.
    pub completed_count: i64,
}

/// One page of donation history with totals.
#[derive(Debug, Serialize, ToSchema)]
pub struct DonationHistory {
    #[serde(flatten)]
    pub page: Paginated<DonationView>,
    pub totals: HistoryTotals,
}

async fn history(
    state: &AppState,
    side: Side,
    user_id: Uuid,
    params: &HistoryParams,
) -> AppResult<Response> {
    let (page, filters, csv) = params.parse()?;
    if csv && side == Side::Sent {
        return Err(AppError::invalid(
            "format",
            "invalid",
            "CSV export is for received donations.",
        ));
    }
    let (limit, offset) = if csv {
        (CSV_MAX_ROWS, 0)
    } else {
        (page.limit(), page.offset())
    };
    let rows = db::history_rows(&state.db, side, user_id, &filters, limit, offset).await?;
    // The donor sees themselves; the streamer never sees who chose to be anonymous.
    let reveal = side == Side::Sent;
    if csv {
        return Ok(csv_response(&rows));
    }
    let sums = db::history_totals(&state.db, side, user_id, &filters).await?;
    let items = rows.iter().map(|r| r.view(reveal)).collect();
    Ok(Json(DonationHistory {
        page: page.wrap(items, sums.total),
        totals: HistoryTotals {
            completed_amount: whole_rupiah(sums.completed_amount),
            completed_count: sums.completed_count,
        },
    })
    .into_response())
}

/// A spreadsheet application runs a cell that starts with one of these as a formula; a donor
/// controls the message, so such cells are prefixed with `'`.
fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

fn csv_response(rows: &[Row]) -> Response {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let header = [
        "id",
        "created_at",
        "completed_at",
        "stream_id",
        "stream_title",
        "donor",
        "amount",
        "currency",
        "payment_method",
        "status",
        "reference_code",
        "message",
    ];
    let mut result = writer.write_record(header);
    for row in rows {
        if result.is_err() {
            break;
        }
        let view = row.view(false);
        result = writer.write_record([
            view.id.to_string(),
            view.created_at.to_rfc3339(),
            view.completed_at
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
            view.stream_id.to_string(),
            cell(&view.stream_title),
            cell(&view.donor_name),
            view.amount.to_string(),
            view.currency.to_owned(),
            row.donation.payment_method.as_str().to_owned(),
            view.status.as_str().to_owned(),
            view.reference_code.unwrap_or_default(),
            cell(&view.message),
        ]);
    }
    let body = match result
        .map_err(anyhow::Error::from)
        .and_then(|()| writer.into_inner().map_err(|e| anyhow::anyhow!("{e}")))
    {
        Ok(body) => body,
        Err(e) => return AppError::Internal(e.context("writing CSV")).into_response(),
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"donations-received.csv\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// Donations the signed-in user made, newest first, with totals of the completed ones.
#[utoipa::path(get, path = "/api/donations/sent", tag = "donations", security(("bearer" = [])),
    params(HistoryParams),
    responses(
        (status = 200, description = "One page of sent donations", body = DonationHistory),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid filters", body = Problem, content_type = "application/problem+json"),
))]
pub(super) async fn sent(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Query(params): Query<HistoryParams>,
) -> AppResult<Response> {
    history(&state, Side::Sent, user.id, &params).await
}

/// Donations to the signed-in user's streams, newest first, with totals; `?format=csv` exports
/// every matching row as CSV.
#[utoipa::path(get, path = "/api/donations/received", tag = "donations", security(("bearer" = [])),
    params(HistoryParams),

    responses(
        (status = 200, description = "One page of received donations (`text/csv` with `format=csv`)", body = DonationHistory),
        (status = 401, description = "Not logged in", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid filters", body = Problem, content_type = "application/problem+json"),
))]
pub(super) async fn received(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Query(params): Query<HistoryParams>,
) -> AppResult<Response> {
    history(&state, Side::Received, user.id, &params).await
}

/// A stream's completed donations, newest first. Anonymous donations carry no donor.
#[utoipa::path(get, path = "/api/streams/{id}/donations", tag = "donations",
    params(("id" = Uuid, Path, description = "The stream"), PageParams),
    responses(
        (status = 200, description = "One page of completed donations", body = Paginated<PublicDonation>),
        (status = 404, description = "No such stream", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid page", body = Problem, content_type = "application/problem+json"),
))]
pub(super) async fn public_list(
    State(state): State<AppState>,
    Path(stream_id): Path<Uuid>,
    Query(params): Query<PageParams>,
) -> AppResult<Json<Paginated<PublicDonation>>> {
    let page = params.resolve()?;
    if !db::stream_exists(&state.db, stream_id).await? {
        return Err(AppError::not_found("Stream"));
    }
    let rows = db::completed_rows(&state.db, stream_id, page.limit(), page.offset()).await?;
    let total = db::count_completed(&state.db, stream_id).await?;
    Ok(Json(
        page.wrap(rows.iter().map(Row::public).collect(), total),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("Semangat!"), "Semangat!");
    }

    #[test]
    fn dates_cover_whole_days() {
        let from = parse_time("from", "2024-05-01", false).expect("date");
        let to = parse_time("to", "2024-05-01", true).expect("date");
        assert_eq!(from.to_rfc3339(), "2024-05-01T00:00:00+00:00");
        assert!(to > from && (to - from).num_hours() == 23);
        assert!(parse_time("from", "2024-05-01T10:00:00+07:00", false).is_ok());
        assert_eq!(
            parse_time("from", "yesterday", false).unwrap_err().code,
            "invalid"
        );
    }
}
