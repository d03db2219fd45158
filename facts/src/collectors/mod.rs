//! The built-in collectors, one file each. Each has `collect(src)`, its
//! `PROBES` (what it reads, for a source that fetches ahead) and pure
//! parsers of what it read.

pub mod cpu;
pub mod disks;
pub mod dmi;
pub mod dns;
pub mod gateway;
pub mod gpus;
pub mod guests;
pub mod host;
pub mod kernel;
pub mod machine_id;
pub mod memory;
pub mod mounts;
pub mod network;
pub mod os;
pub mod packages;
pub mod partitions;
pub mod timezone;
pub mod uptime;
pub mod virtualization;
