//! Scrape-time exposition: the atomics of `Shared` are copied into a plain [`Snapshot`], which
//! a fresh `prometheus-client` registry encodes as OpenMetrics text.
//!
//! Why a fresh registry per scrape rather than long-lived prometheus-client metrics: the
//! counters already exist as atomics in `Shared` (INFO reads the same ones), so mirroring them
//! into a second set of metrics would mean double bookkeeping on the request path. Copying
//! them once per scrape costs a few hundred relaxed loads on core 0 and nothing elsewhere, and
//! the snapshot is plain data, so the encoding is testable without a running server.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::histogram::{family_count, family_name, HistogramSnapshot, Latency, BOUNDS_NS};
use crate::core::{CoreStats, GroupStats, Shared};

/// One core's counters at scrape time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreSample {
    pub connected_clients: u64,
    pub total_connections: u64,
    pub rejected_connections: u64,
    pub commands: u64,
    pub protocol_errors: u64,
    pub hops_sent: u64,
    pub hops_received: u64,
    pub wal_syncs: u64,
    pub wal_bytes: u64,
    pub compactions: u64,
    pub expired_keys: u64,
}

/// One shard group's state at scrape time, as published by its owner core.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupSample {
    pub group: u32,
    /// Index of the core owning the group.
    pub core: usize,
    pub keys: u64,
    pub expires: u64,
    pub term: u64,
    pub applied: u64,
    pub commit: u64,
    pub leader: bool,
    pub leader_id: u64,
    pub lease_hits: u64,
    pub lease_misses: u64,
    pub lease_remaining_ms: u64,
    pub lease_invalidations: u64,
    /// Invalidations by reason, in `shards::lease::Invalidation::ALL` order.
    pub lease_invalidations_by_reason: [u64; 6],
    pub read_errors: u64,
    pub readindex_done: u64,
    pub readindex_ns_total: u64,
    pub leader_changes: u64,
}

/// One (core, command family) latency histogram with at least one observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencySample {
    pub core: usize,
    pub command: &'static str,
    pub histogram: HistogramSnapshot,
}

/// Everything one scrape reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub node: u64,
    pub uptime_seconds: f64,
    pub cores: Vec<CoreSample>,
    pub groups: Vec<GroupSample>,
    pub latency: Vec<LatencySample>,
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl Snapshot {
    pub fn take(shared: &Shared) -> Snapshot {
        let groups = shared.routing.groups();
        Snapshot::from_parts(
            shared.config.node_id,
            shared.started.elapsed().as_secs_f64(),
            &shared.core_stats,
            &shared.group_stats,
            // Every group id below `groups()` is in range for the routing table.
            |g| (g < groups).then(|| shared.routing.core_of_group(g)),
            &shared.latency,
        )
    }

    /// Reads the counters. `core_of_group(g)` is None for a group id the routing does not
    /// know (its stats are then skipped).
    pub fn from_parts(
        node: u64,
        uptime_seconds: f64,
        core_stats: &[CoreStats],
        group_stats: &[GroupStats],
        core_of_group: impl Fn(u32) -> Option<usize>,
        latency: &Latency,
    ) -> Snapshot {
        let cores = core_stats
            .iter()
            .map(|s| CoreSample {
                connected_clients: load(&s.connected_clients),
                total_connections: load(&s.total_connections),
                rejected_connections: load(&s.rejected_connections),
                commands: load(&s.commands),
                protocol_errors: load(&s.protocol_errors),
                hops_sent: load(&s.hops_sent),
                hops_received: load(&s.hops_received),
                wal_syncs: load(&s.wal_syncs),
                wal_bytes: load(&s.wal_bytes),
                compactions: load(&s.compactions),
                expired_keys: load(&s.expired_keys),
            })
            .collect();
        let groups = group_stats
            .iter()
            .enumerate()
            .filter_map(|(g, s)| {
                let group = u32::try_from(g).ok()?;
                Some(GroupSample {
                    group,
                    core: core_of_group(group)?,
                    // Acquire pairs with the driver's Release: acknowledged writes are counted.
                    keys: s.keys.load(Ordering::Acquire),
                    expires: s.expires.load(Ordering::Acquire),
                    term: load(&s.term),
                    applied: load(&s.applied),
                    commit: load(&s.commit),
                    leader: s.leader.load(Ordering::Relaxed),
                    leader_id: load(&s.leader_id),
                    lease_hits: load(&s.lease_hits),
                    lease_misses: load(&s.lease_misses),
                    lease_remaining_ms: load(&s.lease_remaining_ms),
                    lease_invalidations: load(&s.lease_invalidations),
                    lease_invalidations_by_reason: std::array::from_fn(|i| {
                        load(&s.lease_invalidations_by_reason[i])
                    }),
                    read_errors: load(&s.read_errors),
                    readindex_done: load(&s.readindex_done),
                    readindex_ns_total: load(&s.readindex_ns_total),
                    leader_changes: load(&s.leader_changes),
                })
            })
            .collect();
        let mut samples = Vec::new();
        for core in 0..latency.cores() {
            for family in 0..family_count() {
                let Some(h) = latency.histogram(core, family) else {
                    continue;
                };
                let histogram = h.snapshot();
                // Only commands seen on this core: ~50 families x cores x 22 lines otherwise.
                if histogram.count() > 0 {
                    samples.push(LatencySample {
                        core,
                        command: family_name(family),
                        histogram,
                    });
                }
            }
        }
        Snapshot {
            node,
            uptime_seconds,
            cores,
            groups,
            latency: samples,
        }
    }

    /// The OpenMetrics text exposition (ends with `# EOF`).
    pub fn encode(self) -> Result<String, fmt::Error> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
        Ok(out)
    }
}

