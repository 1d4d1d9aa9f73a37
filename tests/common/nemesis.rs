//! Nemeses: faults injected into a real cluster while a [`Workload`] runs.
//!
//! Each nemesis runs rounds until a deadline; a round injects one fault, holds it, heals it
//! and waits until every group has a leader again, so the cluster is whole between rounds
//! (and at the end: [`Nemesis::heal`] only has to check). Fault lengths are drawn from a
//! seeded [`Rng`]; every action is logged with its time on the workload's clock, the same
//! time base as the history, so a violation can be lined up with the faults around it.
//!
//! | kind | one round |
//! |---|---|
//! | pause | SIGSTOP the leader of a random group for 1-1.8 s (several election timeouts), send reads to it while it is stopped, SIGCONT |
//! | kill | SIGKILL the leader of a random group, restart it after 0.2-1 s |
//! | isolate | `LEASEKV.DEBUG ISOLATE on` (or `in`: it still sends) on the leader of a random group for 0.6-1.5 s while clients keep reaching it, then `off` |
//! | transfer | `LEASEKV.ADMIN TRANSFER` of a random group to another voter, every 0.15-0.5 s |
//! | membership | start a spare node (fresh data dir, `join = true`), `ADDNODE` it, wait until it votes everywhere, `REMOVENODE` a random old member, kill it: it is the next spare |
//! | burst | 12 extra clients hammer one new key (mostly INCR) for 0.8-1.5 s; every other burst transfers the key's group leadership halfway |

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::cluster::{parse_info_groups, TestCluster};
use super::err_text;
use super::workload::{OpMix, Rng, Workload};

/// How long the cluster may take to have a leader for every group again after a fault.
pub const RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Pause,
    Kill,
    Isolate,
    Transfer,
    Membership,
    Burst,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Pause,
        Kind::Kill,
        Kind::Isolate,
        Kind::Transfer,
        Kind::Membership,
        Kind::Burst,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Pause => "pause",
            Kind::Kill => "kill",
            Kind::Isolate => "isolate",
            Kind::Transfer => "transfer",
            Kind::Membership => "membership",
            Kind::Burst => "burst",
        }
    }
}

/// What the nemesis did and when (ns on the workload's clock).
#[derive(Debug, Default)]
pub struct FaultLog {
    pub events: Vec<(u64, String)>,
    /// Faults injected (a heal is not counted).
    pub faults: u64,
}

impl FaultLog {
    fn note(&mut self, wl: &Workload, what: String) {
        self.events.push((wl.now_ns(), what));
    }

    fn fault(&mut self, wl: &Workload, what: String) {
        self.faults += 1;
        self.note(wl, what);
    }

    /// The events whose time is within `window` ns of `[from, to]` (all when None).
    pub fn render(&self, around: Option<(u64, u64)>, window: u64) -> String {
        let mut out = String::new();
        for (t, what) in &self.events {
            let shown = match around {
                Some((from, to)) => *t + window >= from && *t <= to.saturating_add(window),
                None => true,
            };
            if shown {
                let _ = writeln!(out, "  {:>10.3}s  {what}", *t as f64 / 1e9);
            }
        }
        out
    }
}

/// A nemesis acting on one cluster.
pub struct Nemesis {
    pub kind: Kind,
    rng: Rng,
    pub log: FaultLog,
    /// Current voters of every group.
    members: Vec<u64>,
    /// Membership: the node outside the cluster (stopped), and whether it ran before (its
    /// data dir must be wiped: it rejoins as a new member).
    spare: Option<u64>,
    spare_used: bool,
    bursts: u64,
}

impl Nemesis {
    pub fn new(kind: Kind, members: Vec<u64>, spare: Option<u64>, seed: u64) -> Nemesis {
        Nemesis {
            kind,
            rng: Rng::new(seed),
            log: FaultLog::default(),
            members,
            spare,
            spare_used: false,
            bursts: 0,
        }
    }

    /// The nodes that are voters now.
    pub fn members(&self) -> &[u64] {
        &self.members
    }

