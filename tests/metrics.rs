//! The metrics endpoint of the real binary: scrape `GET /metrics` over a plain socket, check the
//! metric families exist and that commands, latency histograms and lease reads count exactly
//! the commands this test sent (as deltas between two scrapes: the harness' readiness PINGs
//! come before the first one).

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::server::{free_port, IO_TIMEOUT};
use common::{wait_until, Resp, Server, ServerOptions};

/// One HTTP exchange: (status code, lower-cased headers, body).
fn http(port: u16, request: &str) -> std::io::Result<(u16, BTreeMap<String, String>, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?; // the server closes after one response
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("response head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let code = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect::<BTreeMap<_, _>>();
    let len: usize = headers["content-length"].parse().expect("content-length");
    if !request.starts_with("HEAD ") {
        assert_eq!(len, body.len(), "Content-Length matches the body");
    }
    Ok((code, headers, body.to_string()))
}

/// A parsed exposition: every sample as (name, labels, value).
struct Scrape {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
    text: String,
}

impl Scrape {
    fn parse(text: String) -> Scrape {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').expect("sample line");
                let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {l:?}"));
                let (name, labels) = match series.split_once('{') {
                    None => (series.to_string(), BTreeMap::new()),
                    Some((name, rest)) => {
                        let inner = rest.strip_suffix('}').expect("closing brace");
                        let labels = inner
                            .split(',')
                            .map(|kv| {
                                let (k, v) = kv.split_once('=').expect("label");
                                (k.to_string(), v.trim_matches('"').to_string())
                            })
                            .collect();
                        (name.to_string(), labels)
                    }
                };
                (name, labels, value)
            })
            .collect();
        Scrape { samples, text }
    }

    /// Sum of the samples named `name` whose labels include every pair of `matching`.
    fn sum(&self, name: &str, matching: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, labels, _)| {
                n == name
                    && matching
                        .iter()
                        .all(|(k, v)| labels.get(*k).is_some_and(|l| l == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|(n, _, _)| n == name)
    }
}

