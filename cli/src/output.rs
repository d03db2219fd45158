//! Outputters for job results, shared with `cmdb-minion call`.

pub use render::*;
