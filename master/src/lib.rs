//! The cmdb master: the daemon behind `cmdb-master`, the operator CLI `cmdb`
//! and the key tool `cmdb-key`.
//!
//! [`run`] serves a PUB socket for jobs and a ROUTER request socket for auth,
//! returns and heartbeats; a worker pool verifies, decodes, stores and
//! answers; the HTTP API (on a unix socket) lets `cmdb` publish jobs, read the job
//! cache.

pub mod access;
pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod error;
pub mod events;
pub mod fileserver;
pub mod inventory;
pub mod jobs;
pub mod keyring;
pub mod metrics;
pub mod output;
pub mod pinning;
pub mod presence;
pub mod requests;
pub mod server;
pub mod service;
pub mod store;
pub mod throttle;
pub mod transport;

pub use config::MasterConfig;
pub use error::MasterError;
pub use server::run;
