//! The master's typed services, each owning its noun: [`jobs`] (publish,
//! the live job table, waiting for returns) and [`inventory`] (assets, their
//! history and changes) and [`keys`]. Adapters (the HTTP API in `api`) turn
//! requests into calls and [`ServiceError`] into their own error shape.

pub mod inventory;
pub mod jobs;
pub mod keys;
pub mod users;

use thiserror::Error;

use crate::error::MasterError;

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

impl From<MasterError> for ServiceError {
    fn from(e: MasterError) -> Self {
        match e {
            MasterError::Protocol(p) => ServiceError::Invalid(p.to_string()),
            MasterError::Refused(m) => ServiceError::Unprocessable(m),
            MasterError::Precondition(m) => ServiceError::PreconditionFailed(m),
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
        let store = ServiceError::from(MasterError::Store("disk full".into()));
        assert_eq!(store.status(), 500);
    }
}
