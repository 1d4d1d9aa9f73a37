//! Scenarios 1-4: lease vs ReadIndex, leasekv vs redis-server, leasekv vs etcd, and the
//! cross-core hop.

use super::ctx::{rate_name, Ctx};
use super::model::ScenarioResult;
use super::plots;
use super::servers::{Etcd, Leasekv, Redis};
use crate::config::{KeyTag, Protocol};
use crate::report::LoadReport;
use std::net::SocketAddr;

/// Targets and per-target tags so that every request goes to the leader of its key's
/// shard group (one group per leading node): no forwarding.
fn at_leaders(lk: &Leasekv) -> Result<(Vec<SocketAddr>, KeyTag), String> {
    let tags = lk.leader_tags()?;
    let targets = tags.iter().map(|(i, _)| lk.nodes[*i].client).collect();
    let tags = tags.into_iter().map(|(_, t)| t).collect();
    Ok((targets, KeyTag::PerTarget(tags)))
}

fn curves(ctx: &Ctx, sc: &mut ScenarioResult, file: &str, title: &str, names: &[(&str, String)]) {
    let runs: Vec<(String, &LoadReport)> = names
        .iter()
        .filter_map(|(label, n)| sc.run(n).map(|r| (label.to_string(), &r.report)))
        .collect();
    let (path, rel) = ctx.plot_path(sc, file);
    match plots::percentile_curves(&path, title, &runs) {
        Ok(()) => sc.plots.push(rel),
        Err(e) => sc.notes.push(format!("plot {rel} failed: {e}")),
    }
}

/// 1. GET on a three-node cluster: read_mode=lease vs read_mode=readindex.
pub fn s1(ctx: &mut Ctx, sc: &mut ScenarioResult) -> Result<(), String> {
    let rates = ctx.plan.s1_rates.clone();
    sc.setup = format!(
        "3 leasekv nodes on loopback, each with executors on CPUs {:?}; a fresh cluster per read \
         mode. GET only, {} keys preloaded, {} connections (1 request in flight each) spread \
         over the nodes that lead a shard group, every key hash-tagged into a group its target \
         leads (no forwarding). Open loop at {:?} ops/s; {} s warm-up + {} s measured per rate.",
        ctx.server_cores,
        ctx.plan.keys,
        ctx.plan.connections,
        rates,
        ctx.plan.warmup_secs,
        ctx.plan.duration_secs
    );
    for mode in ["lease", "readindex"] {
        let lk = ctx.start_leasekv(3, mode)?;
        let (targets, tag) = at_leaders(&lk)?;
        for (i, &rate) in rates.iter().enumerate() {
            let mut cfg = ctx.load(&targets, Some(rate), 1.0);
            cfg.key_tag = tag.clone();
            cfg.preload = i == 0;
            let name = format!("{mode} GET {}", rate_name(rate));
            ctx.run(
                sc,
                &name,
                "leasekv",
                &format!("read_mode={mode}"),
                "GET",
                &cfg,
                Some(&lk),
            )?;
            if let Some(c) = sc.run(&name).and_then(|r| r.counters) {
                if mode == "lease" {
                    sc.fact(
                        &format!("lease_hit_ratio {}", rate_name(rate)),
                        c.hit_ratio(),
                    );
                }
                sc.fact(
                    &format!("{mode} readindex_rounds {}", rate_name(rate)),
                    c.readindex_done,
                );
                sc.fact(
                    &format!("{mode} leader_changes {}", rate_name(rate)),
                    c.leader_changes,
                );
            }
        }
        drop(lk);
    }
    for &rate in &rates {
        let r = rate_name(rate);
        sc.compare(
            &format!("GET at {r}: lease / readindex"),
            &format!("lease GET {r}"),
            &format!("readindex GET {r}"),
        );
    }
    if let Some(&top) = rates.last() {
        let r = rate_name(top);
        curves(
            ctx,
            sc,
            "percentiles",
            &format!("GET latency by percentile at {r}, 3 nodes"),
            &[
                ("read_mode=lease", format!("lease GET {r}")),
                ("read_mode=readindex", format!("readindex GET {r}")),
            ],
        );
    }
    Ok(())
}

