//! Cluster administration: `LEASEKV.ADMIN ...` over the Redis protocol, and the
//! `leasekv admin` command line that sends it.
//!
//! - `LEASEKV.ADMIN ADDNODE <id> <raft-addr> <client-addr>`: adds the node as a learner to
//!   every shard group; each group's leader promotes it to voter once it has caught up.
//! - `LEASEKV.ADMIN REMOVENODE <id>`: removes the node from every group; a group it leads
//!   first hands leadership to another voter.
//! - `LEASEKV.ADMIN MEMBERS`: per group, this node's view of voters, learners and leader.
//! - `LEASEKV.ADMIN TRANSFER <group> <node-id>`: this node, which must lead the group, hands
//!   its leadership to that voter (for operators and the fault tests). Replies once the
//!   transfer has started; it completes within an election timeout or is abandoned.
//!
//! Changes run group by group at each group's leader (forwarded there like writes), and
//! are retried on retryable errors until `ADMIN_DEADLINE`. They are idempotent: adding a
//! member or removing a non-member again succeeds.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use shards::wire::Request;
use shards::{Member, MembershipChange, Reply};

use crate::core::Core;
use crate::exec;

/// How long one admin command keeps retrying a group before giving up.
const ADMIN_DEADLINE: Duration = Duration::from_secs(30);

pub fn is_admin(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"leasekv.admin")
        || name.eq_ignore_ascii_case(b"leasekv.lease")
        || name.eq_ignore_ascii_case(b"leasekv.debug")
}

/// `LEASEKV.LEASE [group]`: each group's role and lease as this node sees it.
fn lease_status(core: &Core, argv: &[Bytes]) -> Reply {
    let sh = &core.shared;
    let groups: Vec<u32> = match argv.get(1) {
        None => (0..sh.routing.groups()).collect(),
        Some(g) => match arg_str(g).ok().and_then(|s| s.parse::<u32>().ok()) {
            Some(g) if g < sh.routing.groups() => vec![g],
            _ => return Reply::err("ERR group must be an integer below the number of groups"),
        },
    };
    if argv.len() > 2 {
        return Reply::wrong_arity("leasekv.lease");
    }
    use std::sync::atomic::Ordering::Relaxed;
    let field = |k: &str, v: Reply| (Reply::bulk(k.to_string()), v);
    Reply::Array(
        groups
            .into_iter()
            .map(|g| {
                let s = &sh.group_stats[g as usize];
                let leader = s.leader.load(Relaxed);
                Reply::Map(vec![
                    field("group", Reply::Int(g as i64)),
                    field(
                        "role",
                        Reply::bulk(if leader { "leader" } else { "follower" }),
                    ),
                    field("leader", Reply::Int(s.leader_id.load(Relaxed) as i64)),
                    field("term", Reply::Int(s.term.load(Relaxed) as i64)),
                    field(
                        "lease_remaining_ms",
                        Reply::Int(s.lease_remaining_ms.load(Relaxed) as i64),
                    ),
                    field("lease_hits", Reply::Int(s.lease_hits.load(Relaxed) as i64)),
                    field(
                        "lease_misses",
                        Reply::Int(s.lease_misses.load(Relaxed) as i64),
                    ),
                    field(
                        "lease_invalidations",
                        Reply::Int(s.lease_invalidations.load(Relaxed) as i64),
                    ),
                ])
            })
            .collect(),
    )
}

