//! Unit tests: histogram bucketing and concurrency, command families, the exposition, and
//! the HTTP request reader/router/handler (the timing ones on a real glommio executor).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::LocalExecutorBuilder;

use super::collect::Snapshot;
use super::histogram::{bucket_index, family_count, BOUNDS_NS, BUCKETS};
use super::http::{self, HeadError, Limits, Route, Status};
use super::*;
use crate::command::COMMANDS;
use crate::core::{CoreStats, GroupStats, Shared};
use crate::sync::Latch;

fn run<F: Future<Output = ()>>(f: F) {
    LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .make()
        .expect("executor")
        .run(f);
}

// ---------------------------------------------------------------- histogram

#[test]
fn bucket_bounds_are_inclusive_upper_bounds() {
    assert_eq!(bucket_index(0), 0);
    assert_eq!(bucket_index(1), 0);
    for (i, &bound) in BOUNDS_NS.iter().enumerate() {
        assert_eq!(bucket_index(bound), i, "{bound} ns is in bucket le={bound}");
        assert_eq!(
            bucket_index(bound + 1),
            i + 1,
            "{} ns is above it",
            bound + 1
        );
    }
    assert_eq!(bucket_index(10_000_000_001), BUCKETS - 1);
    assert_eq!(bucket_index(u64::MAX), BUCKETS - 1);
    assert!(BOUNDS_NS.windows(2).all(|w| w[0] < w[1]), "ascending");
    assert_eq!(
        (BOUNDS_NS[0], BOUNDS_NS[BOUNDS_NS.len() - 1]),
        (10_000, 10_000_000_000)
    );
}

#[test]
fn histogram_counts_and_sums() {
    let h = Histogram::default();
    h.record(Duration::from_micros(5)); // bucket 0
    h.record(Duration::from_micros(15)); // le 20us
    h.record(Duration::from_micros(20)); // le 20us
    h.record(Duration::from_millis(3)); // le 5ms
    h.record(Duration::from_secs(60)); // +Inf
    let s = h.snapshot();
    assert_eq!(s.count(), 5);
    assert_eq!(s.buckets[0], 1);
    assert_eq!(s.buckets[1], 2);
    assert_eq!(s.buckets[bucket_index(5_000_000)], 1);
    assert_eq!(s.buckets[BUCKETS - 1], 1);
    assert_eq!(
        s.sum_ns,
        5_000 + 15_000 + 20_000 + 3_000_000 + 60_000_000_000
    );
    // A duration too long for u64 nanoseconds saturates instead of wrapping.
    let h = Histogram::default();
    h.record(Duration::MAX);
    assert_eq!(h.snapshot().sum_ns, u64::MAX);
    assert_eq!(h.snapshot().buckets[BUCKETS - 1], 1);
}

#[test]
fn concurrent_recording_loses_nothing() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 20_000;
    let latency = Arc::new(Latency::new(2));
    let get = family_of(b"get");
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let latency = latency.clone();
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    // Two threads share each core's histogram: contended adds must not be lost.
                    latency.record((t % 2) as usize, get, Duration::from_nanos(i * 1_000));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("recorder thread");
    }
    let per_thread_sum: u64 = (0..PER_THREAD).map(|i| i * 1_000).sum();
    for core in 0..2 {
        let s = latency.histogram(core, get).expect("histogram").snapshot();
        assert_eq!(s.count(), 2 * PER_THREAD, "core {core}");
        assert_eq!(s.sum_ns, 2 * per_thread_sum, "core {core}");
        // i*1us <= 10us for i in 0..=10: 11 values per thread in the first bucket.
        assert_eq!(s.buckets[0], 2 * 11, "core {core}");
    }
    let set = family_of(b"set");
    assert_eq!(
        latency.histogram(0, set).expect("set").snapshot().count(),
        0
    );
}

