//! The two pagination styles of the API.
//!
//! - Page numbers (`?page=2&per_page=20`) for lists people browse and want totals of: streams,
//!   donation history, admin lists. Answer: [`Paginated`].
//! - Cursors (`?cursor=...&limit=50`) for feeds that grow while being read: comments. Answer:
//!   [`CursorPage`]; the cursor is opaque to clients.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::AppError;

pub const DEFAULT_PER_PAGE: u32 = 20;
pub const MAX_PER_PAGE: u32 = 100;

/// `?page=&per_page=` query parameters.
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1-based page number.
    #[param(minimum = 1, default = 1)]
    pub page: Option<u32>,
    /// Items per page (1–100).
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub per_page: Option<u32>,
}

impl PageParams {
    /// The validated page and page size.
    pub fn resolve(self) -> Result<PageRequest, AppError> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(DEFAULT_PER_PAGE);
        if page == 0 {
            return Err(AppError::invalid(
                "page",
                "out_of_range",
                "Pages are numbered from 1.",
            ));
        }
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(AppError::invalid(
                "per_page",
                "out_of_range",
                "per_page must be between 1 and 100.",
            ));
        }
        Ok(PageRequest { page, per_page })
    }
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub per_page: u32,
}

impl PageRequest {
    /// SQL `LIMIT`.
    #[must_use]
    pub fn limit(self) -> i64 {
        i64::from(self.per_page)
    }

    /// SQL `OFFSET`.
    #[must_use]
    pub fn offset(self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.per_page)
    }

    /// Wraps one page of items with the total count.
    #[must_use]
    pub fn wrap<T>(self, items: Vec<T>, total: i64) -> Paginated<T> {
        Paginated {
            items,
            page: self.page,
            per_page: self.per_page,
            total,
        }
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paginated<T> {
    pub items: Vec<T>,
    pub page: u32,
    pub per_page: u32,
    /// Number of items over all pages.
    pub total: i64,
}

/// One slice of a feed; pass `next_cursor` back as `cursor` to continue.
#[derive(Debug, Serialize, ToSchema)]
pub struct CursorPage<T> {
    pub items: Vec<T>,
    /// Absent on the last page.
    pub next_cursor: Option<String>,
}
