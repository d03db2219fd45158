//! The operator commands behind the `cmdb` and `cmdb-key` binaries.

pub mod asset;
pub mod events;
pub mod key;
pub mod run;
pub mod user;

/// The name of the user running the command, for job records.
pub fn current_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into())
}
