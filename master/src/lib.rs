//! The cmdb master: the daemon behind `cmdb-master`. The operator CLI
//! `cmdb` and the key tool `cmdb-key` are clients of its API (the `cli`
//! crate).
//!
//! [`run`] serves a PUB socket for jobs and a ROUTER request socket for auth,
//! returns and heartbeats; a worker pool verifies, decodes, stores and
//! answers; the HTTP API (a unix socket and TLS) serves jobs, the inventory, keys,
//! users, events and metrics.

pub mod api;
pub mod chunks;
pub mod cluster;
pub mod config;
pub mod error;
pub mod events;
pub mod fileserver;
pub mod jobs;
pub mod keyring;
pub mod metrics;
pub mod presence;
pub mod requests;
pub mod server;
pub mod service;
pub mod ssh;
pub mod throttle;
pub mod transport;
pub mod ui;

pub use ::inventory;
pub use ::store;
pub use ::store::access;
pub use config::MasterConfig;
pub use error::MasterError;
pub use server::run;
