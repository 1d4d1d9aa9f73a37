//! Scenario 5: read-mostly load plus a write storm on a few hot keys, and one leader
//! SIGKILLed mid-run. Measures latency over time, the lease hit ratio (from the servers'
//! counters) and the unavailability window (from probes and from the load itself).

use super::client::{info_leasekv, Owned, RespClient};
use super::ctx::Ctx;
use super::model::{RunResult, ScenarioResult};
use super::plots;
use super::servers::{tag_in, LeaseCounters};
use crate::info::parse_leasekv;
use crate::report::LoadReport;
use crate::run_load;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Probe period and per-request timeout: the window is resolved to about a period, and a
/// probe stuck on a dead leader is abandoned after the timeout.
const PROBE_PERIOD: Duration = Duration::from_millis(5);
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
const SCRAPE_PERIOD: Duration = Duration::from_millis(250);

fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[derive(Debug, Clone, Copy, Serialize)]
struct ProbeSample {
    sent_ms: f64,
    done_ms: f64,
    ok: bool,
}

/// SET (or GET) `key` on `addr` every PROBE_PERIOD until `stop`.
fn probe(addr: SocketAddr, key: String, write: bool, stop: Arc<AtomicBool>) -> Vec<ProbeSample> {
    let mut out = Vec::new();
    let mut conn: Option<RespClient> = None;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let sent_ms = unix_ms();
        let result = match conn.as_mut() {
            Some(c) => Ok(c),
            None => RespClient::connect(addr, PROBE_TIMEOUT).map(|c| conn.insert(c)),
        }
        .and_then(|c| {
            n += 1;
            let v = n.to_string();
            if write {
                c.call(&[b"SET", key.as_bytes(), v.as_bytes()])
            } else {
                c.call(&[b"GET", key.as_bytes()])
            }
        });
        let ok = matches!(result, Ok(Owned::Ok(_) | Owned::Bulk(_) | Owned::Null));
        if result.is_err() {
            conn = None; // a late reply must not be taken for the next request's
        }
        out.push(ProbeSample {
            sent_ms,
            done_ms: unix_ms(),
            ok,
        });
        std::thread::sleep(PROBE_PERIOD);
    }
    out
}

/// Lease counters summed over `nodes`, every SCRAPE_PERIOD until `stop`.
fn scrape(nodes: Vec<SocketAddr>, stop: Arc<AtomicBool>) -> Vec<(f64, LeaseCounters)> {
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let t = unix_ms();
        let mut c = LeaseCounters::default();
        let mut ok = true;
        for a in &nodes {
            match info_leasekv(*a).and_then(|t| parse_leasekv(&t)) {
                Ok((_, groups)) => {
                    for g in groups {
                        c.lease_hits += g.lease_hits;
                        c.lease_misses += g.lease_misses;
                        c.readindex_done += g.readindex_done;
                        c.leader_changes += g.leader_changes;
                    }
                }
                Err(_) => ok = false,
            }
        }
        if ok {
            out.push((t, c));
        }
        std::thread::sleep(SCRAPE_PERIOD);
    }
    out
}

/// Time from `kill_ms` to the completion of the first successful probe sent after it.
fn recovery_ms(samples: &[ProbeSample], kill_ms: f64) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.sent_ms >= kill_ms && s.ok)
        .map(|s| s.done_ms - kill_ms)
}

/// Length of the dip after `kill_t` (s, measurement time): consecutive samples from the
/// kill on that completed fewer than half the median ops of the samples before it.
pub fn dip_secs(report: &LoadReport, kill_t: f64, interval: f64) -> Option<f64> {
    let mut before: Vec<u64> = report
        .time_series
        .iter()
        .filter(|s| s.t_sec >= 0.0 && s.t_sec + interval <= kill_t)
        .map(|s| s.ops)
        .collect();
    if before.is_empty() {
        return None;
    }
    before.sort_unstable();
    let median = before[before.len() / 2] as f64;
    let mut dip = 0.0;
    let mut started = false;
    for s in report
        .time_series
        .iter()
        .filter(|s| s.t_sec + interval > kill_t)
    {
        if (s.ops as f64) < median / 2.0 {
            started = true;
            dip += interval;
        } else if started {
            break;
        }
    }
    Some(dip)
}