    /// Runs rounds until `until` (a round in progress finishes).
    pub fn run(&mut self, c: &mut TestCluster, wl: &Workload, until: Instant) {
        while Instant::now() < until {
            match self.kind {
                Kind::Pause => self.pause_round(c, wl),
                Kind::Kill => self.kill_round(c, wl),
                Kind::Isolate => self.isolate_round(c, wl),
                Kind::Transfer => self.transfer_round(c, wl),
                Kind::Membership => self.membership_round(c, wl),
                Kind::Burst => self.burst_round(c, wl),
            }
        }
    }

    /// Every round heals its own fault; this checks that nothing is left: every member
    /// runs, answers, and is not isolated.
    pub fn heal(&mut self, c: &mut TestCluster, wl: &Workload) {
        let live = c.live();
        for &id in &self.members {
            assert!(
                live.contains(&id),
                "member {id} is not running after the nemesis"
            );
            debug_isolate(c, id, "off");
        }
        self.log
            .note(wl, "healed: every member runs and is connected".into());
        wait_leaders(c, &self.members, RECOVERY_TIMEOUT);
    }

    fn random_group(&mut self, wl: &Workload) -> usize {
        self.rng.below(wl.plan().groups() as u64) as usize
    }

    fn settle(&mut self, c: &mut TestCluster, lo: u64, hi: u64) {
        wait_leaders(c, &self.members, RECOVERY_TIMEOUT);
        let d = self
            .rng
            .between(Duration::from_millis(lo), Duration::from_millis(hi));
        std::thread::sleep(d);
    }

    fn pause_round(&mut self, c: &mut TestCluster, wl: &Workload) {
        let g = self.random_group(wl);
        let l = wait_leaders(c, &self.members, RECOVERY_TIMEOUT)[g];
        let len = self
            .rng
            .between(Duration::from_millis(1000), Duration::from_millis(1800));
        c.pause(l);
        self.log.fault(
            wl,
            format!("SIGSTOP node {l} (leader of group {g}) for {len:?}"),
        );
        // Reads sent to the stopped node after the others elected a new leader and took new
        // writes: it must not answer them from its old lease when it wakes.
        std::thread::sleep(len.mul_f64(0.7));
        let keys = wl.current_keys();
        let probes = wl.probe_reads(c.client_port(l), &keys, len + Duration::from_secs(5));
        self.log.note(
            wl,
            format!("{} reads sent to the stopped node {l}", keys.len()),
        );
        std::thread::sleep(len.mul_f64(0.3));
        c.resume(l);
        self.log.note(wl, format!("SIGCONT node {l}"));
        let answered = probes
            .into_iter()
            .map(|p| p.join().expect("probe thread"))
            .filter(|d| matches!(d, super::workload::Done::Ok(_)))
            .count();
        self.log.note(
            wl,
            format!(
                "{answered}/{} reads sent while stopped were answered",
                keys.len()
            ),
        );
        self.settle(c, 300, 800);
    }

    fn kill_round(&mut self, c: &mut TestCluster, wl: &Workload) {
        let g = self.random_group(wl);
        let l = wait_leaders(c, &self.members, RECOVERY_TIMEOUT)[g];
        c.kill9(l);
        self.log
            .fault(wl, format!("SIGKILL node {l} (leader of group {g})"));
        let down = self
            .rng
            .between(Duration::from_millis(200), Duration::from_millis(1000));
        std::thread::sleep(down);
        c.restart(l);
        self.log.note(wl, format!("node {l} restarted and ready"));
        self.settle(c, 300, 800);
    }

    fn isolate_round(&mut self, c: &mut TestCluster, wl: &Workload) {
        let g = self.random_group(wl);
        let l = wait_leaders(c, &self.members, RECOVERY_TIMEOUT)[g];
        let mode = if self.rng.below(2) == 0 { "on" } else { "in" };
        let len = self
            .rng
            .between(Duration::from_millis(600), Duration::from_millis(1500));
        debug_isolate(c, l, mode);
        self.log.fault(
            wl,
            format!("ISOLATE {mode} node {l} (leader of group {g}) for {len:?}"),
        );
        std::thread::sleep(len);
        debug_isolate(c, l, "off");
        self.log.note(wl, format!("ISOLATE off node {l}"));
        self.settle(c, 300, 800);
    }

