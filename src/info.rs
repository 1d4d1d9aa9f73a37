//! INFO, HELLO and CLIENT INFO/LIST texts.

use std::fmt::Write;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use shards::Reply;

use crate::core::{ClientEntry, Core};

/// The Redis version whose behaviour leasekv follows; clients use it for feature checks.
pub const REDIS_COMPAT_VERSION: &str = "7.2.0";

pub fn hello(core: &Core, client: &ClientEntry) -> Reply {
    let s = |v: &str| Reply::Bulk(Bytes::copy_from_slice(v.as_bytes()));
    Reply::Map(vec![
        (s("server"), s("redis")),
        (s("version"), s(REDIS_COMPAT_VERSION)),
        (s("proto"), Reply::Int(client.resp.get() as i64)),
        (s("id"), Reply::Int(client.id as i64)),
        (s("mode"), s("standalone")),
        (s("role"), s("master")),
        (s("modules"), Reply::Array(Vec::new())),
        (s("leasekv_version"), s(env!("CARGO_PKG_VERSION"))),
        (s("node_id"), Reply::Int(core.shared.config.node_id as i64)),
    ])
}

pub fn client_line(c: &ClientEntry) -> String {
    let name = c.name.borrow();
    let name = name
        .as_ref()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_default();
    format!(
        "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 resp={} lib-name= lib-ver=\n",
        c.id,
        c.addr,
        c.laddr,
        name,
        c.connected.elapsed().as_secs(),
        c.last_cmd.get().elapsed().as_secs(),
        c.resp.get(),
    )
}

/// Clients connected to this core (a connection lives on exactly one core).
pub fn client_list(core: &Core) -> String {
    let clients = core.clients.borrow();
    let mut list: Vec<&Rc<ClientEntry>> = clients.values().collect();
    list.sort_by_key(|c| c.id);
    list.iter().map(|c| client_line(c)).collect()
}

fn wants(sections: &[Bytes], name: &str, default: bool) -> bool {
    if sections.is_empty() {
        return default;
    }
    sections.iter().any(|s| {
        let s = s.as_ref();
        s.eq_ignore_ascii_case(name.as_bytes())
            || s.eq_ignore_ascii_case(b"all")
            || s.eq_ignore_ascii_case(b"everything")
            || (default && s.eq_ignore_ascii_case(b"default"))
    })
}