/// 2. GET/SET against redis-server at the same offered rates.
pub fn s2(ctx: &mut Ctx, sc: &mut ScenarioResult) -> Result<(), String> {
    let Some(redis_bin) = ctx.redis_bin.clone() else {
        return Err(super::SKIP_REDIS.into());
    };
    let rates = ctx.plan.s2_rates.clone();
    sc.setup = format!(
        "One leasekv node (executors on CPUs {:?}, every write fsynced before it is answered) \
         vs redis-server without persistence (the usual in-memory reference) and redis-server \
         with appendonly yes + appendfsync always (fsync per write, leasekv's durability). \
         GET ({} keys preloaded) and SET (64 B values) runs, {} connections, open loop at \
         {:?} ops/s; {} s warm-up + {} s measured.",
        ctx.server_cores,
        ctx.plan.keys,
        ctx.plan.connections,
        rates,
        ctx.plan.warmup_secs,
        ctx.plan.duration_secs
    );
    let systems: [(&str, Option<bool>); 3] = [
        ("leasekv", None),
        ("redis", Some(false)),
        ("redis-aof", Some(true)),
    ];
    for (sys, aof) in systems {
        let (target, _guard_lk, _guard_redis) = match aof {
            None => {
                let lk = ctx.start_leasekv(1, "lease")?;
                (lk.nodes[0].client, Some(lk), None)
            }
            Some(aof) => {
                let dir = ctx.fresh_dir(sys)?;
                eprintln!("  starting redis-server (appendfsync always: {aof})");
                let r = Redis::start(&redis_bin, aof, &mut ctx.ports, &dir)?;
                (r.addr, None, Some(r))
            }
        };
        let system = if aof.is_some() {
            "redis-server"
        } else {
            "leasekv"
        };
        let variant = match aof {
            None => "1 node",
            Some(false) => "no persistence",
            Some(true) => "appendfsync always",
        };
        for (op, read) in [("GET", 1.0), ("SET", 0.0)] {
            for (i, &rate) in rates.iter().enumerate() {
                let mut cfg = ctx.load(&[target], Some(rate), read);
                cfg.preload = op == "GET" && i == 0;
                let name = format!("{sys} {op} {}", rate_name(rate));
                ctx.run(sc, &name, system, variant, op, &cfg, None)?;
            }
        }
    }
    for &rate in &rates {
        let r = rate_name(rate);
        for op in ["GET", "SET"] {
            sc.compare(
                &format!("{op} at {r}: leasekv / redis-server (no persistence)"),
                &format!("leasekv {op} {r}"),
                &format!("redis {op} {r}"),
            );
            sc.compare(
                &format!("{op} at {r}: leasekv / redis-server (appendfsync always)"),
                &format!("leasekv {op} {r}"),
                &format!("redis-aof {op} {r}"),
            );
        }
    }
    if let Some(&top) = rates.last() {
        let r = rate_name(top);
        for op in ["GET", "SET"] {
            curves(
                ctx,
                sc,
                &format!("{}-percentiles", op.to_lowercase()),
                &format!("{op} latency by percentile at {r}, single node"),
                &[
                    ("leasekv", format!("leasekv {op} {r}")),
                    ("redis-server", format!("redis {op} {r}")),
                    (
                        "redis-server appendfsync always",
                        format!("redis-aof {op} {r}"),
                    ),
                ],
            );
        }
    }
    Ok(())
}