    fn transfer_round(&mut self, c: &mut TestCluster, wl: &Workload) {
        let g = self.random_group(wl);
        let l = wait_leaders(c, &self.members, RECOVERY_TIMEOUT)[g];
        let others: Vec<u64> = self.members.iter().copied().filter(|&m| m != l).collect();
        let to = others[self.rng.below(others.len() as u64) as usize];
        match admin(c, l, &["TRANSFER", &g.to_string(), &to.to_string()]) {
            Ok(reply) => self
                .log
                .fault(wl, format!("TRANSFER group {g} {l} -> {to}: {reply}")),
            // Leadership moved between the lookup and the command: not a fault.
            Err(e) => self
                .log
                .note(wl, format!("TRANSFER group {g} {l} -> {to} refused: {e}")),
        }
        let d = self
            .rng
            .between(Duration::from_millis(150), Duration::from_millis(500));
        std::thread::sleep(d);
    }

    fn membership_round(&mut self, c: &mut TestCluster, wl: &Workload) {
        let spare = self
            .spare
            .expect("the membership nemesis needs a spare node");
        if self.spare_used {
            // It was removed: it rejoins as a new member, with an empty data dir.
            let dir = c.data_dir(spare);
            std::fs::remove_dir_all(&dir).expect("wipe the spare's data dir");
            std::fs::create_dir_all(&dir).expect("recreate the spare's data dir");
        }
        let mut grown = self.members.clone();
        grown.push(spare);
        grown.sort_unstable();
        c.write_config(spare, &grown, true);
        c.start_node(spare);
        self.log
            .note(wl, format!("node {spare} started to join (fresh data dir)"));
        let via = self.members[self.rng.below(self.members.len() as u64) as usize];
        let raft = format!("127.0.0.1:{}", c.raft_port(spare));
        let client = format!("127.0.0.1:{}", c.client_port(spare));
        let reply = admin(c, via, &["ADDNODE", &spare.to_string(), &raft, &client])
            .unwrap_or_else(|e| panic!("ADDNODE {spare} via {via}: {e}"));
        self.log
            .fault(wl, format!("ADDNODE {spare} via node {via}: {reply}"));
        wait_for_voters(c, &grown, &grown, RECOVERY_TIMEOUT);
        self.log
            .note(wl, format!("node {spare} is a voter of every group"));

        let old = self.members.clone();
        let victim = old[self.rng.below(old.len() as u64) as usize];
        let shrunk: Vec<u64> = grown.iter().copied().filter(|&m| m != victim).collect();
        let via = shrunk[self.rng.below(shrunk.len() as u64) as usize];
        let reply = admin(c, via, &["REMOVENODE", &victim.to_string()])
            .unwrap_or_else(|e| panic!("REMOVENODE {victim} via {via}: {e}"));
        self.log
            .fault(wl, format!("REMOVENODE {victim} via node {via}: {reply}"));
        wait_for_voters(c, &shrunk, &shrunk, RECOVERY_TIMEOUT);
        c.kill9(victim);
        self.log
            .note(wl, format!("node {victim} removed everywhere and stopped"));
        self.members = shrunk;
        self.spare = Some(victim);
        self.spare_used = true;
        self.settle(c, 300, 800);
    }

    fn burst_round(&mut self, c: &mut TestCluster, wl: &Workload) {
        self.bursts += 1;
        let n = self.bursts;
        let g = self.random_group(wl);
        let key = wl.plan().special(&format!("burst{n}"), g);
        let len = self
            .rng
            .between(Duration::from_millis(800), Duration::from_millis(1500));
        let transfer = n.is_multiple_of(2);
        self.log.fault(
            wl,
            format!(
                "burst {n}: 12 clients on {key} (group {g}) for {len:?}{}",
                if transfer {
                    ", leader transfer halfway"
                } else {
                    ""
                }
            ),
        );
        std::thread::scope(|s| {
            let burst = s.spawn(|| wl.burst(&key, 12, len, OpMix::CONFLICTS));
            if transfer {
                std::thread::sleep(len / 2);
                let l = wait_leaders(c, &self.members, RECOVERY_TIMEOUT)[g];
                let to = *self
                    .members
                    .iter()
                    .find(|&&m| m != l)
                    .expect("another member");
                let what = match admin(c, l, &["TRANSFER", &g.to_string(), &to.to_string()]) {
                    Ok(r) => r,
                    Err(e) => format!("refused: {e}"),
                };
                self.log.note(
                    wl,
                    format!("burst {n}: TRANSFER group {g} {l} -> {to}: {what}"),
                );
            }
            burst.join().expect("burst panicked");
        });
        self.log.note(wl, format!("burst {n} done"));
        self.settle(c, 300, 800);
    }
}

