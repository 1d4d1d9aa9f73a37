//! leasekv server runtime: configuration, cores, networking, disk, routing, protocol.
//! The Raft/state-machine logic of a shard group lives in the `shards` crate.

pub mod admin;
pub mod clock;
pub mod cluster;
pub mod clusterinfo;
pub mod command;
pub mod config;
pub mod conn;
pub mod core;
pub mod datadir;
pub mod demo;
pub mod driver;
pub mod exec;
pub mod fuzzing;
pub mod hop;
pub mod info;
pub mod logging;
pub mod memlock;
pub mod metrics;
pub mod peer;
pub mod resp;
pub mod routing;
pub mod server;
pub mod sync;
pub mod transport;
pub mod wal;