pub fn s5(ctx: &mut Ctx, sc: &mut ScenarioResult) -> Result<(), String> {
    let p = ctx.plan.clone();
    let mut lk = ctx.start_leasekv(3, "lease")?;
    let leaders = lk.leaders()?;
    let groups = lk.groups()?;
    // The victim leads the most groups (ties: the lowest node).
    let mut count = vec![0usize; lk.nodes.len()];
    for &n in leaders.values() {
        count[n] += 1;
    }
    let victim = (0..count.len())
        .max_by_key(|&i| (count[i], std::cmp::Reverse(i)))
        .ok_or("no nodes")?;
    let victim_groups: Vec<_> = groups
        .iter()
        .filter(|g| leaders.get(&g.group) == Some(&victim))
        .cloned()
        .collect();
    let survivors: Vec<SocketAddr> = lk
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, n)| n.client)
        .collect();
    sc.setup = format!(
        "3 leasekv nodes (read_mode=lease, default Raft timing: 10 ms ticks, election timeout \
         20 ticks). Read-mostly load: 95% GET / 5% SET over {} keys, {} connections, {} ops/s \
         open loop. Write storm at the same time: {} connections SETting {} hot keys, {} \
         ops/s. Both loads go to the two nodes that survive (they forward to leaders). \
         {} s into the {} s measured window (after {} s warm-up) the node leading the most \
         shard groups is SIGKILLed. Probes SET and GET a key of each group the victim led \
         every {} ms (timeout {} ms) through a survivor; the servers' lease counters are \
         scraped every {} ms. Time series in {} ms samples.",
        p.keys,
        p.connections,
        p.s5_read_rate,
        p.s5_storm_connections,
        p.s5_storm_keys,
        p.s5_storm_rate,
        p.s5_kill_at,
        p.s5_secs,
        p.warmup_secs,
        PROBE_PERIOD.as_millis(),
        PROBE_TIMEOUT.as_millis(),
        SCRAPE_PERIOD.as_millis(),
        p.s5_interval_ms
    );
    sc.fact("victim_node", lk.nodes[victim].id);
    sc.fact(
        "victim_groups",
        victim_groups.iter().map(|g| g.group).collect::<Vec<_>>(),
    );

    let mut main = ctx.load(&survivors, Some(p.s5_read_rate), 0.95);
    main.duration_secs = p.s5_secs;
    main.series_interval_ms = p.s5_interval_ms;
    let mut storm = ctx.load(&survivors, Some(p.s5_storm_rate), 0.0);
    storm.duration_secs = p.s5_secs;
    storm.series_interval_ms = p.s5_interval_ms;
    storm.connections = p.s5_storm_connections;
    storm.keys = p.s5_storm_keys;
    storm.key_prefix = "hot:".into();
    storm.seed = 2;

    let stop = Arc::new(AtomicBool::new(false));
    let mut probes = Vec::new();
    for (i, g) in victim_groups.iter().enumerate() {
        let tag = tag_in(g).ok_or("no tag for a group")?;
        for write in [true, false] {
            let addr = survivors[i % survivors.len()];
            let key = format!("{{{tag}}}probe");
            let stop = stop.clone();
            let h = std::thread::spawn(move || probe(addr, key, write, stop));
            probes.push((g.group, write, h));
        }
    }
    let scraper = {
        let (nodes, stop) = (survivors.clone(), stop.clone());
        std::thread::spawn(move || scrape(nodes, stop))
    };
    eprintln!(
        "  [s5] read-mostly {} ops/s + storm {} ops/s for {} s; SIGKILL node {} at {} s",
        p.s5_read_rate,
        p.s5_storm_rate,
        p.warmup_secs + p.s5_secs,
        lk.nodes[victim].id,
        p.s5_kill_at
    );
    let start = Instant::now();
    let storm_h = std::thread::spawn(move || run_load(&storm));
    let main_h = std::thread::spawn(move || run_load(&main));
    let kill_after = Duration::from_secs_f64(p.warmup_secs + p.s5_kill_at);
    while start.elapsed() < kill_after && !main_h.is_finished() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let kill_ms = unix_ms();
    lk.kill(victim);
    eprintln!("  [s5] node {} killed", lk.nodes[victim].id);
    let main_r = main_h.join().map_err(|_| "main load panicked")?;
    let storm_r = storm_h.join().map_err(|_| "storm load panicked")?;
    stop.store(true, Ordering::Relaxed);
    let probe_results: Vec<(u32, bool, Vec<ProbeSample>)> = probes
        .into_iter()
        .map(|(g, w, h)| (g, w, h.join().unwrap_or_default()))
        .collect();
    let scrapes = scraper.join().unwrap_or_default();
    drop(lk);
    let main_r = main_r.map_err(|e| format!("read-mostly load: {e}"))?;
    let storm_r = storm_r.map_err(|e| format!("write storm: {e}"))?;

    let interval = p.s5_interval_ms as f64 / 1000.0;
    let kill_t = (kill_ms - main_r.started_unix_ms) / 1000.0 - p.warmup_secs;
    sc.fact("kill_at_secs_into_measurement", kill_t);
    // Unavailability seen by the probes.
    let mut write_max: Option<f64> = None;
    let mut read_max: Option<f64> = None;
    let mut unrecovered = Vec::new();
    for (g, write, samples) in &probe_results {
        let op = if *write { "SET" } else { "GET" };
        let r = recovery_ms(samples, kill_ms);
        sc.fact(&format!("probe group{g} {op} unavailable_ms"), r);
        let failed = samples
            .iter()
            .filter(|s| !s.ok && s.sent_ms >= kill_ms)
            .count();
        sc.fact(&format!("probe group{g} {op} failed_after_kill"), failed);
        match r {
            Some(ms) if *write => write_max = Some(write_max.map_or(ms, |m: f64| m.max(ms))),
            Some(ms) => read_max = Some(read_max.map_or(ms, |m: f64| m.max(ms))),
            None => unrecovered.push(format!("group {g} {op}")),
        }
    }
    sc.fact("unavailable_ms write (max over victim's groups)", write_max);
    sc.fact("unavailable_ms read (max over victim's groups)", read_max);
    if !unrecovered.is_empty() {
        sc.notes.push(format!(
            "no successful probe after the kill for: {} (not recovered within the run)",
            unrecovered.join(", ")
        ));
    }
    sc.fact(
        "load_dip_secs (read-mostly ops < 50% of median)",
        dip_secs(&main_r, kill_t, interval),
    );
    sc.fact(
        "storm_dip_secs (storm ops < 50% of median)",
        dip_secs(&storm_r, kill_t, interval),
    );
    // Lease hit ratio (survivors' counters; the victim's are gone with it).
    let ratio_between = |a: f64, b: f64| -> Option<f64> {
        let first = scrapes.iter().find(|(t, _)| *t >= a)?;
        let last = scrapes.iter().rev().find(|(t, _)| *t <= b)?;
        last.1.minus(&first.1).hit_ratio()
    };
    let run_start = main_r.started_unix_ms;
    let run_end = run_start + (p.warmup_secs + p.s5_secs) * 1000.0;
    sc.fact(
        "lease_hit_ratio whole run (survivors)",
        ratio_between(run_start, run_end),
    );
    sc.fact(
        "lease_hit_ratio before kill",
        ratio_between(run_start, kill_ms),
    );
    sc.fact(
        "lease_hit_ratio after kill",
        ratio_between(kill_ms, run_end),
    );
    sc.fact(
        "lease_hit_ratio from 2 s after kill",
        ratio_between(kill_ms + 2000.0, run_end),
    );
    if let (Some(f), Some(l)) = (scrapes.first(), scrapes.last()) {
        sc.fact(
            "leader_changes (survivors)",
            l.1.leader_changes - f.1.leader_changes,
        );
    }
    let series: Vec<(f64, Option<f64>)> = scrapes
        .windows(2)
        .map(|w| {
            let t = (w[1].0 - kill_ms) / 1000.0;
            (t, w[1].1.minus(&w[0].1).hit_ratio())
        })
        .collect();
    sc.fact("lease_hit_ratio_series (s from kill, ratio)", &series);
    sc.fact("probes", &probe_results);

    // Plots: latency over time around the kill, lease hit ratio over time.
    let rel = |r: &LoadReport, f: fn(&crate::stats::SeriesSample) -> f64| -> Vec<(f64, f64)> {
        r.time_series
            .iter()
            .filter(|s| s.ops > 0)
            .map(|s| (s.t_sec - kill_t, f(s)))
            .collect()
    };
    let lat = vec![
        ("read-mostly p50".to_string(), rel(&main_r, |s| s.p50_us)),
        ("read-mostly p99".to_string(), rel(&main_r, |s| s.p99_us)),
        ("read-mostly max".to_string(), rel(&main_r, |s| s.max_us)),
        ("storm p99".to_string(), rel(&storm_r, |s| s.p99_us)),
    ];
    let (path, file) = ctx.plot_path(sc, "latency-over-time");
    match plots::lines(
        &path,
        &format!("Latency per {} ms around the leader kill", p.s5_interval_ms),
        "seconds from SIGKILL (by completion time)",
        "latency (us)",
        &lat,
        Some((0.0, "SIGKILL leader")),
        true,
    ) {
        Ok(()) => sc.plots.push(file),
        Err(e) => sc.notes.push(e),
    }
    let ratio_pts: Vec<(f64, f64)> = series
        .iter()
        .filter_map(|(t, r)| r.map(|r| (*t, r)))
        .collect();
    let ops = |r: &LoadReport| -> Vec<(f64, f64)> {
        r.time_series
            .iter()
            .map(|s| (s.t_sec - kill_t, s.ops as f64 / p.s5_read_rate / interval))
            .collect()
    };
    let (path, file) = ctx.plot_path(sc, "lease-hit-ratio");
    match plots::lines(
        &path,
        "Lease hit ratio (survivors) and read-mostly completions",
        "seconds from SIGKILL",
        "ratio",
        &[
            ("lease hit ratio per scrape".into(), ratio_pts),
            ("completions / offered rate".into(), ops(&main_r)),
        ],
        Some((0.0, "SIGKILL leader")),
        false,
    ) {
        Ok(()) => sc.plots.push(file),
        Err(e) => sc.notes.push(e),
    }
    let counters = match (scrapes.first(), scrapes.last()) {
        (Some(f), Some(l)) => Some(l.1.minus(&f.1)),
        _ => None,
    };
    sc.runs.push(RunResult {
        name: "read-mostly with failover".into(),
        system: "leasekv".into(),
        variant: "3 nodes, lease, leader killed".into(),
        op: "95% GET".into(),
        counters,
        report: main_r,
    });
    sc.runs.push(RunResult {
        name: "write storm".into(),
        system: "leasekv".into(),
        variant: format!("{} hot keys", p.s5_storm_keys),
        op: "SET".into(),
        counters: None,
        report: storm_r,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_is_the_first_success_sent_after_the_kill() {
        let s = |sent, done, ok| ProbeSample {
            sent_ms: sent,
            done_ms: done,
            ok,
        };
        let samples = [
            s(90.0, 91.0, true),
            s(99.0, 400.0, true), // sent before the kill: does not count
            s(101.0, 351.0, false),
            s(356.0, 380.0, true),
        ];
        assert_eq!(recovery_ms(&samples, 100.0), Some(280.0));
        assert_eq!(recovery_ms(&samples[..3], 100.0), None);
    }
}
