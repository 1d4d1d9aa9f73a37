//! The data directory's identity and exclusive lock.
//!
//! `leasekv.meta` records the layout the data was written with (node id, groups, cores);
//! starting with a different layout would route keys to groups that do not hold them, so it
//! is refused with a clear error. `LOCK` (flock) keeps two processes off one directory.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

const META: &str = "leasekv.meta";
const FORMAT: u32 = 1;

/// Holds the directory lock for the life of the process.
pub struct DataDir {
    pub path: PathBuf,
    _lock: File,
}

#[derive(Debug, PartialEq, Eq)]
struct Meta {
    format: u32,
    cluster_id: String,
    node_id: u64,
    groups: u32,
    cores: usize,
}

impl Meta {
    fn render(&self) -> String {
        format!(
            "# leasekv data directory layout; do not edit\nformat = {}\ncluster_id = {}\nnode_id = {}\ngroups = {}\ncores = {}\n",
            self.format, self.cluster_id, self.node_id, self.groups, self.cores
        )
    }

    fn parse(text: &str) -> Result<Meta, String> {
        let mut m = Meta {
            format: 0,
            cluster_id: String::new(),
            node_id: 0,
            groups: 0,
            cores: 0,
        };
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format!("bad line {line:?}"))?;
            let v = v.trim();
            let bad = |_| format!("bad value in {line:?}");
            match k.trim() {
                "format" => m.format = v.parse().map_err(bad)?,
                "cluster_id" => m.cluster_id = v.to_string(),
                "node_id" => m.node_id = v.parse().map_err(bad)?,
                "groups" => m.groups = v.parse().map_err(bad)?,
                "cores" => m.cores = v.parse().map_err(bad)?,
                other => return Err(format!("unknown key {other:?}")),
            }
        }
        Ok(m)
    }
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates or opens `path`, locks it, and checks (or records) its layout.
pub fn open(
    path: &Path,
    cluster_id: &str,
    node_id: u64,
    groups: u32,
    cores: usize,
) -> Result<DataDir, String> {
    fs::create_dir_all(path)
        .map_err(|e| format!("cannot create data dir {}: {e}", path.display()))?;
    let lock_path = path.join("LOCK");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!(
            "data dir {} is in use by another leasekv process",
            path.display()
        ));
    }
    let want = Meta {
        format: FORMAT,
        cluster_id: cluster_id.to_string(),
        node_id,
        groups,
        cores,
    };
    let meta_path = path.join(META);
    match fs::read_to_string(&meta_path) {
        Ok(text) => {
            let have = Meta::parse(&text).map_err(|e| format!("{}: {e}", meta_path.display()))?;
            if have.format != FORMAT {
                return Err(format!(
                    "data dir {} has format {}, this leasekv reads format {FORMAT}",
                    path.display(),
                    have.format
                ));
            }
            if have.cluster_id != cluster_id {
                return Err(format!(
                    "data dir {} belongs to cluster {:?}, but this node is configured for cluster {cluster_id:?}",
                    path.display(),
                    have.cluster_id
                ));
            }
            if have.node_id != node_id {
                return Err(format!(
                    "data dir {} belongs to node_id {}, but this node is configured as node_id {node_id}",
                    path.display(), have.node_id
                ));
            }
            if have.groups != groups || have.cores != cores {
                return Err(format!(
                    "data dir {} was written with groups = {} on {} core(s); this config has groups = {groups} on {cores} core(s). \
                     Changing the shard layout of existing data is not supported: use the original `groups` and number of `cores` \
                     (which CPUs they are pinned to may change)",
                    path.display(), have.groups, have.cores
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let tmp = path.join(format!("{META}.tmp"));
            let mut f = File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
            f.write_all(want.render().as_bytes())
                .and_then(|_| f.sync_all())
                .and_then(|_| fs::rename(&tmp, &meta_path))
                .and_then(|_| fsync_dir(path))
                .map_err(|e| format!("cannot write {}: {e}", meta_path.display()))?;
        }
        Err(e) => return Err(format!("cannot read {}: {e}", meta_path.display())),
    }
    Ok(DataDir {
        path: path.to_path_buf(),
        _lock: lock,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_layout_then_refuses_a_different_one() {
        let dir = tempfile::tempdir().unwrap();
        let d = open(dir.path(), "c", 1, 4, 2).unwrap();
        // Second process on the same dir is refused while the first holds the lock.
        let busy = open(dir.path(), "c", 1, 4, 2).err().unwrap();
        assert!(busy.contains("in use"), "{busy}");
        drop(d);
        assert!(open(dir.path(), "c", 1, 4, 2).is_ok());
        let e = open(dir.path(), "c", 1, 8, 2).err().unwrap();
        assert!(e.contains("groups = 4") && e.contains("groups = 8"), "{e}");
        let e = open(dir.path(), "c", 2, 4, 2).err().unwrap();
        assert!(e.contains("node_id 1"), "{e}");
        let e = open(dir.path(), "other", 1, 4, 2).err().unwrap();
        assert!(e.contains("cluster \"c\""), "{e}");
    }

    #[test]
    fn meta_parse_rejects_garbage() {
        assert!(Meta::parse("format = x").is_err());
        assert!(Meta::parse("what = 1").is_err());
        let m = Meta {
            format: 1,
            cluster_id: "prod".into(),
            node_id: 3,
            groups: 4,
            cores: 2,
        };
        assert_eq!(Meta::parse(&m.render()).unwrap(), m);
    }
}
