//! report.md: a table per scenario, ratios against the references measured in the same
//! run, the scenario's derived numbers, and links to the plots.

use super::model::{ScenarioResult, SuiteReport};
use std::fmt::Write as _;

fn us(x: f64) -> String {
    if x >= 100_000.0 {
        format!("{:.0} ms", x / 1000.0)
    } else if x >= 1000.0 {
        format!("{:.2} ms", x / 1000.0)
    } else {
        format!("{x:.0} us")
    }
}

fn fact_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() != 0.0 && f.abs() < 10.0 => format!("{f:.4}"),
            Some(f) if f.fract() != 0.0 => format!("{f:.1}"),
            _ => n.to_string(),
        },
        serde_json::Value::Null => "n/a".into(),
        other => {
            let s = other.to_string();
            if s.len() > 200 {
                "(see report.json)".into()
            } else {
                s
            }
        }
    }
}

fn scenario(out: &mut String, sc: &ScenarioResult) {
    let _ = writeln!(out, "## {}. {}\n", sc.id, sc.title);
    match sc.status.as_str() {
        "ran" => {}
        s => {
            let _ = writeln!(
                out,
                "**{}**: {}\n",
                s.to_uppercase(),
                sc.detail.as_deref().unwrap_or("")
            );
        }
    }
    if !sc.setup.is_empty() {
        let _ = writeln!(out, "{}\n", sc.setup);
    }
    if !sc.runs.is_empty() {
        let _ = writeln!(
            out,
            "| run | system | variant | op | offered/s | achieved/s | p50 | p90 | p99 | p99.9 | p99.99 | max | errors | gen. lag p50 | valid |"
        );
        let _ = writeln!(
            out,
            "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for r in &sc.runs {
            let rep = &r.report;
            let l = &rep.latency.all;
            let errors = if rep.errors.is_empty() {
                "0".to_string()
            } else {
                rep.errors
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let _ =
                writeln!(
                out,
                "| {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.name,
                r.system,
                r.variant,
                r.op,
                rep.offered_rate.map_or("closed".into(), |x| format!("{x:.0}")),
                rep.achieved_rate,
                us(l.p50_us),
                us(l.p90_us),
                us(l.p99_us),
                us(l.p999_us),
                us(l.p9999_us),
                us(l.max_us),
                errors,
                rep.generator_lag.as_ref().map_or("-".into(), |g| us(g.p50_us)),
                if rep.valid { "yes" } else { "**no**" }
            );
        }
        let _ = writeln!(out);
        let lease: Vec<_> = sc
            .runs
            .iter()
            .filter_map(|r| r.counters.map(|c| (r, c)))
            .filter(|(_, c)| c.lease_hits + c.lease_misses + c.readindex_done > 0)
            .collect();
        if !lease.is_empty() {
            let _ = writeln!(
                out,
                "Server counters during each run (warm-up included; leasekv `INFO leasekv`, summed over nodes and groups):\n"
            );
            let _ = writeln!(out, "| run | lease hits | lease misses | hit ratio | ReadIndex rounds | leader changes |");
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
            for (r, c) in lease {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} |",
                    r.name,
                    c.lease_hits,
                    c.lease_misses,
                    c.hit_ratio().map_or("n/a".into(), |x| format!("{:.4}", x)),
                    c.readindex_done,
                    c.leader_changes
                );
            }
            let _ = writeln!(out);
        }
    }
    if !sc.comparisons.is_empty() {
        let _ = writeln!(
            out,
            "Ratios (subject / reference, same suite run; below 1 = subject faster):\n"
        );
        let _ = writeln!(
            out,
            "| comparison | p50 | p50 ratio | p99 | p99 ratio | p99.9 ratio |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
        for c in &sc.comparisons {
            let _ = writeln!(
                out,
                "| {} | {} vs {} | **{:.2}** | {} vs {} | **{:.2}** | {:.2} |",
                c.what,
                us(c.subject_p50_us),
                us(c.reference_p50_us),
                c.p50_ratio,
                us(c.subject_p99_us),
                us(c.reference_p99_us),
                c.p99_ratio,
                c.p999_ratio
            );
        }
        let _ = writeln!(out);
    }
    let facts: Vec<_> = sc
        .facts
        .iter()
        .filter(|(_, v)| !matches!(v, serde_json::Value::Array(a) if a.len() > 12))
        .collect();
    if !facts.is_empty() {
        let _ = writeln!(out, "| measured | value |\n|---|---|");
        for (k, v) in facts {
            let _ = writeln!(out, "| {k} | {} |", fact_value(v));
        }
        let _ = writeln!(out);
    }
    for n in &sc.notes {
        let _ = writeln!(out, "- note: {n}");
    }
    if !sc.notes.is_empty() {
        let _ = writeln!(out);
    }
    for p in &sc.plots {
        let _ = writeln!(out, "![{p}]({p})\n");
    }
    let _ = writeln!(out, "_Scenario time: {:.0} s._\n", sc.secs);
}

pub fn markdown(r: &SuiteReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# leasekv latency benchmark{}\n",
        if r.settings.smoke {
            " (SMOKE run: tiny rates, numbers meaningless)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "Started {} (UTC), finished {}, {:.0} s in total.\n",
        r.started_utc, r.finished_utc, r.wall_secs
    );
    let _ = writeln!(out, "Command line: `{}`\n", r.command_line.join(" "));
    let _ = writeln!(out, "| machine | |\n|---|---|");
    for (k, v) in &r.machine {
        let _ = writeln!(out, "| {k} | {v} |");
    }
    let _ = writeln!(out, "\n| version | |\n|---|---|");
    for (k, v) in &r.versions {
        let _ = writeln!(out, "| {k} | {v} |");
    }
    let s = &r.settings;
    let _ = writeln!(
        out,
        "\nPinning: every leasekv node runs one executor per CPU in {:?} (the nodes share \
         them); `spin_before_park_us = {}`. Load generator: {} worker thread(s) (more in \
         scenario 6), {}. redis-server and etcd are not pinned. All processes share the \
         same {} CPUs, so every number includes that contention.\n",
        s.server_cores,
        s.server_spin_us,
        s.load_threads,
        s.load_cpus
            .as_ref()
            .map_or("not pinned".to_string(), |c| format!(
                "pinned to CPUs {c:?}"
            )),
        r.machine.get("cpus_online").map_or("?", String::as_str)
    );
    let _ = writeln!(
        out,
        "Latency is measured from each request's intended send time (open loop, no \
         coordinated omission) except in closed-loop runs; HDR histograms, 3 significant \
         digits. Default run: {} s warm-up + {} s measured. A run is `valid = no` when the \
         generator itself fell behind (p99 generator lag > {} us or a worker > {:.0}% busy); \
         its numbers are kept but describe the generator too. `gen. lag p50` is the \
         generator's own wake-up delay, included in every latency.\n",
        s.warmup_secs,
        s.duration_secs,
        s.max_generator_lag_us,
        s.max_generator_cpu * 100.0
    );
    for sc in &r.scenarios {
        scenario(&mut out, sc);
    }
    out
}
