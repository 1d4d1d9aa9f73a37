//! The result of a run: serde types for the JSON file, the validity verdict, and the text
//! report.

use crate::config::LoadConfig;
use crate::stats::{LatencySummary, SeriesSample, Stats};
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoopMode {
    /// Every connection keeps `pipeline` requests in flight; latency from the actual send.
    Closed,
    /// Requests follow a fixed schedule; latency from the intended send time.
    Open,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latencies {
    pub all: LatencySummary,
    pub read: LatencySummary,
    pub write: LatencySummary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerReport {
    pub worker: usize,
    /// CPU the worker was pinned to.
    pub cpu: Option<usize>,
    pub connections: usize,
    /// Thread CPU time / wall time over the run, minus deliberate polling (`spin`).
    pub cpu_busy: f64,
    /// Fraction of the run spent polling before scheduled sends (`--spin-us`).
    pub spin: f64,
    /// Time spent runnable but waiting for a CPU / wall time (from /proc schedstat).
    pub run_queue_wait: Option<f64>,
}

/// What the own-core/other-core probe found for one connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreProbe {
    pub connection: usize,
    /// Index of the server core serving the connection.
    pub core: usize,
    /// Hash tag the connection's keys use.
    pub tag: String,
}

/// Everything a run measured. Latencies are in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    pub tool: String,
    /// The exact command line (filled by the CLI; empty when run in-process).
    pub command_line: Vec<String>,
    pub config: LoadConfig,
    pub mode: LoopMode,
    /// False when the generator itself, not the server, limited the measurement.
    pub valid: bool,
    pub invalid_reasons: Vec<String>,
    pub warnings: Vec<String>,
    /// Length of the measured window (requests whose start lies in it are counted).
    pub measured_secs: f64,
    pub offered_rate: Option<f64>,
    /// Requests started in the window that got an answer (success or error reply), per second.
    pub achieved_rate: f64,
    /// Successful requests per second.
    pub throughput: f64,
    pub ops: u64,
    pub reads: u64,
    pub writes: u64,
    pub errors_total: u64,
    /// Error counts by kind: `server:<PREFIX>`, `timeout`, `connection`, `protocol`, `unsent`.
    pub errors: BTreeMap<String, u64>,
    pub latency: Latencies,
    /// Open loop: actual minus intended send time.
    pub schedule_lag: Option<LatencySummary>,
    /// Open loop: the part of the send delay that was the generator's own.
    pub generator_lag: Option<LatencySummary>,
    /// Open loop: most requests one connection had overdue at once.
    pub max_backlog: u64,
    pub reconnects: u64,
    pub connect_failures: u64,
    pub workers: Vec<WorkerReport>,
    pub time_series: Vec<SeriesSample>,
    /// HdrHistogram interval log (V2 deflate, base64) of the measured window, values in ns,
    /// tags `all`, `read`, `write`: readable by HdrHistogram's log tools.
    pub hdr_log: String,
    /// Wall-clock time of the run's start (t0, the start of the warm-up), ms since the
    /// Unix epoch: lines the time series up with outside events (0 in unit tests).
    #[serde(default)]
    pub started_unix_ms: f64,
    /// Own-core/other-core runs: each connection's core and tag.
    #[serde(default)]
    pub core_probes: Vec<CoreProbe>,
}