/// 3. Replicated durable writes and linearizable reads: leasekv 3 nodes vs etcd 3 members.
pub fn s3(ctx: &mut Ctx, sc: &mut ScenarioResult) -> Result<(), String> {
    let Some(etcd_bin) = ctx.etcd_bin.clone() else {
        return Err(super::SKIP_ETCD.into());
    };
    let rates = ctx.plan.s3_rates.clone();
    let conns = ctx.plan.s3_connections;
    sc.setup = format!(
        "3 leasekv nodes (read_mode=lease, fsync per write batch) vs a 3-member etcd {} cluster \
         (fsync on, the default), all on loopback. SET vs etcd put (64 B values), and GET vs \
         etcd linearizable range (serializable=false) over {} preloaded keys. Load at the \
         leaders: leasekv keys hash-tagged into groups led by their target node; etcd requests \
         to the etcd leader. etcd is driven through its gRPC-gateway JSON API (POST \
         /v3/kv/put, /v3/kv/range) on keep-alive HTTP/1.1 connections. {conns} connections, \
         1 request in flight each, open loop at {:?} ops/s; {} s warm-up + {} s measured.",
        super::machine_version_short(&etcd_bin),
        ctx.plan.keys,
        rates,
        ctx.plan.warmup_secs,
        ctx.plan.duration_secs
    );
    {
        let lk = ctx.start_leasekv(3, "lease")?;
        let (targets, tag) = at_leaders(&lk)?;
        for (op, read) in [("SET", 0.0), ("GET", 1.0)] {
            for (i, &rate) in rates.iter().enumerate() {
                let mut cfg = ctx.load(&targets, Some(rate), read);
                cfg.connections = conns.max(targets.len());
                cfg.key_tag = tag.clone();
                cfg.preload = op == "GET" && i == 0;
                let name = format!("leasekv {op} {}", rate_name(rate));
                ctx.run(sc, &name, "leasekv", "3 nodes, lease", op, &cfg, Some(&lk))?;
            }
        }
    }
    {
        let dir = ctx.fresh_dir("etcd")?;
        eprintln!("  starting etcd: 3 members");
        let etcd = Etcd::start(&etcd_bin, 3, &mut ctx.ports, &dir)?;
        let leader = etcd.leader()?;
        let target = etcd.clients[leader];
        for (op, read) in [("put", 0.0), ("range", 1.0)] {
            for (i, &rate) in rates.iter().enumerate() {
                let mut cfg = ctx.load(&[target], Some(rate), read);
                cfg.connections = conns;
                cfg.protocol = Protocol::Etcd;
                cfg.preload = op == "range" && i == 0;
                let name = format!("etcd {op} {}", rate_name(rate));
                ctx.run(sc, &name, "etcd", "3 members", op, &cfg, None)?;
            }
        }
    }
    for &rate in &rates {
        let r = rate_name(rate);
        sc.compare(
            &format!("durable write at {r}: leasekv SET / etcd put"),
            &format!("leasekv SET {r}"),
            &format!("etcd put {r}"),
        );
        sc.compare(
            &format!("linearizable read at {r}: leasekv GET / etcd range"),
            &format!("leasekv GET {r}"),
            &format!("etcd range {r}"),
        );
    }
    if let Some(&top) = rates.last() {
        let r = rate_name(top);
        curves(
            ctx,
            sc,
            "percentiles",
            &format!("3 nodes vs 3 etcd members at {r}"),
            &[
                ("leasekv SET", format!("leasekv SET {r}")),
                ("etcd put", format!("etcd put {r}")),
                ("leasekv GET", format!("leasekv GET {r}")),
                ("etcd range", format!("etcd range {r}")),
            ],
        );
    }
    Ok(())
}

/// 4. Cross-core hop: keys owned by the connection's core vs by the other core.
pub fn s4(ctx: &mut Ctx, sc: &mut ScenarioResult) -> Result<(), String> {
    if ctx.server_cores.len() < 2 {
        return Err(format!(
            "{}: the server needs at least 2 cores (--server-cores)",
            super::SKIP_PREFIX
        ));
    }
    let rate = ctx.plan.s4_rate;
    sc.setup = format!(
        "One leasekv node with executors on CPUs {:?}. The kernel spreads connections over \
         the cores (SO_REUSEPORT); after connecting, each load connection finds its core \
         (INFO leasekv command counters around 64 PINGs) and uses keys hash-tagged into a \
         shard group owned by that core (own) or by the other core (other: every request \
         hops to the other executor and back). SET runs first (they also fill the keys), then \
         GET; {} connections, {} keys, open loop at {rate} ops/s; {} s warm-up + {} s measured.",
        ctx.server_cores,
        ctx.plan.connections,
        ctx.plan.keys,
        ctx.plan.warmup_secs,
        ctx.plan.duration_secs
    );
    let lk = ctx.start_leasekv(1, "lease")?;
    let target = lk.nodes[0].client;
    for (op, read) in [("SET", 0.0), ("GET", 1.0)] {
        for (which, tag) in [("own", KeyTag::OwnCore), ("other", KeyTag::OtherCore)] {
            let mut cfg = ctx.load(&[target], Some(rate), read);
            cfg.key_tag = tag;
            let name = format!("{op} {which} core");
            ctx.run(
                sc,
                &name,
                "leasekv",
                &format!("{which} core"),
                op,
                &cfg,
                None,
            )?;
        }
    }
    drop(lk);
    for op in ["SET", "GET"] {
        sc.compare(
            &format!("{op}: other core / own core"),
            &format!("{op} other core"),
            &format!("{op} own core"),
        );
        if let (Some(o), Some(m)) = (
            sc.run(&format!("{op} other core")),
            sc.run(&format!("{op} own core")),
        ) {
            let hop = o.report.latency.all.p50_us - m.report.latency.all.p50_us;
            sc.fact(&format!("{op} hop cost p50 (us)"), hop);
        }
    }
    curves(
        ctx,
        sc,
        "percentiles",
        &format!("Cross-core hop at {}", rate_name(rate)),
        &[
            ("GET own core", "GET own core".to_string()),
            ("GET other core", "GET other core".to_string()),
            ("SET own core", "SET own core".to_string()),
            ("SET other core", "SET other core".to_string()),
        ],
    );
    Ok(())
}
