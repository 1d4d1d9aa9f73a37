//! Redis Cluster commands: CLUSTER <subcommand>, READONLY, READWRITE, ASKING.
//!
//! Everything that needs no server state is answered here (KEYSLOT, HELP, the refusals of
//! COUNTKEYSINSLOT / GETKEYSINSLOT); the topology queries become [`ClusterQuery`], answered
//! by `crate::clusterinfo` from the live leader map.

use bytes::Bytes;
use shards::Reply;

use super::{int, table, unknown_subcommand, Command};
use crate::routing::{key_slot, SLOTS};

/// A CLUSTER subcommand whose reply depends on the current topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterQuery {
    Slots,
    Shards,
    Nodes,
    MyId,
    Info,
}

const CLUSTER_HELP: &[&str] = &[
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "COUNTKEYSINSLOT <slot>",
    "    Not supported by leasekv.",
    "GETKEYSINSLOT <slot> <count>",
    "    Not supported by leasekv.",
    "INFO",
    "    Return information about the cluster.",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "MYID",
    "    Return the node id.",
    "NODES",
    "    Return cluster configuration seen by node. Output format:",
    "    <id> <ip:port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
    "SLOTS",
    "    Return information about slots range mappings. Each range is made of:",
    "    start, end, master and replicas IP addresses, ports and ids",
    "SHARDS",
    "    Return information about slot range mappings and the nodes associated with them.",
    "HELP",
    "    Prints this help.",
];

fn valid_slot(slot: i64) -> bool {
    (0..i64::from(SLOTS)).contains(&slot)
}

fn not_supported(sub: &str) -> Reply {
    Reply::err(format!(
        "ERR CLUSTER {sub} is not supported by leasekv (keys are not indexed by slot)"
    ))
}

/// CLUSTER <subcommand> ... (`argv[0]` is CLUSTER; its arity was checked).
pub(super) fn parse(argv: &[Bytes]) -> Result<Command, Reply> {
    let Some(sub) = table::subcommand("cluster", &argv[1]) else {
        return Err(unknown_subcommand(argv));
    };
    if !sub.arity_ok(argv.len()) {
        return Err(Reply::wrong_arity(sub.name));
    }
    let a = &argv[2..];
    let query = |q| Ok(Command::Cluster(q));
    match sub.name {
        "cluster|slots" => query(ClusterQuery::Slots),
        "cluster|shards" => query(ClusterQuery::Shards),
        "cluster|nodes" => query(ClusterQuery::Nodes),
        "cluster|myid" => query(ClusterQuery::MyId),
        "cluster|info" => query(ClusterQuery::Info),
        "cluster|keyslot" => Ok(Command::Immediate(Reply::Int(key_slot(&a[0]).into()))),
        // Arguments are validated like Redis before saying no.
        "cluster|countkeysinslot" => {
            if !valid_slot(int(&a[0])?) {
                return Err(Reply::err("ERR Invalid slot"));
            }
            Err(not_supported("COUNTKEYSINSLOT"))
        }
        "cluster|getkeysinslot" => {
            let (slot, count) = (int(&a[0])?, int(&a[1])?);
            if !valid_slot(slot) || count < 0 {
                return Err(Reply::err("ERR Invalid slot or number of keys"));
            }
            Err(not_supported("GETKEYSINSLOT"))
        }
        _ => Ok(Command::Immediate(Reply::Array(
            CLUSTER_HELP.iter().map(|l| Reply::status(l)).collect(),
        ))),
    }
}