pub fn info(core: &Core, sections: &[Bytes]) -> String {
    let sh = &core.shared;
    let cfg = &sh.config;
    let mut out = String::new();
    let sum =
        |f: &dyn Fn(&crate::core::CoreStats) -> u64| -> u64 { sh.core_stats.iter().map(f).sum() };
    if wants(sections, "server", true) {
        let _ = write!(
            out,
            "# Server\r\nredis_version:{REDIS_COMPAT_VERSION}\r\nleasekv_version:{}\r\nredis_mode:standalone\r\nos:{}\r\narch_bits:64\r\nprocess_id:{}\r\nnode_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nexecutable:leasekv\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::process::id(),
            cfg.node_id,
            cfg.listen_addr().port(),
            sh.started.elapsed().as_secs(),
        );
    }
    if wants(sections, "clients", true) {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n\r\n",
            sh.clients.load(Ordering::Relaxed),
            cfg.limits.max_clients,
        );
    }
    if wants(sections, "stats", true) {
        let _ = write!(
            out,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\ntotal_error_replies:0\r\nprotocol_errors:{}\r\nexpired_keys:{}\r\ncross_core_hops:{}\r\nwal_syncs:{}\r\nwal_bytes_written:{}\r\nwal_compactions:{}\r\n\r\n",
            sum(&|s| s.total_connections.load(Ordering::Relaxed)),
            sum(&|s| s.commands.load(Ordering::Relaxed)),
            sum(&|s| s.rejected_connections.load(Ordering::Relaxed)),
            sum(&|s| s.protocol_errors.load(Ordering::Relaxed)),
            sum(&|s| s.expired_keys.load(Ordering::Relaxed)),
            sum(&|s| s.hops_sent.load(Ordering::Relaxed)),
            sum(&|s| s.wal_syncs.load(Ordering::Relaxed)),
            sum(&|s| s.wal_bytes.load(Ordering::Relaxed)),
            sum(&|s| s.compactions.load(Ordering::Relaxed)),
        );
    }
    if wants(sections, "cluster", true) {
        let _ = write!(
            out,
            "# Cluster\r\ncluster_enabled:{}\r\n\r\n",
            u8::from(cfg.is_cluster())
        );
    }
    if wants(sections, "latencystats", true) {
        out.push_str("# Latencystats\r\n");
        out.push_str(&latencystats(sh));
        out.push_str("\r\n");
    }
    if wants(sections, "keyspace", true) {
        let keys: u64 = sh
            .group_stats
            .iter()
            .map(|g| g.keys.load(Ordering::Acquire))
            .sum();
        let expires: u64 = sh
            .group_stats
            .iter()
            .map(|g| g.expires.load(Ordering::Acquire))
            .sum();
        out.push_str("# Keyspace\r\n");
        if keys > 0 {
            let _ = write!(out, "db0:keys={keys},expires={expires},avg_ttl=0\r\n");
        }
        out.push_str("\r\n");
    }
    if wants(sections, "leasekv", true) {
        let _ = write!(
            out,
            "# Leasekv\r\nread_mode:{}\r\ncores:{}\r\ncore_cpus:{}\r\ngroups:{}\r\n",
            match cfg.read_mode {
                crate::config::ReadMode::Lease => "lease",
                crate::config::ReadMode::ReadIndex => "readindex",
            },
            cfg.cores.len(),
            cfg.cores
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(","),
            sh.routing.groups(),
        );
        for (i, s) in sh.core_stats.iter().enumerate() {
            let _ = write!(
                out,
                "core{i}:cpu={},clients={},commands={},hops_sent={},hops_received={},wal_syncs={}\r\n",
                cfg.cores[i],
                s.connected_clients.load(Ordering::Relaxed),
                s.commands.load(Ordering::Relaxed),
                s.hops_sent.load(Ordering::Relaxed),
                s.hops_received.load(Ordering::Relaxed),
                s.wal_syncs.load(Ordering::Relaxed),
            );
        }
        for g in 0..sh.routing.groups() {
            let s = &sh.group_stats[g as usize];
            let (lo, hi) = sh.routing.slot_range(g);
            let _ =
                write!(
                out,
                "group{g}:core={},slots={lo}-{hi},role={},term={},commit={},applied={},keys={},lease_remaining_ms={},lease_hits={},lease_misses={},lease_invalidations={},read_errors={},readindex_done={},readindex_mean_us={},leader_changes={}{}\r\n",
                sh.routing.core_of_group(g),
                if s.leader.load(Ordering::Relaxed) { "leader" } else { "follower" },
                s.term.load(Ordering::Relaxed),
                s.commit.load(Ordering::Relaxed),
                s.applied.load(Ordering::Relaxed),
                s.keys.load(Ordering::Relaxed),
                s.lease_remaining_ms.load(Ordering::Relaxed),
                s.lease_hits.load(Ordering::Relaxed),
                s.lease_misses.load(Ordering::Relaxed),
                s.lease_invalidations.load(Ordering::Relaxed),
                s.read_errors.load(Ordering::Relaxed),
                s.readindex_done.load(Ordering::Relaxed),
                s.readindex_ns_total.load(Ordering::Relaxed) / 1000 / s.readindex_done.load(Ordering::Relaxed).max(1),
                s.leader_changes.load(Ordering::Relaxed),
                shards::lease::Invalidation::ALL
                    .iter()
                    .zip(&s.lease_invalidations_by_reason)
                    .map(|(r, n)| format!(",invalidated_{}={}", r.as_str(), n.load(Ordering::Relaxed)))
                    .collect::<String>(),
            );
        }
        out.push_str("\r\n");
    }
    out
}

/// Redis 7's `INFO latencystats` lines, from the per-core command histograms merged over
/// cores: `latency_percentiles_usec_<cmd>:p50=..,p99=..,p99.9=..` (each value the upper
/// bound of the histogram bucket holding that percentile; buckets are 1-2-5 steps).
fn latencystats(sh: &crate::core::Shared) -> String {
    use crate::metrics::histogram::{family_count, family_name, BOUNDS_NS, BUCKETS};
    let mut out = String::new();
    for f in 0..family_count() {
        let mut buckets = [0u64; BUCKETS];
        for core in 0..sh.latency.cores() {
            if let Some(h) = sh.latency.histogram(core, f) {
                for (b, n) in buckets.iter_mut().zip(h.snapshot().buckets) {
                    *b += n;
                }
            }
        }
        let total: u64 = buckets.iter().sum();
        if total == 0 {
            continue;
        }
        let pct = |p: f64| -> String {
            let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, n) in buckets.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return match BOUNDS_NS.get(i) {
                        Some(ns) => format!("{:.3}", *ns as f64 / 1000.0),
                        None => "inf".to_string(),
                    };
                }
            }
            "inf".to_string()
        };
        let _ = write!(
            out,
            "latency_percentiles_usec_{}:p50={},p99={},p99.9={}\r\n",
            family_name(f),
            pct(50.0),
            pct(99.0),
            pct(99.9)
        );
    }
    out
}