#[test]
fn out_of_range_recording_is_ignored() {
    let latency = Latency::new(1);
    latency.record(1, 0, Duration::from_millis(1));
    latency.record(0, family_count(), Duration::from_millis(1));
    assert!(latency.histogram(1, 0).is_none());
    assert!(latency.histogram(0, family_count()).is_none());
    assert_eq!(latency.cores(), 1);
}

#[test]
fn families_are_known_lowercase_names_or_other() {
    let get = family_of(b"get");
    assert_eq!(family_of(b"GET"), get);
    assert_eq!(family_of(b"gEt"), get);
    assert_eq!(family_name(get), "get");
    for c in COMMANDS {
        assert_eq!(
            family_name(family_of(c.name.to_uppercase().as_bytes())),
            c.name
        );
    }
    assert_eq!(family_name(family_of(b"LEASEKV.ADMIN")), "leasekv.admin");
    for unknown in [
        &b"nosuchcommand"[..],
        b"",
        b"client|id",
        b"\xff\xfe",
        &[b'g'; 100],
    ] {
        assert_eq!(family_name(family_of(unknown)), "other", "{unknown:?}");
    }
    assert_eq!(family_name(family_count() + 5), "other");
    // Every family index names a distinct label value.
    let mut names: Vec<_> = (0..family_count()).map(family_name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), family_count());
}

#[test]
fn timer_picks_the_family_from_argv() {
    let t = Timer::new(
        &[Bytes::from_static(b"SET"), Bytes::from_static(b"k")],
        Instant::now(),
    );
    assert_eq!(t.family, family_of(b"set"));
    assert_eq!(
        Timer::new(&[], Instant::now()).family,
        family_of(b"whatever")
    );
}

// ---------------------------------------------------------------- exposition

fn line_value(text: &str, series: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ').map(str::to_owned))
}

fn sample_snapshot() -> Snapshot {
    let cores: Vec<CoreStats> = (0..2).map(|_| CoreStats::default()).collect();
    cores[0].commands.store(5, Ordering::Relaxed);
    cores[1].commands.store(7, Ordering::Relaxed);
    cores[1].connected_clients.store(2, Ordering::Relaxed);
    cores[0].wal_bytes.store(4096, Ordering::Relaxed);
    let groups: Vec<GroupStats> = (0..3).map(|_| GroupStats::default()).collect();
    groups[1].keys.store(11, Ordering::Relaxed);
    groups[1].leader.store(true, Ordering::Relaxed);
    groups[1].leader_id.store(7, Ordering::Relaxed);
    groups[1].term.store(4, Ordering::Relaxed);
    groups[1].lease_hits.store(9, Ordering::Relaxed);
    groups[1].lease_misses.store(2, Ordering::Relaxed);
    groups[1].lease_remaining_ms.store(1500, Ordering::Relaxed);
    let latency = Latency::new(2);
    let get = family_of(b"get");
    for us in [5, 15, 3_000] {
        latency.record(1, get, Duration::from_micros(us));
    }
    // Group 2 is unknown to the routing: skipped rather than mislabelled.
    Snapshot::from_parts(
        7,
        1.25,
        &cores,
        &groups,
        |g| (g < 2).then_some(g as usize % 2),
        &latency,
    )
}

#[test]
fn snapshot_copies_the_counters() {
    let s = sample_snapshot();
    assert_eq!(s.cores.len(), 2);
    assert_eq!(s.cores[1].commands, 7);
    assert_eq!(s.groups.len(), 2);
    assert_eq!((s.groups[1].group, s.groups[1].core), (1, 1));
    assert!(s.groups[1].leader);
    assert_eq!(s.latency.len(), 1, "only histograms with observations");
    assert_eq!((s.latency[0].core, s.latency[0].command), (1, "get"));
}

