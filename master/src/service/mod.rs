//! The master's typed services, each owning its noun: [`jobs`] (publish,
//! the live job table, waiting for returns) and [`inventory`] (assets, their
//! history and changes), [`keys`] and [`ssh`] (jobs over SSH on the hosts of
//! the roster). Adapters (the HTTP API in `api`) turn
//! requests into calls and [`ServiceError`] into their own error shape.

pub mod entry;
pub mod index;
pub mod inventory;
pub mod jobs;
pub mod keys;
pub mod sheets;
pub mod ssh;
pub mod users;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error::MasterError;

/// The most items one page holds.
pub const MAX_PAGE: usize = 1000;

/// One page of a list: `next` is the cursor of the following page, absent
/// on the last one. Cursors are opaque; give them back as `cursor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// The items, in the list's order.
    pub items: Vec<T>,
    /// The cursor of the next page, if there is one.
    pub next: Option<String>,
}

/// Checks a page size: 1 to [`MAX_PAGE`], `default` when absent.
pub fn page_limit(limit: Option<usize>, default: usize) -> Result<usize, ServiceError> {
    match limit.unwrap_or(default) {
        0 => Err(ServiceError::Invalid("limit must be at least 1".into())),
        n if n > MAX_PAGE => Err(ServiceError::Invalid(format!(
            "limit {n} is over the maximum of {MAX_PAGE}; follow `next` for more"
        ))),
        n => Ok(n),
    }
}

impl<T> Page<T> {
    /// The page of at most `limit` items that follows `cursor` in `items`,
    /// which are sorted by `key` (ascending, or descending when
    /// `descending`). Keys must be unique.
    pub fn of(
        items: impl IntoIterator<Item = T>,
        key: impl Fn(&T) -> String,
        cursor: Option<&str>,
        limit: usize,
        descending: bool,
    ) -> Page<T> {
        let after = |k: &str| match cursor {
            None => true,
            Some(c) if descending => k < c,
            Some(c) => k > c,
        };
        let mut page: Vec<T> = Vec::new();
        let mut more = false;
        for item in items {
            if !after(&key(&item)) {
                continue;
            }
            if page.len() == limit {
                more = true;
                break;
            }
            page.push(item);
        }
        let next = if more { page.last().map(&key) } else { None };
        Page { items: page, next }
    }
}

/// Why a service call failed; each kind maps onto one HTTP status.
#[derive(Debug, Error)]
pub enum ServiceError {
    /// The request is malformed (400).
    #[error("{0}")]
    Invalid(String),
    /// The request is well-formed but cannot be carried out as asked: an
    /// unknown field, a value of the wrong type (422).
    #[error("{0}")]
    Unprocessable(String),
    /// The caller is not known (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// What the request names does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state, such as a status
    /// transition that is not allowed (409).
    #[error("{0}")]
    Conflict(String),
    /// A precondition such as `If-Match` failed (412).
    #[error("{0}")]
    PreconditionFailed(String),
    /// The request body is larger than accepted (413).
    #[error("{0}")]
    TooLarge(String),
    /// The request body is not of a type the route takes (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A resource the service needs is unavailable; retry later (503).
    #[error("{0}")]
    Unavailable(String),
    /// The master itself failed (500).
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    /// The HTTP status this error maps to.
    pub fn status(&self) -> u16 {
        match self {
            ServiceError::Invalid(_) => 400,
            ServiceError::Unauthenticated(_) => 401,
            ServiceError::Forbidden(_) => 403,
            ServiceError::NotFound(_) => 404,
            ServiceError::Conflict(_) => 409,
            ServiceError::PreconditionFailed(_) => 412,
            ServiceError::TooLarge(_) => 413,
            ServiceError::UnsupportedMediaType(_) => 415,
            ServiceError::Unprocessable(_) => 422,
            ServiceError::Internal(_) => 500,
            ServiceError::Unavailable(_) => 503,
        }
    }
}

impl From<store::StoreError> for ServiceError {
    fn from(e: store::StoreError) -> Self {
        MasterError::Store(e).into()
    }
}

impl From<MasterError> for ServiceError {
    fn from(e: MasterError) -> Self {
        match e {
            MasterError::Protocol(p) => ServiceError::Invalid(p.to_string()),
            MasterError::Store(store::StoreError::Refused(m)) => ServiceError::Unprocessable(m),
            MasterError::Store(store::StoreError::Precondition(m)) => {
                ServiceError::PreconditionFailed(m)
            }
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_onto_statuses() {
        let cases = [
            (ServiceError::Invalid(String::new()), 400),
            (ServiceError::Unauthenticated(String::new()), 401),
            (ServiceError::Forbidden(String::new()), 403),
            (ServiceError::NotFound(String::new()), 404),
            (ServiceError::Conflict(String::new()), 409),
            (ServiceError::PreconditionFailed(String::new()), 412),
            (ServiceError::Unprocessable(String::new()), 422),
            (ServiceError::Unavailable(String::new()), 503),
        ];
        for (e, status) in cases {
            assert_eq!(e.status(), status, "{e:?}");
        }
        let store = ServiceError::from(MasterError::Store(store::StoreError::Engine(
            "disk full".into(),
        )));
        assert_eq!(store.status(), 500);
    }
}

#[cfg(test)]
mod page_tests {
    use super::*;

    #[test]
    fn pages_follow_each_other_without_gaps_or_overlap() {
        let items: Vec<u32> = (0..7).collect();
        let key = |i: &u32| format!("{i:04}");
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let p = Page::of(items.clone(), key, cursor.as_deref(), 3, false);
            seen.extend(p.items);
            match p.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, items);
        let desc: Vec<u32> = (0..5).rev().collect();
        let p = Page::of(desc.clone(), key, None, 2, true);
        assert_eq!(p.items, vec![4, 3]);
        let p = Page::of(desc, key, p.next.as_deref(), 10, true);
        assert_eq!((p.items, p.next), (vec![2, 1, 0], None));
        assert!(page_limit(Some(0), 5).is_err() && page_limit(Some(1001), 5).is_err());
        assert_eq!(page_limit(None, 5).ok(), Some(5));
    }
}
