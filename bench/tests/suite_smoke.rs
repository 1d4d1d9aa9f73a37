//! CI smoke run of the benchmark suite: `leasekv-bench run --smoke` against the leasekv
//! binary of the same build (target/<profile>/leasekv), every scenario, checked through
//! the report it writes. References (redis-server, etcd) that are not installed are
//! skipped with a loud notice; .ci/run installs both.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The smoke run takes about a minute on a loaded 2-core machine with a debug build.
const LIMIT: Duration = Duration::from_secs(420);

fn leasekv_bin() -> PathBuf {
    let bench = Path::new(env!("CARGO_BIN_EXE_leasekv-bench"));
    let bin = bench.with_file_name("leasekv");
    assert!(
        bin.is_file(),
        "{} is missing: build it first (cargo build -p leasekv; `cargo test --workspace \
         --all-targets` builds it)",
        bin.display()
    );
    bin
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

fn loud(msg: &str) {
    eprintln!("{}\n!! {msg}\n{}", "!".repeat(78), "!".repeat(78));
}

fn runs(sc: &Value) -> &Vec<Value> {
    sc["runs"].as_array().expect("runs")
}

fn run<'a>(sc: &'a Value, name: &str) -> &'a Value {
    runs(sc)
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no run {name:?} in scenario {}", sc["id"]))
}

#[test]
fn smoke_run_of_every_scenario() {
    let out = tempfile::tempdir().expect("temp dir");
    // 17000-17799: apart from the integration tests' range (20000-32700).
    let base = 17_000 + (std::process::id() % 80) as u16 * 10;
    let mut child = Command::new(env!("CARGO_BIN_EXE_leasekv-bench"))
        .args(["run", "--smoke", "--scenario", "all"])
        .arg("--leasekv")
        .arg(leasekv_bin())
        .arg("--out")
        .arg(out.path())
        .args(["--base-port", &base.to_string()])
        .args(["--time-limit-secs", &LIMIT.as_secs().to_string()])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn leasekv-bench run");
    // The runner bounds itself (watchdog); this is the test's own backstop.
    let until = Instant::now() + LIMIT + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("leasekv-bench run did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "leasekv-bench run failed: {status}");

    let dirs: Vec<PathBuf> = std::fs::read_dir(out.path())
        .expect("out dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(dirs.len(), 1, "one timestamped report directory: {dirs:?}");
    let dir = &dirs[0];
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).expect("report.json"))
            .expect("report.json parses");
    let md = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
    assert!(report["settings"]["smoke"].as_bool().unwrap());
    assert!(!report["machine"]["kernel"]
        .as_str()
        .unwrap_or("")
        .is_empty());
    assert!(report["versions"]["leasekv"]
        .as_str()
        .unwrap()
        .contains("leasekv"));
    let scenarios = report["scenarios"].as_array().expect("scenarios");
    let ids: Vec<u64> = scenarios
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6]);

    for sc in scenarios {
        let id = sc["id"].as_u64().unwrap();
        let status = sc["status"].as_str().unwrap();
        let reference_missing = match id {
            2 => !on_path("redis-server"),
            3 => !on_path("etcd"),
            _ => false,
        };
        if reference_missing {
            loud(&format!(
                "scenario {id} SKIPPED: its reference is not installed ({}); .ci/run installs it",
                sc["detail"]
            ));
            assert_eq!(status, "skipped");
            continue;
        }
        assert_eq!(status, "ran", "scenario {id}: {}", sc["detail"]);
        assert!(
            md.contains(&format!("## {id}. ")),
            "report.md lacks scenario {id}"
        );
        for r in runs(sc) {
            let rep = &r["report"];
            assert!(
                rep["ops"].as_u64().unwrap() > 0,
                "{id} {}: no ops",
                r["name"]
            );
            let p50 = rep["latency"]["all"]["p50_us"].as_f64().unwrap();
            let p99 = rep["latency"]["all"]["p99_us"].as_f64().unwrap();
            assert!(
                p50 > 0.0 && p50 <= p99,
                "{id} {}: p50 {p50} p99 {p99}",
                r["name"]
            );
        }
        for p in sc["plots"].as_array().unwrap() {
            let svg = std::fs::read_to_string(dir.join(p.as_str().unwrap())).expect("plot");
            assert!(svg.starts_with("<svg") && svg.contains("<polyline"), "{p}");
        }
        assert!(
            !sc["plots"].as_array().unwrap().is_empty(),
            "scenario {id} has no plot"
        );
    }

    // 1: lease reads hit the lease, ReadIndex reads do ReadIndex rounds; ratios reported.
    let s1 = &scenarios[0];
    let lease = &run(s1, "lease GET 300/s")["counters"];
    assert!(lease["lease_hits"].as_u64().unwrap() > 0, "{lease}");
    let ri = &run(s1, "readindex GET 300/s")["counters"];
    assert_eq!(ri["lease_hits"].as_u64().unwrap(), 0, "{ri}");
    assert!(ri["readindex_done"].as_u64().unwrap() > 0, "{ri}");
    assert!(s1["comparisons"][0]["p50_ratio"].as_f64().unwrap() > 0.0);
    // 3: the etcd runs spoke HTTP and got answers (no errors) when etcd is there.
    if scenarios[2]["status"] == "ran" {
        let put = &run(&scenarios[2], "etcd put 200/s")["report"];
        assert_eq!(
            put["errors_total"].as_u64().unwrap(),
            0,
            "{}",
            put["errors"]
        );
    }
    // 4: each connection's tag names the core it chose: its own, or another.
    for (name, own) in [("GET own core", true), ("GET other core", false)] {
        let probes = run(&scenarios[3], name)["report"]["core_probes"]
            .as_array()
            .unwrap();
        assert!(!probes.is_empty(), "{name}: no probes");
        for p in probes {
            let core = p["core"].as_u64().unwrap();
            let mine = p["tag"].as_str().unwrap().starts_with(&format!("c{core}-"));
            assert_eq!(mine, own, "{name}: {p}");
        }
    }
    // 5: a leader was killed and the victim's groups served writes again within the run.
    let f = &scenarios[4]["facts"];
    let w = f["unavailable_ms write (max over victim's groups)"]
        .as_f64()
        .unwrap_or_else(|| panic!("writes never recovered: {f}"));
    assert!(w > 0.0 && w < 4000.0, "write unavailability {w} ms");
    // 6: a saturation point was found and the sweep went past it.
    let s6 = &scenarios[5]["facts"];
    assert!(s6["saturation_ops_per_sec (closed loop)"].as_f64().unwrap() > 0.0);
    assert!(s6["throughput at 1.2x / saturation"].as_f64().is_some());
}