/// Decides whether the run measured the server, not the generator. Returns
/// (reasons it is invalid, warnings).
///
/// Invalid when:
/// - open loop, and the p99 of the generator lag (send time minus the time the request
///   could have been sent: its intended time, a free pipeline slot and a live connection
///   all given) exceeds `max_generator_lag_us`. Delay caused by the server (pipeline full,
///   reconnecting) is excluded from that lag, so this fires when the generator's timers,
///   CPU or scheduling made it late, which would inflate every latency measured from the
///   intended time;
/// - any worker thread used more than `max_generator_cpu` of a CPU: it was saturated, so
///   replies waited in its socket buffers (and in open loop, a full pipeline blamed on the
///   server may have been the generator's slow reading);
/// - nothing was measured.
pub fn assess_validity(
    config: &LoadConfig,
    stats: &Stats,
    workers: &[WorkerReport],
    measured_secs: f64,
) -> (Vec<String>, Vec<String>) {
    let mut reasons = Vec::new();
    let mut warnings = Vec::new();
    if config.is_open_loop() && !stats.generator_lag.is_empty() {
        let p99_us = stats.generator_lag.value_at_quantile(0.99) as f64 / 1000.0;
        if p99_us > config.max_generator_lag_us as f64 {
            reasons.push(format!(
                "generator fell behind its own schedule: p99 generator lag {p99_us:.0} us > \
                 {} us allowed (add --threads / CPUs, or lower --rate)",
                config.max_generator_lag_us
            ));
        }
    }
    if config.is_open_loop() && config.spin_us == 0 && !stats.generator_lag.is_empty() {
        let p50_us = stats.generator_lag.value_at_quantile(0.5) as f64 / 1000.0;
        if p50_us > 20.0 {
            warnings.push(format!(
                "the generator's wake-up delay adds ~{p50_us:.0} us (p50) to the latencies; \
                 --spin-us 200 removes most of it at the cost of CPU"
            ));
        }
    }
    for w in workers {
        if w.cpu_busy > config.max_generator_cpu {
            reasons.push(format!(
                "worker {} was CPU-bound ({:.0}% busy > {:.0}% allowed): the generator, not \
                 the server, may be the bottleneck (add --threads / CPUs)",
                w.worker,
                w.cpu_busy * 100.0,
                config.max_generator_cpu * 100.0
            ));
        }
        if let Some(wait) = w.run_queue_wait.filter(|&x| x > 0.05) {
            warnings.push(format!(
                "worker {} waited for a CPU {:.1}% of the run (machine oversubscribed)",
                w.worker,
                wait * 100.0
            ));
        }
    }
    let answered = stats.ok() + stats.error_replies;
    if answered == 0 {
        reasons.push("no request started in the measured window got an answer".into());
    }
    if let Some(rate) = config.rate {
        let achieved = answered as f64 / measured_secs;
        if achieved < 0.9 * rate {
            warnings.push(format!(
                "server did not keep up: achieved {achieved:.0} of {rate:.0} offered ops/s \
                 (latencies include the queueing)"
            ));
        }
    }
    let errors = stats.errors_total();
    if errors > 0 {
        warnings.push(format!("{errors} requests failed"));
    }
    (reasons, warnings)
}

/// HdrHistogram interval log of the whole-window histograms.
fn hdr_log(stats: &Stats, measured_secs: f64) -> Result<String, String> {
    let mut buf = Vec::new();
    let mut ser = V2DeflateSerializer::new();
    let mut w = IntervalLogWriterBuilder::new()
        .add_comment("leasekv-bench latencies in ns (measured window)")
        .with_max_value_divisor(1000.0)
        .begin_log_with(&mut buf, &mut ser)
        .map_err(|e| e.to_string())?;
    let len = Duration::from_secs_f64(measured_secs.max(0.0));
    for (tag, h) in [
        ("all", &stats.all),
        ("read", &stats.read),
        ("write", &stats.write),
    ] {
        w.write_histogram(h, Duration::ZERO, len, Tag::new(tag))
            .map_err(|e| format!("{e:?}"))?;
    }
    String::from_utf8(buf).map_err(|e| e.to_string())
}

