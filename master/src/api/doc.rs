//! Response sets the routes share in the OpenAPI document: every error is
//! an RFC 9457 problem document, and each set names the statuses one kind
//! of failure answers with.

use std::collections::BTreeMap;

use utoipa::IntoResponses;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, response::Response};

fn problems(statuses: &[(u16, &str)]) -> BTreeMap<String, RefOr<Response>> {
    statuses
        .iter()
        .map(|(status, description)| {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build();
            let response = ResponseBuilder::new()
                .description(*description)
                .content("application/problem+json", content)
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
}

macro_rules! problem_set {
    ($(#[$doc:meta])* $name:ident: $(($status:literal, $description:literal)),+) => {
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                problems(&[$(($status, $description)),+])
            }
        }
    };
}

problem_set!(
    /// The credentials are missing or do not allow the request.
    Refused: (401, "not authenticated"), (403, "not allowed")
);
problem_set!(
    /// The master could not complete the request.
    Failed: (500, "the master failed")
);
problem_set!(
    /// A path or query parameter is malformed.
    BadRequest: (400, "malformed request")
);
problem_set!(
    /// The body is too large, not JSON, or names an unknown field.
    BadBody: (413, "body too large"), (415, "body is not JSON"), (422, "unknown field or wrong value")
);
problem_set!(
    /// What the path names does not exist.
    NotFound: (404, "not found")
);
problem_set!(
    /// The request conflicts with what is stored.
    Conflict: (409, "conflicts with the current state")
);
problem_set!(
    /// `If-Match` names a version that is no longer current.
    Precondition: (412, "the asset changed since it was read")
);
problem_set!(
    /// A store the request needs is unavailable.
    Unavailable: (503, "a store is unavailable")
);
