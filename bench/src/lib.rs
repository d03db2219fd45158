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
