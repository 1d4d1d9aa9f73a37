//! What the report says about the machine and the software versions.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// CPU model, CPU count, kernel, memory, load average at start, hostname.
pub fn machine() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Some(cpuinfo) = read("/proc/cpuinfo") {
        if let Some(model) = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
        {
            m.insert("cpu_model".into(), model.1.trim().to_string());
        }
    }
    m.insert(
        "cpus_online".into(),
        std::thread::available_parallelism()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into()),
    );
    if let Some(k) = read("/proc/sys/kernel/osrelease") {
        m.insert("kernel".into(), k.trim().to_string());
    }
    if let Some(mem) = read("/proc/meminfo").and_then(|t| {
        t.lines()
            .next()
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
    }) {
        if let Ok(kb) = mem.parse::<u64>() {
            m.insert("memory_gib".into(), format!("{:.1}", kb as f64 / 1048576.0));
        }
    }
    if let Some(l) = read("/proc/loadavg") {
        m.insert("loadavg_at_start".into(), l.trim().to_string());
    }
    if let Some(h) = read("/proc/sys/kernel/hostname") {
        m.insert("hostname".into(), h.trim().to_string());
    }
    m.insert("os".into(), std::env::consts::OS.to_string());
    m.insert("arch".into(), std::env::consts::ARCH.to_string());
    m
}

/// Load average now (for noise notes).
pub fn loadavg() -> String {
    read("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// First line of `cmd args` output, or None.
fn first_line(cmd: &Path, args: &[&str]) -> Option<String> {
    let o = Command::new(cmd).args(args).output().ok()?;
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    text.lines().next().map(|l| l.trim().to_string())
}

/// Versions of the tools the suite used.
pub fn versions(
    leasekv: &Path,
    redis: Option<&Path>,
    etcd: Option<&Path>,
) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert(
        "leasekv-bench".into(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    v.insert(
        "leasekv".into(),
        first_line(leasekv, &["--version"]).unwrap_or_else(|| "unknown".into()),
    );
    if let Some(r) = redis {
        v.insert(
            "redis-server".into(),
            first_line(r, &["--version"]).unwrap_or_default(),
        );
    }
    if let Some(e) = etcd {
        v.insert(
            "etcd".into(),
            first_line(e, &["--version"]).unwrap_or_default(),
        );
    }
    if let Some(r) = first_line(Path::new("rustc"), &["--version"]) {
        v.insert("rustc".into(), r);
    }
    if let Some(c) = first_line(Path::new("git"), &["rev-parse", "--short", "HEAD"]) {
        if c.len() <= 40 && c.chars().all(|ch| ch.is_ascii_hexdigit()) {
            v.insert("git_commit".into(), c);
        }
    }
    v
}

/// UTC time as `YYYY-MM-DDTHH:MM:SSZ`, and the compact `YYYYMMDDTHHMMSSZ` for paths.
pub fn utc_now() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
        format!("{y:04}{m:02}{d:02}T{h:02}{mi:02}{s:02}Z"),
    )
}