/// `LEASEKV.DEBUG ISOLATE on|in|off`: fault injection for tests (needs `debug_commands`).
/// `on` drops all of this node's Raft traffic; `in` only what it receives (it still sends:
/// an asymmetric partition); `off` heals. Replies once every core's transport reflects the
/// change, so a test's clock reading taken after the reply is never earlier than the real
/// cut.
async fn debug(core: &Core, argv: &[Bytes]) -> Reply {
    if !core.shared.config.debug_commands {
        return Reply::err(
            "ERR LEASEKV.DEBUG is disabled (set debug_commands = true, for tests only)",
        );
    }
    let sub = argv
        .get(1)
        .map(|b| String::from_utf8_lossy(b).to_ascii_uppercase());
    let arg = argv
        .get(2)
        .map(|b| String::from_utf8_lossy(b).to_ascii_lowercase());
    match (sub.as_deref(), arg.as_deref(), argv.len()) {
        (Some("ISOLATE"), Some(v @ ("on" | "in" | "off")), 3) => {
            use std::sync::atomic::Ordering::{AcqRel, Acquire, Release};
            let sh = &core.shared;
            tracing::warn!(mode = v, "fault injection: LEASEKV.DEBUG ISOLATE");
            sh.debug_isolated.store(v == "on", Release);
            sh.debug_deaf.store(v == "in", Release);
            let epoch = sh.debug_isolation_epoch.fetch_add(1, AcqRel) + 1;
            // Drivers apply it on their next iteration (at most a tick away).
            let until = Instant::now() + Duration::from_secs(2);
            while sh
                .core_stats
                .iter()
                .any(|c| c.isolation_applied.load(Acquire) < epoch)
            {
                if Instant::now() >= until {
                    return Reply::err("ERR not every core applied the isolation within 2 s");
                }
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
            Reply::Ok
        }
        _ => Reply::err("ERR usage: LEASEKV.DEBUG ISOLATE on|in|off"),
    }
}

fn arg_str(b: &Bytes) -> Result<&str, Reply> {
    std::str::from_utf8(b).map_err(|_| Reply::err("ERR arguments must be UTF-8"))
}

fn parse_id(b: &Bytes) -> Result<u64, Reply> {
    arg_str(b)?
        .parse::<u64>()
        .ok()
        .filter(|id| *id >= 1)
        .ok_or_else(|| Reply::err("ERR node id must be an integer >= 1"))
}

fn parse_group(core: &Core, b: &Bytes) -> Result<u32, Reply> {
    arg_str(b)?
        .parse::<u32>()
        .ok()
        .filter(|g| *g < core.shared.routing.groups())
        .ok_or_else(|| Reply::err("ERR group must be an integer below the number of groups"))
}

fn parse_addr(b: &Bytes, what: &str) -> Result<String, Reply> {
    let s = arg_str(b)?;
    s.parse::<SocketAddr>().map(|a| a.to_string()).map_err(|_| {
        Reply::err(format!(
            "ERR {what} must be an IP address and port, got '{s}'"
        ))
    })
}

/// Runs `LEASEKV.ADMIN <sub> ...` (argv[0] is the command name).
pub async fn run(core: &Rc<Core>, argv: &[Bytes]) -> Reply {
    if argv[0].eq_ignore_ascii_case(b"leasekv.lease") {
        return lease_status(core, argv);
    }
    if argv[0].eq_ignore_ascii_case(b"leasekv.debug") {
        return debug(core, argv).await;
    }
    let Some(sub) = argv.get(1) else {
        return Reply::wrong_arity("leasekv.admin");
    };
    let sub = String::from_utf8_lossy(sub).to_ascii_uppercase();
    if core.cluster.is_none() && sub != "MEMBERS" {
        return Reply::err("ERR this node is not part of a cluster (no [[nodes]] configured)");
    }
    let result = match (sub.as_str(), argv.len()) {
        ("ADDNODE", 5) => match (parse_id(&argv[2]), parse_addr(&argv[3], "raft address"), parse_addr(&argv[4], "client address")) {
            (Ok(id), Ok(raft), Ok(client)) => {
                change_all(core, MembershipChange::AddLearner(Member { id, raft, client }), "is already a member").await
            }
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
        },
        ("REMOVENODE", 3) => match parse_id(&argv[2]) {
            Ok(id) => change_all(core, MembershipChange::Remove(id), "is not a member").await,
            Err(e) => Err(e),
        },
        ("MEMBERS", 2) => members(core).await,
        ("TRANSFER", 4) => match (parse_group(core, &argv[2]), parse_id(&argv[3])) {
            (Ok(g), Ok(to)) => Ok(exec::issue_request(core, g, Request::TransferLeader(to))
                .await
                .resolve()
                .await),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        ("ADDNODE" | "REMOVENODE" | "MEMBERS" | "TRANSFER", _) => {
            Err(Reply::wrong_arity("leasekv.admin"))
        }
        _ => Err(Reply::err(format!(
            "ERR unknown subcommand '{sub}'. Try ADDNODE <id> <raft-addr> <client-addr>, REMOVENODE <id>, MEMBERS, TRANSFER <group> <node-id>."
        ))),
    };
    result.unwrap_or_else(|e| e)
}

/// Applies `change` to every group, retrying retryable errors. `done_marker`: an error text
/// meaning the change is already in effect.
async fn change_all(
    core: &Rc<Core>,
    change: MembershipChange,
    done_marker: &str,
) -> Result<Reply, Reply> {
    let groups = core.shared.routing.groups();
    for g in 0..groups {
        let start = Instant::now();
        loop {
            let reply = exec::issue_request(core, g, Request::Membership(change.clone()))
                .await
                .resolve()
                .await;
            match &reply {
                Reply::Error(e)
                    if e.windows(done_marker.len())
                        .any(|w| w == done_marker.as_bytes()) =>
                {
                    break
                }
                Reply::Error(e)
                    if (e.starts_with(b"TRYAGAIN") || e.starts_with(b"CLUSTERDOWN"))
                        && start.elapsed() < ADMIN_DEADLINE =>
                {
                    glommio::timer::sleep(Duration::from_millis(100)).await;
                }
                Reply::Error(_) => {
                    return Err(Reply::err(format!(
                        "ERR group {g}: {} (groups before it were changed)",
                        match &reply {
                            Reply::Error(e) => String::from_utf8_lossy(e).into_owned(),
                            _ => String::new(),
                        }
                    )))
                }
                _ => break,
            }
        }
    }
    Ok(Reply::Status(Bytes::from(match change {
        MembershipChange::AddLearner(m) => format!(
            "OK node {} added as a learner to {groups} groups; each group's leader promotes it to voter once it has caught up",
            m.id
        ),
        MembershipChange::Remove(id) => format!("OK node {id} removed from {groups} groups"),
        MembershipChange::Promote(id) => format!("OK node {id} promoted"),
    })))
}

async fn members(core: &Rc<Core>) -> Result<Reply, Reply> {
    let mut out = Vec::new();
    for g in 0..core.shared.routing.groups() {
        out.push(
            exec::issue_request(core, g, Request::MembershipStatus)
                .await
                .resolve()
                .await,
        );
    }
    Ok(Reply::Array(out))
}

/// `leasekv admin`: sends one admin command to `addr` and renders the reply.
pub fn cli(addr: &str, args: &[String]) -> Result<String, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    s.set_read_timeout(Some(ADMIN_DEADLINE * 4 + Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut req = format!("*{}\r\n$13\r\nLEASEKV.ADMIN\r\n", args.len() + 1);
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    let mut out = String::new();
    read_reply(&mut r, 0, &mut out)?;
    Ok(out)
}

fn read_reply(r: &mut impl BufRead, depth: usize, out: &mut String) -> Result<(), String> {
    let mut line = String::new();
    r.read_line(&mut line)
        .map_err(|e| format!("reading reply: {e}"))?;
    let line = line.trim_end();
    let (kind, rest) = line.split_at(line.len().min(1));
    let indent = "  ".repeat(depth);
    match kind {
        "+" => out.push_str(&format!("{indent}{rest}\n")),
        "-" => return Err(rest.to_string()),
        ":" => out.push_str(&format!("{indent}{rest}\n")),
        "$" => {
            let n: i64 = rest.parse().map_err(|_| format!("bad reply: {line}"))?;
            if n >= 0 {
                let mut buf = vec![0u8; n as usize + 2];
                r.read_exact(&mut buf).map_err(|e| e.to_string())?;
                out.push_str(&format!(
                    "{indent}{}\n",
                    String::from_utf8_lossy(&buf[..n as usize])
                ));
            }
        }
        "*" => {
            let n: i64 = rest.parse().map_err(|_| format!("bad reply: {line}"))?;
            for _ in 0..n.max(0) {
                read_reply(r, depth + 1, out)?;
            }
        }
        _ => return Err(format!("unexpected reply: {line}")),
    }
    Ok(())
}
