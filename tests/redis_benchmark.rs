//! The stock `redis-benchmark` client against the server: 50 connections, pipelines of 16.
//! Skipped (with a notice) when `redis-benchmark` is not installed (`.ci/run` installs it).

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{q, Server};

const TIMEOUT: Duration = Duration::from_secs(300);
const REQUESTS: i64 = 20_000;

fn on_path(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

fn read(p: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()
}

#[test]
fn redis_benchmark_set_get_incr_mset() {
    let Some(bench) = on_path("redis-benchmark") else {
        eprintln!(
            "notice: redis-benchmark not on PATH, test skipped (apt-get install redis-tools)"
        );
        return;
    };
    let mut s = Server::start_for_semantics();
    let dir = tempfile::tempdir().expect("temp dir");
    let out_path = dir.path().join("out");
    let err_path = dir.path().join("err");
    let mut child = Command::new(&bench)
        .args(["-h", "127.0.0.1", "-p", &s.port().to_string()])
        .args(["-t", "set,get,incr,mset", "-c", "50", "-P", "16"])
        .args(["-n", &REQUESTS.to_string(), "-q"])
        .stdin(Stdio::null())
        .stdout(Stdio::from(File::create(&out_path).expect("out file")))
        .stderr(Stdio::from(File::create(&err_path).expect("err file")))
        .spawn()
        .expect("spawn redis-benchmark");
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            // Only the benchmark process this test started.
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "redis-benchmark did not finish within {TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}",
                read(&out_path),
                read(&err_path)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = read(&out_path);
    let err = read(&err_path);
    let report = format!("stdout:\n{out}\nstderr:\n{err}");
    assert!(
        status.success(),
        "redis-benchmark exited {status}\n{report}"
    );

    // Progress lines are separated by '\r'; the final ones by '\n'.
    let lines: Vec<&str> = out
        .split(['\r', '\n'])
        .chain(err.split(['\r', '\n']))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    for l in &lines {
        let lower = l.to_lowercase();
        assert!(
            !lower.contains("error") && !l.starts_with("ERR") && !l.starts_with('-'),
            "error line from redis-benchmark: {l:?}\n{report}"
        );
    }
    for test in ["SET", "GET", "INCR", "MSET (10 keys)"] {
        let rate = lines.iter().find_map(|l| {
            let rest = l.strip_prefix(test)?.strip_prefix(": ")?;
            let (num, tail) = rest.split_once(' ')?;
            tail.starts_with("requests per second")
                .then(|| num.parse::<f64>().ok())
                .flatten()
        });
        match rate {
            Some(r) => assert!(r > 0.0, "{test}: rate {r}\n{report}"),
            None => panic!("no `{test}: N requests per second` line\n{report}"),
        }
    }

    // The benchmark's writes really happened: INCR hit one counter exactly REQUESTS times.
    let mut c = s.client();
    let counter: i64 = q(&mut c, &["GET", "counter:__rand_int__"]);
    assert_eq!(counter, REQUESTS);
    // SET/MSET wrote the default 3-byte payload.
    let len: i64 = q(&mut c, &["STRLEN", "key:__rand_int__"]);
    assert_eq!(len, 3);
    if !s.is_redis() {
        s.assert_alive();
    }
}