fn scrape(port: u16) -> Scrape {
    let (code, headers, body) =
        http(port, "GET /metrics HTTP/1.1\r\nHost: leasekv\r\n\r\n").expect("scrape");
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        headers["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    Scrape::parse(body)
}

fn start_with_metrics() -> (Server, u16) {
    let port = free_port();
    let server = Server::start(ServerOptions::with_config(&format!(
        "metrics_addr = \"127.0.0.1:{port}\"\n"
    )));
    // The endpoint starts with core 0; wait until it answers.
    wait_until(Duration::from_secs(10), "metrics endpoint", || {
        http(port, "GET /metrics HTTP/1.1\r\n\r\n").ok()
    });
    (server, port)
}

#[test]
fn scrape_reflects_the_commands_sent() {
    let (mut server, port) = start_with_metrics();
    let before = scrape(port);

    // One hash tag: every key in one group, so the reads below all hit a ready group.
    let mut c = server.raw();
    for i in 0..5 {
        let key = format!("{{m}}k{i}");
        assert_eq!(c.cmd(&["SET", &key, "v"]), Resp::simple("OK"));
    }
    for key in ["{m}k0", "{m}k1", "{m}k2"] {
        assert_eq!(c.cmd(&["GET", key]), Resp::bulk("v"));
    }
    assert_eq!(c.cmd(&["get", "{m}missing"]), Resp::NilBulk);
    assert_eq!(c.cmd(&["PING"]), Resp::simple("PONG"));
    assert!(matches!(c.cmd(&["NOSUCHCOMMAND"]), Resp::Error(_)));
    let sent = 5.0 + 4.0 + 1.0 + 1.0;

    let after = scrape(port);
    let delta = |name: &str, matching: &[(&str, &str)]| {
        after.sum(name, matching) - before.sum(name, matching)
    };
    assert_eq!(delta("leasekv_commands_total", &[]), sent, "{}", after.text);
    let hist = "leasekv_request_duration_seconds";
    let count = format!("{hist}_count");
    let bucket = format!("{hist}_bucket");
    assert_eq!(delta(&count, &[("command", "get")]), 4.0, "{}", after.text);
    assert_eq!(delta(&count, &[("command", "set")]), 5.0, "{}", after.text);
    assert_eq!(delta(&count, &[("command", "ping")]), 1.0);
    assert_eq!(delta(&count, &[("command", "other")]), 1.0);
    assert_eq!(delta(&count, &[]), sent);
    assert_eq!(
        after.sum(&bucket, &[("command", "get"), ("le", "+Inf")]),
        after.sum(&count, &[("command", "get")]),
        "+Inf bucket equals the count"
    );
    assert!(after.sum(&format!("{hist}_sum"), &[("command", "set")]) > 0.0);

    // Every node-local family is there, labelled with the node.
    for name in [
        "leasekv_uptime_seconds",
        "leasekv_commands_total",
        "leasekv_connected_clients",
        "leasekv_hops_sent_total",
        "leasekv_hops_received_total",
        "leasekv_wal_syncs_total",
        "leasekv_wal_written_bytes_total",
        "leasekv_wal_compactions_total",
        "leasekv_expired_keys_total",
        "leasekv_group_keys",
        "leasekv_group_term",
        "leasekv_group_commit_index",
        "leasekv_group_applied_index",
        "leasekv_group_is_leader",
        "leasekv_group_leader_id",
        "leasekv_lease_reads_total",
        "leasekv_lease_remaining_seconds",
        "leasekv_lease_invalidations_total",
        "leasekv_request_duration_seconds_bucket",
    ] {
        assert!(after.has(name), "{name} missing\n{}", after.text);
        assert!(
            after
                .samples
                .iter()
                .filter(|(n, _, _)| n == name)
                .all(|(_, l, _)| l.get("node").map(String::as_str) == Some("1")),
            "{name} carries node=\"1\""
        );
    }
    // Single node, default 2 cores x 2 groups each: this node leads every group.
    let groups = after.sum("leasekv_group_is_leader", &[]);
    assert_eq!(groups, 4.0, "{}", after.text);
    assert_eq!(after.sum("leasekv_group_leader_id", &[]), groups * 1.0);
    assert_eq!(after.sum("leasekv_group_keys", &[]), 5.0);
    assert!(after.sum("leasekv_connected_clients", &[]) >= 1.0);
    assert!(delta("leasekv_wal_written_bytes_total", &[]) > 0.0);
    assert!(delta("leasekv_wal_syncs_total", &[]) > 0.0);
    // Each GET passed the read gate once (a one-voter group reads locally: a "hit").
    let reads = delta("leasekv_lease_reads_total", &[("outcome", "hit")])
        + delta("leasekv_lease_reads_total", &[("outcome", "miss")]);
    assert_eq!(reads, 4.0, "{}", after.text);
    server.assert_alive();
}

#[test]
fn endpoint_rejects_other_requests_and_keeps_serving() {
    let (mut server, port) = start_with_metrics();
    let (code, _, _) = http(port, "GET /nope HTTP/1.1\r\n\r\n").expect("404");
    assert_eq!(code, 404);
    let (code, headers, _) = http(port, "POST /metrics HTTP/1.1\r\n\r\n").expect("405");
    assert_eq!(code, 405);
    assert_eq!(headers["allow"], "GET, HEAD");
    let (code, _, _) = http(port, "hello\r\n\r\n").expect("400");
    assert_eq!(code, 400);
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
    // Answered once 8 KiB arrived; the rest is read and discarded so the reply is not reset.
    let (code, _, _) = http(port, &huge).expect("431");
    assert_eq!(code, 431);
    let (code, headers, body) = http(port, "HEAD /metrics HTTP/1.1\r\n\r\n").expect("HEAD");
    assert_eq!(code, 200);
    assert!(body.is_empty());
    assert!(headers.contains_key("content-type"));
    // Still serving, and the client port too.
    assert!(scrape(port).has("leasekv_commands_total"));
    assert_eq!(server.raw().cmd(&["PING"]), Resp::simple("PONG"));
    server.assert_alive();
}