#[test]
fn exposition_has_every_family_with_labels() {
    let text = sample_snapshot().encode().expect("encode");
    let expect = [
        (r#"leasekv_uptime_seconds{node="7"}"#, "1.25"),
        (r#"leasekv_commands_total{node="7",core="0"}"#, "5"),
        (r#"leasekv_commands_total{node="7",core="1"}"#, "7"),
        (r#"leasekv_connected_clients{node="7",core="1"}"#, "2"),
        (
            r#"leasekv_wal_written_bytes_total{node="7",core="0"}"#,
            "4096",
        ),
        (r#"leasekv_hops_sent_total{node="7",core="0"}"#, "0"),
        (r#"leasekv_group_keys{node="7",core="1",group="1"}"#, "11"),
        (
            r#"leasekv_group_is_leader{node="7",core="1",group="1"}"#,
            "1",
        ),
        (
            r#"leasekv_group_is_leader{node="7",core="0",group="0"}"#,
            "0",
        ),
        (
            r#"leasekv_group_leader_id{node="7",core="1",group="1"}"#,
            "7",
        ),
        (r#"leasekv_group_term{node="7",core="1",group="1"}"#, "4"),
        (
            r#"leasekv_lease_reads_total{node="7",core="1",group="1",outcome="hit"}"#,
            "9",
        ),
        (
            r#"leasekv_lease_reads_total{node="7",core="1",group="1",outcome="miss"}"#,
            "2",
        ),
        (
            r#"leasekv_lease_remaining_seconds{node="7",core="1",group="1"}"#,
            "1.5",
        ),
        (
            r#"leasekv_lease_invalidations_total{node="7",core="1",group="1"}"#,
            "0",
        ),
        (
            r#"leasekv_request_duration_seconds_count{node="7",core="1",command="get"}"#,
            "3",
        ),
        (
            r#"leasekv_request_duration_seconds_sum{node="7",core="1",command="get"}"#,
            "0.00302",
        ),
        (
            r#"leasekv_request_duration_seconds_bucket{le="+Inf",node="7",core="1",command="get"}"#,
            "3",
        ),
    ];
    for (series, value) in expect {
        assert_eq!(
            line_value(&text, series).as_deref(),
            Some(value),
            "{series}\n{text}"
        );
    }
    // Buckets are cumulative: 5us -> le=1e-5; 15us -> le=2e-5; 3ms -> le=0.005.
    let buckets: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("leasekv_request_duration_seconds_bucket{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert_eq!(buckets.len(), BUCKETS);
    assert_eq!(&buckets[..3], &[1, 2, 2]);
    assert_eq!(buckets[bucket_index(5_000_000)], 3);
    for name in [
        "leasekv_commands",
        "leasekv_lease_reads",
        "leasekv_request_duration_seconds",
        "leasekv_group_commit_index",
        "leasekv_group_applied_index",
        "leasekv_wal_syncs",
        "leasekv_wal_compactions",
        "leasekv_expired_keys",
        "leasekv_hops_received",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}\n{text}");
    }
    assert!(!text.contains("group=\"2\""), "unknown group skipped");
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn snapshot_of_a_real_shared() {
    let o = crate::config::Overrides {
        cores: Some(vec![0]),
        ..Default::default()
    };
    let config = crate::config::resolve(None, &o).expect("default config");
    let routing = crate::routing::Routing::new(config.groups, &config.placement);
    let groups = config.groups;
    let shared = Shared {
        routing,
        inboxes: vec![crate::hop::inbox(0).0],
        core_stats: vec![CoreStats::default()],
        group_stats: (0..groups).map(|_| GroupStats::default()).collect(),
        clients: AtomicUsize::new(0),
        next_client_id: AtomicU64::new(1),
        shutdown: AtomicBool::new(false),
        debug_isolated: AtomicBool::new(false),
        debug_deaf: AtomicBool::new(false),
        debug_isolation_epoch: AtomicU64::new(0),
        started: Instant::now(),
        incarnation: 1,
        latency: Latency::new(1),
        config,
    };
    shared.core_stats[0].commands.store(3, Ordering::Relaxed);
    let s = Snapshot::take(&shared);
    assert_eq!(s.node, shared.config.node_id);
    assert_eq!(s.groups.len(), groups as usize);
    assert!(s.groups.iter().all(|g| g.core == 0));
    let text = render(&shared).expect("render");
    let series = format!(
        r#"leasekv_commands_total{{node="{}",core="0"}}"#,
        shared.config.node_id
    );
    assert_eq!(line_value(&text, &series).as_deref(), Some("3"));
}

// ---------------------------------------------------------------- HTTP

#[test]
fn routes_requests() {
    let metrics = Route::Metrics { head_only: false };
    let cases: [(&[u8], Route); 12] = [
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", metrics),
        (b"GET /metrics HTTP/1.0\r\n\r\n", metrics),
        (b"GET /metrics?x=1 HTTP/1.1\r\n\r\n", metrics),
        (
            b"HEAD /metrics HTTP/1.1\r\n\r\n",
            Route::Metrics { head_only: true },
        ),
        (
            b"POST /metrics HTTP/1.1\r\n\r\n",
            Route::Error(Status::MethodNotAllowed),
        ),
        (
            b"get /metrics HTTP/1.1\r\n\r\n",
            Route::Error(Status::MethodNotAllowed),
        ),
        (b"GET / HTTP/1.1\r\n\r\n", Route::Error(Status::NotFound)),
        (
            b"GET /metrics/x HTTP/1.1\r\n\r\n",
            Route::Error(Status::NotFound),
        ),
        (
            b"GET /metrics HTTP/2.0\r\n\r\n",
            Route::Error(Status::BadRequest),
        ),
        (
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            Route::Error(Status::BadRequest),
        ),
        (b"GET /metrics\r\n\r\n", Route::Error(Status::BadRequest)),
        (
            b"GET /\xff HTTP/1.1\r\n\r\n",
            Route::Error(Status::BadRequest),
        ),
    ];
    for (head, want) in cases {
        assert_eq!(
            http::route(head),
            want,
            "{:?}",
            String::from_utf8_lossy(head)
        );
    }
    assert_eq!(http::route(b""), Route::Error(Status::BadRequest));
    assert_eq!(
        http::route(b"GET metrics HTTP/1.1\r\n\r\n"),
        Route::Error(Status::BadRequest)
    );
}

#[test]
fn responses_are_complete_and_close() {
    let r = String::from_utf8(http::response(
        Status::Ok,
        http::CONTENT_TYPE,
        b"abc",
        false,
    ))
    .expect("utf8");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(r.contains("\r\nContent-Length: 3\r\n"), "{r}");
    assert!(r.contains("\r\nConnection: close\r\n"), "{r}");
    assert!(r.contains(&format!("\r\nContent-Type: {}\r\n", http::CONTENT_TYPE)));
    assert!(r.ends_with("\r\n\r\nabc"), "{r}");
    let head = http::response(Status::Ok, http::CONTENT_TYPE, b"abc", true);
    assert!(head.ends_with(b"Content-Length: 3\r\nConnection: close\r\n\r\n"));
    let r = http::response(Status::MethodNotAllowed, "text/plain", b"", false);
    assert!(String::from_utf8_lossy(&r).contains("\r\nAllow: GET, HEAD\r\n"));
}

/// An in-memory stream: serves `input` chunk by chunk, then EOF, or hangs forever (never
/// waking the task) when `hang`. Collects what is written.
#[derive(Default)]
struct Scripted {
    input: VecDeque<Vec<u8>>,
    hang: bool,
    output: Vec<u8>,
    reads: usize,
    /// Set by `poll_close` (our FIN); reads still work after it, as on a socket.
    closed: bool,
}

impl Scripted {
    fn new(chunks: &[&[u8]], hang: bool) -> Scripted {
        Scripted {
            input: chunks.iter().map(|c| c.to_vec()).collect(),
            hang,
            ..Default::default()
        }
    }
}

impl AsyncRead for Scripted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.reads += 1;
        let Some(chunk) = self.input.front_mut() else {
            return if self.hang {
                Poll::Pending
            } else {
                Poll::Ready(Ok(0))
            };
        };
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        chunk.drain(..n);
        if chunk.is_empty() {
            self.input.pop_front();
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.output.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.closed = true;
        Poll::Ready(Ok(()))
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    futures_lite::future::block_on(f)
}

#[test]
fn reads_a_head_split_across_reads() {
    // The terminator straddles reads; trailing bytes are not part of the head.
    let mut s = Scripted::new(
        &[
            b"GET /metrics HT",
            b"TP/1.1\r\nHost: a\r",
            b"\n\r",
            b"\nBODY",
        ],
        false,
    );
    let head = block_on(http::read_head(&mut s, 8192)).expect("head");
    assert_eq!(head, b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n");
}

#[test]
fn rejects_oversized_heads_without_buffering_more() {
    // Exactly at the limit, terminator included: accepted.
    let mut exact = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    exact.resize(8192 - 4, b'a');
    exact.extend_from_slice(b"\r\n\r\n");
    let mut s = Scripted::new(&[&exact], false);
    assert_eq!(
        block_on(http::read_head(&mut s, 8192)).expect("head").len(),
        8192
    );
    // One byte more before the terminator: too large, and reading stopped at the limit.
    let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    big.resize(8192 - 3, b'a');
    big.extend_from_slice(b"\r\n\r\n");
    let mut s = Scripted::new(&[&big], false);
    assert_eq!(
        block_on(http::read_head(&mut s, 8192)),
        Err(HeadError::TooLarge)
    );
    let unread: usize = s.input.iter().map(Vec::len).sum();
    assert_eq!(unread, big.len() - 8192);
    // An endless header line.
    let junk = vec![b'x'; 100_000];
    let mut s = Scripted::new(&[&junk], false);
    assert_eq!(
        block_on(http::read_head(&mut s, 8192)),
        Err(HeadError::TooLarge)
    );
}

#[test]
fn reports_early_close() {
    let mut s = Scripted::new(&[b"GET /metrics HTTP/1.1\r\n"], false);
    assert_eq!(
        block_on(http::read_head(&mut s, 8192)),
        Err(HeadError::Closed)
    );
    let mut s = Scripted::new(&[], false);
    assert_eq!(
        block_on(http::read_head(&mut s, 8192)),
        Err(HeadError::Closed)
    );
}

const FAST: Limits = Limits {
    max_head: 8192,
    read_deadline: Duration::from_millis(100),
    write_deadline: Duration::from_millis(100),
    linger: Duration::from_millis(50),
    max_concurrent: 1,
};

#[test]
fn handler_serves_metrics_and_errors() {
    run(async {
        let mut s = Scripted::new(&[b"GET /metrics HTTP/1.1\r\n\r\n"], false);
        let status = http::handle(&mut s, &FAST, || Ok("m 1\n# EOF\n".to_string())).await;
        assert_eq!(status, Some(Status::Ok));
        let out = String::from_utf8(s.output).expect("utf8");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\nm 1\n# EOF\n"), "{out}");

        // Errors never render the metrics.
        let rendered = Cell::new(false);
        for (req, want) in [
            (&b"GET /nope HTTP/1.1\r\n\r\n"[..], Status::NotFound),
            (
                b"DELETE /metrics HTTP/1.1\r\n\r\n",
                Status::MethodNotAllowed,
            ),
            (b"\x16\x03\x01 TLS hello\r\n\r\n", Status::BadRequest),
        ] {
            let mut s = Scripted::new(&[req], false);
            let status = http::handle(&mut s, &FAST, || {
                rendered.set(true);
                Ok(String::new())
            })
            .await;
            assert_eq!(status, Some(want));
            let code = format!("HTTP/1.1 {} ", want.code());
            assert!(s.output.starts_with(code.as_bytes()));
        }
        assert!(!rendered.get());

        let mut s = Scripted::new(&[b"GET /metrics HTTP/1.1\r\n\r\n"], false);
        let status = http::handle(&mut s, &FAST, || Err(std::fmt::Error)).await;
        assert_eq!(status, Some(Status::InternalError));

        // After the 431: FIN, then the rest of the input is read and discarded (lingering
        // close), up to 64 KiB.
        let mut s = Scripted::new(&[&[b'a'; 9000]], false);
        let status = http::handle(&mut s, &FAST, || Ok(String::new())).await;
        assert_eq!(status, Some(Status::HeaderTooLarge));
        assert!(s.closed && s.input.is_empty());
        let mut s = Scripted::new(&[&[b'a'; 8192], &[b'b'; 100 * 1024]], false);
        let status = http::handle(&mut s, &FAST, || Ok(String::new())).await;
        assert_eq!(status, Some(Status::HeaderTooLarge));
        let unread: usize = s.input.iter().map(Vec::len).sum();
        assert_eq!(unread, 100 * 1024 - 64 * 1024);

        let mut s = Scripted::new(&[b"GET /met"], false);
        assert_eq!(
            http::handle(&mut s, &FAST, || Ok(String::new())).await,
            None
        );
        assert!(s.output.is_empty());
    });
}

#[test]
fn slowloris_is_cut_off_at_the_deadline() {
    run(async {
        // Part of a head, then nothing: the whole-head deadline ends it.
        let mut s = Scripted::new(&[b"GET /metrics HTTP/1.1\r\n", b"X-A: 1\r\n"], true);
        let begin = Instant::now();
        let status = http::handle(&mut s, &FAST, || Ok(String::new())).await;
        let took = begin.elapsed();
        assert_eq!(status, Some(Status::RequestTimeout));
        assert!(s.output.starts_with(b"HTTP/1.1 408 "));
        assert!(took >= FAST.read_deadline, "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert!(
            s.input.is_empty() && s.reads >= 3,
            "both chunks read, then it hung"
        );
    });
}

/// Over real sockets: with one slot, a second scrape is accepted only once the first (a
/// client that sends nothing) has been timed out; shutdown stops the loop.
#[test]
fn accept_loop_bounds_concurrent_scrapes() {
    run(async {
        let listener = glommio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = Rc::new(Latch::default());
        let server = glommio::spawn_local({
            let stop = stop.clone();
            let render: Rc<dyn Fn() -> Result<String, std::fmt::Error>> =
                Rc::new(|| Ok("# EOF\n".to_string()));
            async move { http::accept_loop(listener, &stop, FAST, render).await }
        });
        let order = Rc::new(RefCell::new(Vec::new()));
        // `idle` completes its handshake first, so it is accepted first and holds the only
        // slot while sending nothing.
        let mut idle = glommio::net::TcpStream::connect(addr)
            .await
            .expect("connect");
        let scrape = glommio::spawn_local({
            let order = order.clone();
            async move {
                let mut c = glommio::net::TcpStream::connect(addr)
                    .await
                    .expect("connect");
                c.write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
                    .await
                    .expect("send");
                let mut reply = Vec::new();
                c.read_to_end(&mut reply).await.expect("read");
                order.borrow_mut().push("scrape");
                String::from_utf8(reply).expect("utf8")
            }
        });
        let mut reply = Vec::new();
        idle.read_to_end(&mut reply).await.expect("read");
        order.borrow_mut().push("idle");
        let idle = String::from_utf8(reply).expect("utf8");
        let scrape = scrape.await;
        assert!(idle.starts_with("HTTP/1.1 408 "), "{idle}");
        assert!(scrape.starts_with("HTTP/1.1 200 OK\r\n"), "{scrape}");
        assert!(scrape.ends_with("\r\n\r\n# EOF\n"), "{scrape}");
        assert_eq!(*order.borrow(), ["idle", "scrape"]);
        stop.set();
        server.await;
    });
}