/// Builds the report from merged measurements.
pub fn build_report(
    config: &LoadConfig,
    stats: &Stats,
    workers: Vec<WorkerReport>,
    measured_secs: f64,
) -> LoadReport {
    let (invalid_reasons, mut warnings) = assess_validity(config, stats, &workers, measured_secs);
    let open = config.is_open_loop();
    let per_sec = |n: u64| {
        if measured_secs > 0.0 {
            n as f64 / measured_secs
        } else {
            0.0
        }
    };
    let hdr = hdr_log(stats, measured_secs).unwrap_or_else(|e| {
        warnings.push(format!("could not encode the HDR log: {e}"));
        String::new()
    });
    LoadReport {
        tool: concat!("leasekv-bench ", env!("CARGO_PKG_VERSION")).to_string(),
        command_line: Vec::new(),
        config: config.clone(),
        mode: if open {
            LoopMode::Open
        } else {
            LoopMode::Closed
        },
        valid: invalid_reasons.is_empty(),
        invalid_reasons,
        warnings,
        measured_secs,
        offered_rate: config.rate,
        achieved_rate: per_sec(stats.ok() + stats.error_replies),
        throughput: per_sec(stats.ok()),
        ops: stats.ok(),
        reads: stats.read.len(),
        writes: stats.write.len(),
        errors_total: stats.errors_total(),
        errors: stats.errors.clone(),
        latency: Latencies {
            all: LatencySummary::from_ns(&stats.all),
            read: LatencySummary::from_ns(&stats.read),
            write: LatencySummary::from_ns(&stats.write),
        },
        schedule_lag: open.then(|| LatencySummary::from_ns(&stats.schedule_lag)),
        generator_lag: open.then(|| LatencySummary::from_ns(&stats.generator_lag)),
        max_backlog: stats.max_backlog,
        reconnects: stats.reconnects,
        connect_failures: stats.connect_failures,
        workers,
        time_series: stats.series.samples(),
        hdr_log: hdr,
        started_unix_ms: 0.0,
        core_probes: Vec::new(),
    }
}

fn row(out: &mut String, name: &str, s: &LatencySummary) {
    let _ = writeln!(
        out,
        "  {name:<8} {:>10} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
        s.count, s.p50_us, s.p90_us, s.p99_us, s.p999_us, s.p9999_us, s.max_us
    );
}