/// Renders the current metrics of this node.
pub fn render(shared: &Shared) -> Result<String, fmt::Error> {
    Snapshot::take(shared).encode()
}

type NodeLabels = [(&'static str, u64); 1];
type CoreLabels = [(&'static str, u64); 2];
type GroupLabels = [(&'static str, u64); 3];

/// A metric read from one kind of sample: (name, help, unit, type, value).
type Def<S> = (
    &'static str,
    &'static str,
    Option<Unit>,
    MetricType,
    fn(&S) -> u64,
);

/// Encodes `def` for every (labels, sample) row; a type other than counter is a gauge.
fn emit<'a, L: EncodeLabelSet, S: 'a>(
    enc: &mut DescriptorEncoder,
    def: &Def<S>,
    rows: impl Iterator<Item = (L, &'a S)>,
) -> fmt::Result {
    let (name, help, unit, kind, get) = def;
    let values = rows.map(|(labels, s)| (labels, get(s)));
    match kind {
        MetricType::Counter => counter(enc, name, help, unit.as_ref(), values),
        _ => gauge(enc, name, help, unit.as_ref(), values),
    }
}

fn counter<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut family = enc.encode_descriptor(name, help, unit, MetricType::Counter)?;
    for (labels, value) in rows {
        family
            .encode_family(&labels)?
            .encode_counter::<NoLabelSet, u64, u64>(&value, None)?;
    }
    Ok(())
}

fn gauge<L: EncodeLabelSet, V: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: impl IntoIterator<Item = (L, V)>,
) -> fmt::Result {
    let mut family = enc.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in rows {
        family.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

impl Snapshot {
    fn core_labels(&self, core: usize) -> CoreLabels {
        [("node", self.node), ("core", core as u64)]
    }

    fn group_labels(&self, g: &GroupSample) -> GroupLabels {
        [
            ("node", self.node),
            ("core", g.core as u64),
            ("group", u64::from(g.group)),
        ]
    }

    fn encode_cores(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        use MetricType::{Counter, Gauge};
        #[rustfmt::skip]
        let defs: [Def<CoreSample>; 11] = [
            ("leasekv_commands", "Commands run, by the core that parsed them.", None, Counter, |c| c.commands),
            ("leasekv_connected_clients", "Client connections currently open.", None, Gauge, |c| c.connected_clients),
            ("leasekv_connections", "Client connections accepted.", None, Counter, |c| c.total_connections),
            ("leasekv_rejected_connections", "Client connections refused (limits.max_clients).", None, Counter, |c| c.rejected_connections),
            ("leasekv_protocol_errors", "Connections closed for a RESP protocol error.", None, Counter, |c| c.protocol_errors),
            ("leasekv_hops_sent", "Requests forwarded to another core.", None, Counter, |c| c.hops_sent),
            ("leasekv_hops_received", "Requests served for another core.", None, Counter, |c| c.hops_received),
            ("leasekv_wal_syncs", "WAL fsyncs.", None, Counter, |c| c.wal_syncs),
            ("leasekv_wal_written", "Bytes appended to the WAL.", Some(Unit::Bytes), Counter, |c| c.wal_bytes),
            ("leasekv_wal_compactions", "WAL compactions into group snapshots.", None, Counter, |c| c.compactions),
            ("leasekv_expired_keys", "Keys deleted because their TTL passed.", None, Counter, |c| c.expired_keys),
        ];
        for def in &defs {
            let rows = self
                .cores
                .iter()
                .enumerate()
                .map(|(i, c)| (self.core_labels(i), c));
            emit(enc, def, rows)?;
        }
        Ok(())
    }

    fn encode_groups(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        use MetricType::{Counter, Gauge};
        #[rustfmt::skip]
        let defs: [Def<GroupSample>; 10] = [
            ("leasekv_group_keys", "Keys in the shard group.", None, Gauge, |g| g.keys),
            ("leasekv_group_expiring_keys", "Keys with a TTL in the shard group.", None, Gauge, |g| g.expires),
            ("leasekv_group_term", "Raft term of the shard group.", None, Gauge, |g| g.term),
            ("leasekv_group_commit_index", "Raft commit index of the shard group.", None, Gauge, |g| g.commit),
            ("leasekv_group_applied_index", "Raft applied index of the shard group.", None, Gauge, |g| g.applied),
            ("leasekv_group_is_leader", "1 when this node leads the shard group.", None, Gauge, |g| u64::from(g.leader)),
            ("leasekv_group_leader_id", "Node id of the group's leader as known here (0: unknown).", None, Gauge, |g| g.leader_id),
            ("leasekv_lease_invalidations", "Read leases dropped early (step-down, transfer, removal, errors).", None, Counter, |g| g.lease_invalidations),
            ("leasekv_readindex_rounds", "ReadIndex rounds completed (reads that could not use a lease).", None, Counter, |g| g.readindex_done),
            ("leasekv_leader_changes", "Times this node became or stopped being the group's leader.", None, Counter, |g| g.leader_changes),
        ];
        for def in &defs {
            let rows = self.groups.iter().map(|g| (self.group_labels(g), g));
            emit(enc, def, rows)?;
        }
        let mut reads = enc.encode_descriptor(
            "leasekv_lease_reads",
            "Linearizable reads served on the leader's lease (hit) or through ReadIndex (miss).",
            None,
            MetricType::Counter,
        )?;
        for g in &self.groups {
            for (outcome, value) in [
                ("hit", g.lease_hits),
                ("miss", g.lease_misses),
                ("error", g.read_errors),
            ] {
                let labels = (self.group_labels(g), [("outcome", outcome)]);
                reads
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, u64, u64>(&value, None)?;
            }
        }
        let mut by_reason = enc.encode_descriptor(
            "leasekv_lease_invalidations_by_reason",
            "Read leases dropped early, by reason.",
            None,
            MetricType::Counter,
        )?;
        for g in &self.groups {
            for (reason, value) in shards::lease::Invalidation::ALL
                .iter()
                .zip(g.lease_invalidations_by_reason)
            {
                let labels = (self.group_labels(g), [("reason", reason.as_str())]);
                by_reason
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, u64, u64>(&value, None)?;
            }
        }
        let wait = self.groups.iter().map(|g| {
            let secs = g.readindex_ns_total as f64 / 1e9;
            (self.group_labels(g), secs)
        });
        gauge(
            enc,
            "leasekv_readindex_wait_seconds_sum",
            "Total time reads waited for ReadIndex (divide by leasekv_readindex_rounds_total for the mean).",
            None,
            wait,
        )?;
        let remaining = self.groups.iter().map(|g| {
            let secs = g.lease_remaining_ms as f64 / 1000.0;
            (self.group_labels(g), secs)
        });
        gauge(
            enc,
            "leasekv_lease_remaining",
            "Time left on the leader's read lease (0: none).",
            Some(&Unit::Seconds),
            remaining,
        )
    }

    fn encode_latency(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let mut family = enc.encode_descriptor(
            "leasekv_request_duration",
            "Time from parsing a command to encoding its reply, per core and command.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for s in &self.latency {
            let h = &s.histogram;
            let buckets: Vec<(f64, u64)> = BOUNDS_NS
                .iter()
                .map(|&ns| ns as f64 / 1e9)
                .chain([f64::INFINITY])
                .zip(h.buckets)
                .collect();
            let labels = (self.core_labels(s.core), [("command", s.command)]);
            family
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(h.sum_ns as f64 / 1e9, h.count(), &buckets, None)?;
        }
        Ok(())
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let node: NodeLabels = [("node", self.node)];
        gauge(
            &mut enc,
            "leasekv_uptime",
            "Time since the process started.",
            Some(&Unit::Seconds),
            [(node, self.uptime_seconds)],
        )?;
        self.encode_cores(&mut enc)?;
        self.encode_groups(&mut enc)?;
        self.encode_latency(&mut enc)
    }
}
