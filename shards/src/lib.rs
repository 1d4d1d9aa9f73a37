//! A leasekv shard group: Raft node, KV state machine and in-memory Raft storage.
//!
//! Nothing in this crate performs I/O, reads a clock or spawns tasks: the server runtime
//! (`src/`) feeds it time, messages and persistence acknowledgements, which is what makes it
//! testable deterministically.

pub mod codec;
pub mod glob;
pub mod group;
pub mod kv;
pub mod lease;
mod logger;
pub mod members;
pub mod ops;
pub mod reply;
pub mod storage;
#[cfg(test)]
mod test_strategies;
pub mod wire;

pub use group::{
    BuiltSnapshot, Checkpoint, DecodedSnapshot, Event, GroupSpec, MembershipChange, ReadGate,
    ReadyWork, Recovered, ShardGroup, SnapshotBuild, SnapshotInstall,
};
pub use kv::KvState;
pub use members::{Member, Members};
pub use ops::{ExpireCond, ExpireSpec, LogCommand, ReadOp, SetCond, WriteOp};
pub use reply::Reply;
