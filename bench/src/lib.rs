//! Load generation for cmdb: [`swarm`] simulates many minions in one
//! process with the real protocol (keys, sealed channel, session key,
//! heartbeats, missed jobs, returns until acknowledged) and realistic
//! `collect` payloads; [`facts`] makes those payloads.

pub mod facts;
pub mod swarm;
