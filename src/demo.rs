//! `leasekv demo`: a local cluster of N nodes on loopback, each a real `leasekv serve`
//! process with its data in a temporary directory. Ctrl-C (or SIGTERM) stops them all.

use std::io::{BufRead, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Port layout for node i (1-based) with `cores` cores: client port `base + i - 1`; Raft
/// ports `base + 100 + (i - 1) * cores ..` (one per core); metrics `base + 200 + i - 1`.
pub struct Layout {
    pub nodes: usize,
    pub base_port: u16,
    pub cores: Vec<usize>,
    /// `read_mode` for every node ("lease" or "readindex").
    pub read_mode: String,
}

impl Layout {
    pub fn client_port(&self, i: usize) -> u16 {
        self.base_port + (i as u16 - 1)
    }

    pub fn raft_port(&self, i: usize) -> u16 {
        self.base_port + 100 + ((i - 1) * self.cores.len()) as u16
    }

    fn check(&self) -> Result<(), String> {
        if !(1..=9).contains(&self.nodes) {
            return Err(format!("--nodes must be 1..=9, got {}", self.nodes));
        }
        if self.cores.is_empty() || self.nodes * self.cores.len() > 100 {
            return Err(
                "too many nodes x cores for the port layout (at most 100 Raft ports)".into(),
            );
        }
        let top = u32::from(self.base_port) + 200 + self.nodes as u32;
        if self.base_port < 1024 || top > u32::from(u16::MAX) {
            return Err(format!(
                "--base-port {} leaves no room for the port layout",
                self.base_port
            ));
        }
        Ok(())
    }

    /// The TOML configuration of node `i`.
    pub fn config(&self, i: usize, data_dir: &Path) -> String {
        let cores: Vec<String> = self.cores.iter().map(|c| c.to_string()).collect();
        let mut s = format!(
            "node_id = {i}\ncluster_id = \"demo\"\ndata_dir = \"{}\"\ncores = [{}]\nreplication = {}\nread_mode = \"{}\"\n",
            data_dir.display(),
            cores.join(", "),
            self.nodes,
            self.read_mode
        );
        for n in 1..=self.nodes {
            s.push_str(&format!(
                "\n[[nodes]]\nid = {n}\nraft = \"127.0.0.1:{}\"\nclient = \"127.0.0.1:{}\"\n",
                self.raft_port(n),
                self.client_port(n)
            ));
        }
        s
    }
}

struct Node {
    id: usize,
    child: Child,
    log: PathBuf,
}

fn ping(port: u16) -> bool {
    let Ok(mut s) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("+PONG")
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill on the pid of a child we spawned and have not reaped.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

fn stop_all(nodes: &mut [Node]) {
    for n in nodes.iter() {
        signal(&n.child, libc::SIGTERM);
    }
    let until = Instant::now() + Duration::from_secs(10);
    for n in nodes.iter_mut() {
        loop {
            match n.child.try_wait() {
                Ok(Some(status)) => {
                    eprintln!("node {} stopped ({status})", n.id);
                    break;
                }
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    eprintln!("node {} did not stop in time; killing it", n.id);
                    let _ = n.child.kill();
                    let _ = n.child.wait();
                    break;
                }
            }
        }
    }
}

/// Runs the demo until SIGINT/SIGTERM. `keep` leaves the data directory in place.
pub fn run(layout: Layout, keep: bool) -> Result<(), String> {
    layout.check()?;
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the leasekv binary: {e}"))?;
    let dir = std::env::temp_dir().join(format!("leasekv-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut stop = signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;

    let mut nodes = Vec::new();
    for i in 1..=layout.nodes {
        let cfg_path = dir.join(format!("node-{i}.toml"));
        std::fs::write(&cfg_path, layout.config(i, &dir.join(format!("node-{i}"))))
            .map_err(|e| format!("cannot write {}: {e}", cfg_path.display()))?;
        let log = dir.join(format!("node-{i}.log"));
        let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&exe)
            .args(["serve", "--config"])
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start node {i}: {e}"))?;
        nodes.push(Node { id: i, child, log });
    }

    let until = Instant::now() + Duration::from_secs(30);
    for i in 0..nodes.len() {
        let (id, port) = (nodes[i].id, layout.client_port(nodes[i].id));
        while !ping(port) {
            if let Ok(Some(status)) = nodes[i].child.try_wait() {
                let log = std::fs::read_to_string(&nodes[i].log).unwrap_or_default();
                stop_all(&mut nodes);
                return Err(format!(
                    "node {id} exited during start-up ({status}):\n{log}"
                ));
            }
            if Instant::now() > until {
                stop_all(&mut nodes);
                return Err(format!("node {id} did not answer PING within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    println!(
        "leasekv demo: {} nodes on loopback, data in {}",
        layout.nodes,
        dir.display()
    );
    for n in &nodes {
        println!(
            "  node {}: redis-cli -p {}   (Raft ports from {}, log {})",
            n.id,
            layout.client_port(n.id),
            layout.raft_port(n.id),
            n.log.display()
        );
    }
    println!("Press Ctrl-C to stop all nodes.");
    let _ = std::io::stdout().flush();

    // Run until a signal. A node that dies (e.g. killed to watch a failover) is reported
    // and left dead; the demo ends by itself only when no node is left.
    let mut reported = vec![false; nodes.len()];
    loop {
        if stop.pending().next().is_some() {
            break;
        }
        for (i, n) in nodes.iter_mut().enumerate() {
            if !reported[i] {
                if let Ok(Some(status)) = n.child.try_wait() {
                    reported[i] = true;
                    eprintln!("node {} exited ({status}); log: {}", n.id, n.log.display());
                }
            }
        }
        if reported.iter().all(|r| *r) {
            eprintln!("every node has exited");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop_all(&mut nodes);
    if keep {
        println!("data kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_layout_never_overlaps() {
        let l = Layout {
            nodes: 3,
            base_port: 7001,
            cores: vec![0, 1],
            read_mode: "lease".into(),
        };
        assert_eq!((l.client_port(1), l.client_port(3)), (7001, 7003));
        let mut raft: Vec<u16> = (1..=3)
            .flat_map(|i| (0..2).map(move |c| (i, c)))
            .map(|(i, c)| l.raft_port(i) + c)
            .collect();
        raft.sort_unstable();
        raft.dedup();
        assert_eq!(raft.len(), 6);
        assert_eq!(raft[0], 7101);
        let cfg = l.config(2, Path::new("/tmp/x"));
        assert!(cfg.contains("node_id = 2") && cfg.contains("read_mode = \"lease\""));
    }

    #[test]
    fn bad_layouts_are_refused() {
        assert!(Layout {
            nodes: 0,
            base_port: 7001,
            cores: vec![0],
            read_mode: "lease".into(),
        }
        .check()
        .is_err());
        assert!(Layout {
            nodes: 3,
            base_port: 65500,
            cores: vec![0],
            read_mode: "lease".into(),
        }
        .check()
        .is_err());
        assert!(Layout {
            nodes: 3,
            base_port: 7001,
            cores: vec![0, 1],
            read_mode: "lease".into(),
        }
        .check()
        .is_ok());
    }
}
