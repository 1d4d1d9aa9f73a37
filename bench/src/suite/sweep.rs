//! Scenario 6: latency vs offered load up to and past saturation.

use super::ctx::{rate_name, Ctx};
use super::model::ScenarioResult;
use super::plots;
use crate::report::LoadReport;

/// Connections and pipeline depth of the sweep (enough in flight that the generator, not
/// its pipeline, never limits the offered load below saturation).
const CONNECTIONS: usize = 32;
const CLOSED_PIPELINE: usize = 16;
const OPEN_PIPELINE: usize = 16;

pub fn s6(ctx: &mut Ctx, sc: &mut ScenarioResult) -> Result<(), String> {
    let p = ctx.plan.clone();
    let threads = ctx.load_threads.max(2);
    sc.setup = format!(
        "3 leasekv nodes (read_mode=lease). 90% GET / 10% SET over {} preloaded keys, \
         connections spread over all 3 nodes (requests for groups led elsewhere are \
         forwarded). First closed loop ({CONNECTIONS} connections x pipeline \
         {CLOSED_PIPELINE}, {threads} generator threads, {} s) to find the saturation \
         throughput, then open loop at {:?} x that rate ({CONNECTIONS} connections, up to \
         {OPEN_PIPELINE} in flight each, {} s warm-up + {} s per point, timeout 5 s).",
        p.keys,
        p.s6_closed_secs,
        p.s6_fractions,
        p.warmup_secs.min(1.0),
        p.s6_point_secs
    );
    let lk = ctx.start_leasekv(3, "lease")?;
    let targets = lk.live_addrs();
    let mut closed = ctx.load(&targets, None, 0.9);
    closed.connections = CONNECTIONS;
    closed.pipeline = CLOSED_PIPELINE;
    closed.threads = threads;
    closed.duration_secs = p.s6_closed_secs;
    closed.preload = true;
    ctx.run(
        sc,
        "closed loop",
        "leasekv",
        "3 nodes, lease",
        "90% GET",
        &closed,
        Some(&lk),
    )?;
    let sat = sc.run("closed loop").map_or(0.0, |r| r.report.throughput);
    if sat <= 0.0 {
        return Err("the closed-loop run measured no throughput".into());
    }
    sc.fact("saturation_ops_per_sec (closed loop)", sat);
    let mut points = Vec::new();
    for &f in &p.s6_fractions {
        let rate = (f * sat).round().max(1.0);
        let mut cfg = ctx.load(&targets, Some(rate), 0.9);
        cfg.connections = CONNECTIONS;
        cfg.pipeline = OPEN_PIPELINE;
        cfg.threads = threads;
        cfg.warmup_secs = p.warmup_secs.min(1.0);
        cfg.duration_secs = p.s6_point_secs;
        cfg.timeout_ms = 5000;
        let name = format!("{f}x saturation");
        ctx.run(
            sc,
            &name,
            "leasekv",
            "3 nodes, lease",
            "90% GET",
            &cfg,
            Some(&lk),
        )?;
        if let Some(r) = sc.run(&name) {
            let l = &r.report.latency.all;
            points.push((
                f,
                rate,
                r.report.throughput,
                l.p50_us,
                l.p99_us,
                l.p999_us,
                r.report.errors_total,
            ));
        }
    }
    drop(lk);
    sc.fact(
        "points (fraction, offered, throughput, p50_us, p99_us, p999_us, errors)",
        &points,
    );
    if let Some(top) = points.iter().find(|x| (x.0 - 1.2).abs() < 1e-9) {
        sc.fact("throughput at 1.2x / saturation", top.2 / sat);
    }
    let line = |i: usize| -> Vec<(f64, f64)> {
        points.iter().map(|x| (x.1, [x.3, x.4, x.5][i])).collect()
    };
    let (path, file) = ctx.plot_path(sc, "latency-vs-load");
    match plots::lines(
        &path,
        &format!(
            "Latency vs offered load (saturation {:.0} ops/s, closed loop)",
            sat
        ),
        "offered load (ops/s)",
        "latency (us)",
        &[
            ("p50".into(), line(0)),
            ("p99".into(), line(1)),
            ("p99.9".into(), line(2)),
        ],
        Some((sat, "closed-loop saturation")),
        true,
    ) {
        Ok(()) => sc.plots.push(file),
        Err(e) => sc.notes.push(e),
    }
    let runs: Vec<(String, &LoadReport)> = p
        .s6_fractions
        .iter()
        .filter_map(|f| {
            sc.run(&format!("{f}x saturation")).map(|r| {
                (
                    format!("{f}x ({})", rate_name((f * sat).round())),
                    &r.report,
                )
            })
        })
        .collect();
    let (path, file) = ctx.plot_path(sc, "percentiles");
    match plots::percentile_curves(&path, "Latency by percentile at each offered load", &runs) {
        Ok(()) => sc.plots.push(file),
        Err(e) => sc.notes.push(e),
    }
    Ok(())
}
