//! Which core of a leasekv node serves a connection, and a hash tag whose shard group that
//! core (or another one) owns.
//!
//! The kernel spreads connections over the per-core listeners (SO_REUSEPORT), so a client
//! cannot choose its core; it can find out. leasekv counts commands per core
//! (`INFO leasekv`, `coreN:...,commands=N`), and a connection's commands all run on its
//! core. The probe sends `INFO leasekv`, `PROBE_PINGS` PINGs and `INFO leasekv` in one
//! write: the connection's core counted at least `PROBE_PINGS` more commands between the
//! two INFOs, an idle core none. Probes are serialized process-wide so they do not see
//! each other; traffic from anywhere else during the probe makes it fail, not guess.

use crate::info::parse_leasekv;
use crate::resp::{self, Reply, ReplyBuffer};
use crate::slots::find_tag;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// PINGs between the two INFOs of a probe.
const PROBE_PINGS: u64 = 64;

/// One probe at a time in this process (workers on other threads wait for it without
/// blocking their executors).
static PROBING: AtomicBool = AtomicBool::new(false);

/// Holds `PROBING` until dropped.
struct ProbeTurn;

impl ProbeTurn {
    async fn take(deadline: Instant) -> Result<ProbeTurn, String> {
        while PROBING
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            if Instant::now() >= deadline {
                return Err("probe: timed out waiting for other connections' probes".into());
            }
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        Ok(ProbeTurn)
    }
}

impl Drop for ProbeTurn {
    fn drop(&mut self) {
        PROBING.store(false, Ordering::Release);
    }
}

/// The core (index) serving `stream`'s connection, and a hash tag of a group owned by that
/// core (`own`) or by the next core (`!own`).
pub(crate) async fn core_tag(
    stream: &mut TcpStream,
    own: bool,
    timeout: Duration,
) -> Result<(usize, String), String> {
    // Other connections may queue for their turn: allow for a few of them.
    let _turn = ProbeTurn::take(Instant::now() + timeout * 8).await?;
    let mut req = Vec::new();
    resp::encode_command(&mut req, &[b"INFO", b"leasekv"]);
    for _ in 0..PROBE_PINGS {
        resp::encode_command(&mut req, &[b"PING"]);
    }
    resp::encode_command(&mut req, &[b"INFO", b"leasekv"]);
    stream
        .write_all(&req)
        .await
        .map_err(|e| format!("probe write: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut rbuf = ReplyBuffer::new(64 << 10);
    let mut infos = Vec::new();
    let mut replies = 0;
    while replies < PROBE_PINGS + 2 {
        match rbuf.next_reply() {
            Ok(Some(Reply::Bulk(text))) => {
                infos.push(String::from_utf8_lossy(text).into_owned());
                replies += 1;
                continue;
            }
            Ok(Some(Reply::Error(e))) => {
                return Err(format!(
                    "probe: server answered {}",
                    String::from_utf8_lossy(e)
                ))
            }
            Ok(Some(_)) => {
                replies += 1;
                continue;
            }
            Ok(None) => {}
            Err(e) => return Err(format!("probe: bad reply: {e}")),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let read =
            futures_lite::future::or(async { Some(stream.read(rbuf.spare()).await) }, async {
                glommio::timer::sleep(left).await;
                None
            })
            .await;
        match read {
            Some(Ok(0)) => return Err("probe: connection closed".into()),
            Some(Ok(n)) => rbuf.commit(n),
            Some(Err(e)) => return Err(format!("probe read: {e}")),
            None => return Err("probe: timed out".into()),
        }
    }
    let [before, after] = &infos[..] else {
        return Err(format!(
            "probe: expected 2 INFO replies, got {}",
            infos.len()
        ));
    };
    choose(before, after, own)
}

/// The probe's verdict from the two INFO texts.
fn choose(before: &str, after: &str, own: bool) -> Result<(usize, String), String> {
    let (c0, _) = parse_leasekv(before)?;
    let (c1, groups) = parse_leasekv(after)?;
    if c0.len() != c1.len() {
        return Err("probe: the number of cores changed".into());
    }
    let deltas: Vec<u64> = c0
        .iter()
        .zip(&c1)
        .map(|(a, b)| b.saturating_sub(*a))
        .collect();
    let busy: Vec<usize> = (0..deltas.len())
        .filter(|&i| deltas[i] >= PROBE_PINGS)
        .collect();
    let [core] = busy[..] else {
        return Err(format!(
            "probe: cannot tell the connection's core (command counts per core moved by \
             {deltas:?}); is other traffic reaching the server?"
        ));
    };
    if deltas.len() < 2 && !own {
        return Err("other-core keys need a server with at least 2 cores".into());
    }
    let want_core = if own { core } else { (core + 1) % deltas.len() };
    let ranges: Vec<(u16, u16)> = groups
        .iter()
        .filter(|g| g.core == want_core)
        .map(|g| g.slots)
        .collect();
    if ranges.is_empty() {
        return Err(format!("probe: core {want_core} owns no shard group"));
    }
    let tag = find_tag(&format!("c{want_core}-"), |s| {
        ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&s))
    })
    .ok_or_else(|| format!("probe: no tag found for core {want_core}"))?;
    Ok((core, tag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slots::key_slot;

    fn info(commands: [u64; 2]) -> String {
        format!(
            "core0:cpu=0,clients=1,commands={}\r\ncore1:cpu=1,clients=1,commands={}\r\n\
             group0:core=0,slots=0-8191,role=leader,lease_hits=0,lease_misses=0\r\n\
             group1:core=1,slots=8192-16383,role=leader,lease_hits=0,lease_misses=0\r\n",
            commands[0], commands[1]
        )
    }

    #[test]
    fn the_busy_core_is_the_connections() {
        let (core, tag) = choose(&info([10, 5]), &info([10, 5 + 65]), true).unwrap();
        assert_eq!(core, 1);
        assert!(key_slot(tag.as_bytes()) >= 8192, "{tag}");
        let (core, tag) = choose(&info([10, 5]), &info([10 + 65, 5]), false).unwrap();
        assert_eq!(core, 0);
        assert!(key_slot(tag.as_bytes()) >= 8192, "{tag}");
    }

    #[test]
    fn ambiguous_counts_are_an_error() {
        assert!(choose(&info([0, 0]), &info([65, 65]), true).is_err());
        assert!(choose(&info([0, 0]), &info([3, 1]), true).is_err());
    }
}
