//! The suite's report (report.json): every run's full [`LoadReport`] plus what the
//! scenarios derived from them.

use super::servers::LeaseCounters;
use crate::report::LoadReport;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuiteReport {
    pub tool: String,
    pub started_utc: String,
    pub finished_utc: String,
    pub wall_secs: f64,
    /// The exact command line of the runner.
    pub command_line: Vec<String>,
    pub machine: BTreeMap<String, String>,
    /// leasekv, leasekv-bench, redis-server, etcd, rustc...
    pub versions: BTreeMap<String, String>,
    pub settings: Settings,
    pub scenarios: Vec<ScenarioResult>,
}

/// How the suite ran (what is common to every scenario).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub smoke: bool,
    /// CPUs each leasekv node's executors are pinned to (every node uses all of them).
    pub server_cores: Vec<usize>,
    /// `[runtime] spin_before_park_us` of every leasekv node.
    pub server_spin_us: u64,
    /// CPUs the load generator's workers are pinned to (None: not pinned).
    pub load_cpus: Option<Vec<usize>>,
    pub load_threads: usize,
    pub warmup_secs: f64,
    pub duration_secs: f64,
    pub max_generator_lag_us: u64,
    pub max_generator_cpu: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub id: u32,
    pub title: String,
    /// `ran`, `skipped` (a reference is missing) or `failed`.
    pub status: String,
    /// Why it was skipped or failed.
    pub detail: Option<String>,
    /// What was run, in words.
    pub setup: String,
    pub runs: Vec<RunResult>,
    pub comparisons: Vec<Comparison>,
    /// Scenario-specific numbers (lease hit ratios, unavailability window, saturation...).
    pub facts: BTreeMap<String, serde_json::Value>,
    pub notes: Vec<String>,
    /// SVG files (relative to the report directory).
    pub plots: Vec<String>,
    pub secs: f64,
}

impl ScenarioResult {
    pub fn new(id: u32, title: &str) -> Self {
        ScenarioResult {
            id,
            title: title.to_string(),
            status: "ran".into(),
            detail: None,
            setup: String::new(),
            runs: Vec::new(),
            comparisons: Vec::new(),
            facts: BTreeMap::new(),
            notes: Vec::new(),
            plots: Vec::new(),
            secs: 0.0,
        }
    }

    pub fn run(&self, name: &str) -> Option<&RunResult> {
        self.runs.iter().find(|r| r.name == name)
    }

    /// Adds subject-vs-reference ratios of two runs (if both exist and measured something).
    pub fn compare(&mut self, what: &str, subject: &str, reference: &str) {
        let (Some(s), Some(r)) = (self.run(subject), self.run(reference)) else {
            return;
        };
        let (s, r) = (&s.report.latency.all, &r.report.latency.all);
        if s.count == 0 || r.count == 0 {
            return;
        }
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        let c = Comparison {
            what: what.to_string(),
            subject: subject.to_string(),
            reference: reference.to_string(),
            subject_p50_us: s.p50_us,
            reference_p50_us: r.p50_us,
            p50_ratio: ratio(s.p50_us, r.p50_us),
            subject_p99_us: s.p99_us,
            reference_p99_us: r.p99_us,
            p99_ratio: ratio(s.p99_us, r.p99_us),
            subject_p999_us: s.p999_us,
            reference_p999_us: r.p999_us,
            p999_ratio: ratio(s.p999_us, r.p999_us),
        };
        self.comparisons.push(c);
    }

    pub fn fact(&mut self, key: &str, value: impl Serialize) {
        if let Ok(v) = serde_json::to_value(value) {
            self.facts.insert(key.to_string(), v);
        }
    }
}

/// One load run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// Unique within the scenario, e.g. `lease GET 4000/s`.
    pub name: String,
    /// `leasekv`, `redis-server`, `etcd`...
    pub system: String,
    /// e.g. `read_mode=lease`, `own core`.
    pub variant: String,
    /// `GET`, `SET`, `90% GET`...
    pub op: String,
    /// Lease/ReadIndex counters of the leasekv nodes during the run (warm-up included).
    pub counters: Option<LeaseCounters>,
    pub report: LoadReport,
}

/// Subject vs reference, measured in the same run of the suite. Ratios are subject /
/// reference (below 1: the subject is faster).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub what: String,
    pub subject: String,
    pub reference: String,
    pub subject_p50_us: f64,
    pub reference_p50_us: f64,
    pub p50_ratio: f64,
    pub subject_p99_us: f64,
    pub reference_p99_us: f64,
    pub p99_ratio: f64,
    pub subject_p999_us: f64,
    pub reference_p999_us: f64,
    pub p999_ratio: f64,
}
