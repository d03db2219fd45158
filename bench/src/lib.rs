//! Load generation for cmdb: [`swarm`] simulates many minions in one
//! process with the real protocol (keys, sealed channel, session key,
//! heartbeats, missed jobs, returns until acknowledged) and realistic
//! `collect` payloads; [`facts`] makes those payloads; [`floor`] measures
//! what one core needs to take in a job's returns; [`api`] is a small client
//! of the master's HTTP API.

pub mod api;
pub mod facts;
pub mod floor;
pub mod swarm;

/// Bytes a directory takes on disk (allocated blocks, recursively; 0 when it
/// cannot be read).
pub fn dir_bytes(p: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}