/// `LEASEKV.DEBUG ISOLATE <mode>` on node `id` (panics if refused).
pub fn debug_isolate(c: &TestCluster, id: u64, mode: &str) {
    let mut con = super::workload::connect(c.client_port(id), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connect to node {id}: {e}"));
    let r: redis::RedisResult<()> = redis::cmd("LEASEKV.DEBUG")
        .arg("ISOLATE")
        .arg(mode)
        .query(&mut con);
    if let Err(e) = r {
        panic!(
            "LEASEKV.DEBUG ISOLATE {mode} on node {id}: {}",
            err_text(&e)
        );
    }
}

/// `LEASEKV.ADMIN <args>` sent to node `via`; the status reply, or the error text.
pub fn admin(c: &TestCluster, via: u64, args: &[&str]) -> Result<String, String> {
    // ADDNODE/REMOVENODE retry for up to 30 s per group inside the server.
    let mut con = super::workload::connect(c.client_port(via), Duration::from_secs(150))
        .map_err(|e| format!("connect to node {via}: {e}"))?;
    let mut cmd = redis::cmd("LEASEKV.ADMIN");
    for a in args {
        cmd.arg(*a);
    }
    cmd.query::<String>(&mut con).map_err(|e| err_text(&e))
}

/// The leader of every group among `ids` once they agree (each group: exactly one of them
/// claims it, and all report its term). Panics after `timeout`.
pub fn wait_leaders(c: &TestCluster, ids: &[u64], timeout: Duration) -> Vec<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match agreed_leaders(c, ids) {
            Ok(l) => return l,
            Err(e) => e,
        };
        assert!(
            Instant::now() < deadline,
            "nodes {ids:?} did not agree on a leader for every group within {timeout:?}: {last}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn agreed_leaders(c: &TestCluster, ids: &[u64]) -> Result<Vec<u64>, String> {
    let mut infos = Vec::new();
    for &id in ids {
        let info = c
            .try_info(id, "leasekv")
            .ok_or_else(|| format!("node {id} did not answer INFO"))?;
        infos.push((id, parse_info_groups(&info)?));
    }
    let groups = infos[0].1.len();
    (0..groups)
        .map(|g| {
            let leaders: Vec<u64> = infos
                .iter()
                .filter(|(_, gs)| gs.get(g).is_some_and(|x| x.leader))
                .map(|(id, _)| *id)
                .collect();
            let [leader] = leaders[..] else {
                return Err(format!("group {g} has leaders {leaders:?}"));
            };
            let mut terms: Vec<u64> = infos
                .iter()
                .filter_map(|(_, gs)| gs.get(g).map(|x| x.term))
                .collect();
            terms.dedup();
            if terms.len() != 1 {
                return Err(format!("group {g}: terms {terms:?}"));
            }
            Ok(leader)
        })
        .collect()
}

/// Waits until every node in `via` reports, for every group, exactly the voters `want`.
pub fn wait_for_voters(c: &TestCluster, via: &[u64], want: &[u64], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let want: Vec<i64> = want.iter().map(|&v| v as i64).collect();
    let mut last = String::new();
    loop {
        let done = via.iter().all(|&id| {
            let Ok(mut con) = super::workload::connect(c.client_port(id), Duration::from_secs(5))
            else {
                return false;
            };
            match redis::cmd("LEASEKV.ADMIN")
                .arg("MEMBERS")
                .query::<Vec<(String, Vec<i64>, Vec<i64>, i64)>>(&mut con)
            {
                Ok(groups) => {
                    let ok = !groups.is_empty()
                        && groups.iter().all(|(_, voters, learners, _)| {
                            let mut v = voters.clone();
                            v.sort_unstable();
                            v == want && learners.is_empty()
                        });
                    if !ok {
                        last = format!("node {id}: {groups:?}");
                    }
                    ok
                }
                Err(e) => {
                    last = format!("node {id}: {e}");
                    false
                }
            }
        });
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "voters never became {want:?} on nodes {via:?} within {timeout:?}; last seen {last}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
