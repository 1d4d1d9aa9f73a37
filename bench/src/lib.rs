//! leasekv-bench: a latency load generator for Redis-protocol servers.
//!
//! - closed loop (max throughput): each connection keeps `pipeline` requests in flight,
//!   latency measured from the actual send;
//! - open loop (`rate`): a fixed schedule of intended send times; latency is measured from
//!   the intended time, so a stalled server (or connection) cannot hide its queueing
//!   (no coordinated omission); the generator measures its own lateness and declares the
//!   run invalid when it, not the server, fell behind.
//!
//! `run_load(&config)` runs a test in-process and returns a [`LoadReport`].

pub mod cli;
pub mod config;
mod conn;
mod coreprobe;
pub mod http;
pub mod info;
pub mod keys;
pub mod report;
pub mod resp;
pub mod rng;
mod runner;
pub mod schedule;
pub mod slots;
pub mod stats;
pub mod suite;
pub mod sysstat;

pub use config::{ConfigError, Distribution, KeyTag, LoadConfig, Protocol};
pub use report::{LoadReport, LoopMode};
pub use runner::{run_load, RunError};
