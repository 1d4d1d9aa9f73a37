//! Parsing leasekv's `INFO leasekv` section: lines such as
//! `core0:cpu=0,clients=3,commands=120,...` and
//! `group2:core=0,slots=8192-12287,role=leader,...,lease_hits=5,lease_misses=1,...`.

use std::collections::BTreeMap;

/// `name -> (field -> value)` for every `name:k=v,k=v` line; other lines are ignored.
pub fn parse_fields(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if !rest.contains('=') {
            continue;
        }
        let fields = rest
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        out.insert(name.to_string(), fields);
    }
    out
}

/// One shard group as `INFO leasekv` shows it on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub group: u32,
    /// Index of the core owning the group on that node.
    pub core: usize,
    pub slots: (u16, u16),
    pub leader: bool,
    pub lease_hits: u64,
    pub lease_misses: u64,
    pub readindex_done: u64,
    pub leader_changes: u64,
}

/// Per-core `commands` counters (index = core) and the groups, from an `INFO leasekv` text.
pub fn parse_leasekv(text: &str) -> Result<(Vec<u64>, Vec<GroupInfo>), String> {
    let fields = parse_fields(text);
    let num = |m: &BTreeMap<String, String>, k: &str, line: &str| -> Result<u64, String> {
        m.get(k)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("INFO leasekv: line {line} has no numeric {k}"))
    };
    let mut commands = Vec::new();
    while let Some(m) = fields.get(&format!("core{}", commands.len())) {
        commands.push(num(m, "commands", "core")?);
    }
    let mut groups = Vec::new();
    while let Some(m) = fields.get(&format!("group{}", groups.len())) {
        let name = format!("group{}", groups.len());
        let slots = m
            .get("slots")
            .and_then(|s| s.split_once('-'))
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
            .ok_or_else(|| format!("INFO leasekv: {name} has no slots=LO-HI"))?;
        groups.push(GroupInfo {
            group: groups.len() as u32,
            core: num(m, "core", &name)? as usize,
            slots,
            leader: m.get("role").map(String::as_str) == Some("leader"),
            lease_hits: num(m, "lease_hits", &name)?,
            lease_misses: num(m, "lease_misses", &name)?,
            readindex_done: num(m, "readindex_done", &name).unwrap_or(0),
            leader_changes: num(m, "leader_changes", &name).unwrap_or(0),
        });
    }
    if commands.is_empty() || groups.is_empty() {
        return Err("INFO leasekv lists no cores or no groups: is this a leasekv server?".into());
    }
    Ok((commands, groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# Leasekv\r\nread_mode:lease\r\ncores:2\r\ncore_cpus:0,1\r\ngroups:2\r\n\
        core0:cpu=0,clients=1,commands=10,hops_sent=0,hops_received=0,wal_syncs=0\r\n\
        core1:cpu=1,clients=0,commands=3,hops_sent=0,hops_received=0,wal_syncs=0\r\n\
        group0:core=0,slots=0-8191,role=leader,term=2,commit=5,applied=5,keys=0,lease_remaining_ms=0,lease_hits=7,lease_misses=1,lease_invalidations=0,read_errors=0,readindex_done=1,readindex_mean_us=20,leader_changes=1\r\n\
        group1:core=1,slots=8192-16383,role=follower,term=2,commit=5,applied=5,keys=0,lease_remaining_ms=0,lease_hits=0,lease_misses=0,lease_invalidations=0,read_errors=0,readindex_done=0,readindex_mean_us=0,leader_changes=0\r\n\r\n";

    #[test]
    fn parses_cores_and_groups() {
        let (commands, groups) = parse_leasekv(SAMPLE).unwrap();
        assert_eq!(commands, vec![10, 3]);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].slots, (0, 8191));
        assert!(groups[0].leader && !groups[1].leader);
        assert_eq!((groups[0].lease_hits, groups[0].lease_misses), (7, 1));
        assert_eq!(groups[1].core, 1);
        assert!(parse_leasekv("# Server\r\nredis_version:7\r\n").is_err());
    }
}