impl LoadReport {
    /// Human-readable summary (what the CLI prints).
    pub fn render_text(&self) -> String {
        let c = &self.config;
        let mut out = String::new();
        let mode = match self.offered_rate {
            Some(r) => format!("open loop at {r:.0} ops/s"),
            None => "closed loop".to_string(),
        };
        let _ = writeln!(
            out,
            "{}: {mode}, {} connections on {} threads, pipeline {}, targets {}",
            self.tool,
            c.connections,
            c.threads,
            c.pipeline,
            c.targets.join(",")
        );
        let _ = writeln!(
            out,
            "measured {:.1} s after {:.1} s warm-up; {} keys ({}), {} B values, {:.0}% reads",
            self.measured_secs,
            c.warmup_secs,
            c.keys,
            c.distribution,
            c.value_size,
            c.read_ratio * 100.0
        );
        let _ = writeln!(out, "throughput  {:.1} ops/s", self.throughput);
        match self.offered_rate {
            Some(r) => {
                let _ = writeln!(
                    out,
                    "achieved    {:.1} ops/s of {r:.1} offered ({:.1}%)",
                    self.achieved_rate,
                    100.0 * self.achieved_rate / r
                );
            }
            None => {
                let _ = writeln!(out, "achieved    {:.1} ops/s", self.achieved_rate);
            }
        }
        let _ = write!(out, "errors      {}", self.errors_total);
        for (k, v) in &self.errors {
            let _ = write!(out, "  {k}={v}");
        }
        let _ = writeln!(
            out,
            "  (reconnects {}, failed connects {})",
            self.reconnects, self.connect_failures
        );
        let _ = writeln!(
            out,
            "latency us  {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "count", "p50", "p90", "p99", "p99.9", "p99.99", "max"
        );
        row(&mut out, "all", &self.latency.all);
        row(&mut out, "read", &self.latency.read);
        row(&mut out, "write", &self.latency.write);
        if let (Some(s), Some(g)) = (&self.schedule_lag, &self.generator_lag) {
            let _ = writeln!(
                out,
                "send lag us (open loop; included in the latencies above)"
            );
            row(&mut out, "schedule", s);
            row(&mut out, "generatr", g);
            let _ = writeln!(
                out,
                "  max backlog {} requests on one connection",
                self.max_backlog
            );
        }
        for w in &self.workers {
            let _ = writeln!(
                out,
                "worker {} cpu {} connections {} busy {:.0}% spin {:.0}% run-queue wait {}",
                w.worker,
                w.cpu.map_or("-".to_string(), |c| c.to_string()),
                w.connections,
                w.cpu_busy * 100.0,
                w.spin * 100.0,
                w.run_queue_wait
                    .map_or("n/a".to_string(), |x| format!("{:.1}%", x * 100.0))
            );
        }
        for wmsg in &self.warnings {
            let _ = writeln!(out, "warning: {wmsg}");
        }
        if self.valid {
            let _ = writeln!(out, "VALID run");
        } else {
            for r in &self.invalid_reasons {
                let _ = writeln!(out, "INVALID run: {r}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::OpKind;

    const MS: u64 = 1_000_000;

    fn worker(busy: f64) -> WorkerReport {
        WorkerReport {
            worker: 0,
            cpu: Some(1),
            connections: 4,
            cpu_busy: busy,
            run_queue_wait: Some(0.0),
            spin: 0.0,
        }
    }

    fn open_stats(gen_lag_ns: u64) -> (LoadConfig, Stats) {
        let config = LoadConfig {
            rate: Some(1000.0),
            warmup_secs: 0.0,
            duration_secs: 1.0,
            ..LoadConfig::default()
        };
        let mut s = Stats::new(0, 1000 * MS, 5);
        for i in 0..1000 {
            let intended = i * MS;
            s.record_send(intended, intended, intended + gen_lag_ns);
            s.record_ok(OpKind::Read, intended, intended + gen_lag_ns + 50_000);
        }
        (config, s)
    }

    #[test]
    fn healthy_open_loop_run_is_valid() {
        let (config, stats) = open_stats(20_000);
        let r = build_report(&config, &stats, vec![worker(0.3)], 1.0);
        assert!(r.valid, "{:?}", r.invalid_reasons);
        assert_eq!(r.mode, LoopMode::Open);
        assert_eq!(r.ops, 1000);
        assert!((r.achieved_rate - 1000.0).abs() < 1e-9);
        assert!(r.generator_lag.as_ref().is_some_and(|g| g.p99_us < 25.0));
        assert!(r.hdr_log.contains("Tag=all"), "{}", r.hdr_log);
        let text = r.render_text();
        assert!(
            text.contains("VALID run") && text.contains("p99.99"),
            "{text}"
        );
    }

    #[test]
    fn lagging_generator_makes_the_run_invalid() {
        let (config, stats) = open_stats(5 * MS);
        let r = build_report(&config, &stats, vec![worker(0.3)], 1.0);
        assert!(!r.valid);
        assert!(
            r.invalid_reasons[0].contains("generator lag"),
            "{:?}",
            r.invalid_reasons
        );
        assert!(r.warnings.iter().any(|w| w.contains("--spin-us")));
        assert!(r.render_text().contains("INVALID run"));
    }

    #[test]
    fn cpu_bound_worker_makes_the_run_invalid() {
        let (config, stats) = open_stats(0);
        let r = build_report(&config, &stats, vec![worker(0.97)], 1.0);
        assert!(!r.valid);
        assert!(r.invalid_reasons[0].contains("CPU-bound"));
    }

    #[test]
    fn slow_server_is_a_warning_not_invalid() {
        // Server-caused lag: slot freed late, generator sent right away.
        let config = LoadConfig {
            rate: Some(1000.0),
            duration_secs: 1.0,
            ..LoadConfig::default()
        };
        let mut s = Stats::new(0, 1000 * MS, 5);
        for i in 0..500 {
            let intended = i * MS;
            let freed = intended + 30 * MS;
            s.record_send(intended, freed, freed + 10_000);
            s.record_ok(OpKind::Write, intended, freed + 60 * MS);
        }
        let r = build_report(&config, &s, vec![worker(0.2)], 1.0);
        assert!(r.valid, "{:?}", r.invalid_reasons);
        assert!(r.warnings.iter().any(|w| w.contains("did not keep up")));
        assert!(r.schedule_lag.as_ref().is_some_and(|l| l.p50_us > 29_000.0));
    }

    #[test]
    fn empty_run_is_invalid_and_report_round_trips_through_json() {
        let config = LoadConfig::default();
        let s = Stats::new(0, 1000 * MS, 5);
        let r = build_report(&config, &s, vec![], 1.0);
        assert!(!r.valid);
        assert_eq!(r.mode, LoopMode::Closed);
        assert!(r.generator_lag.is_none());
        let json = serde_json::to_string(&r).unwrap();
        let back: LoadReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
}
