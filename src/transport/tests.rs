//! Transports on loopback inside one glommio executor. Every wait polls with a deadline and
//! each test as a whole is bounded by [`TEST_DEADLINE`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::LocalExecutorBuilder;

use super::wire::{self, Hello, Status};
use super::*;
use crate::sync::deadline;

const TEST_DEADLINE: Duration = Duration::from_secs(30);
/// Longest wait for any one condition.
const WAIT: Duration = Duration::from_secs(10);

fn run<F: Future<Output = ()>>(fut: F) {
    // RUST_LOG=leasekv=debug shows the transport's log lines of a failing test.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .make()
        .expect("executor")
        .run(async move {
            deadline(TEST_DEADLINE, fut)
                .await
                .expect("test exceeded its deadline");
        });
}

fn cfg(node: u64, core: usize) -> TransportConfig {
    TransportConfig {
        cluster_id: "test".into(),
        node_id: node,
        core,
        listen: "127.0.0.1:0".parse().unwrap(),
        max_queue_bytes: 1 << 20,
        max_frame_bytes: 4 << 20,
        connect_timeout: Duration::from_millis(500),
        backoff_min: Duration::from_millis(5),
        backoff_max: Duration::from_millis(100),
        inbound_capacity: 1024,
        write_stall_timeout: Duration::from_secs(10),
    }
}

/// A loopback address nothing listens on right now.
fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local addr")
}

/// Starts one transport per config, each with all the others as peers.
fn mesh(cfgs: Vec<TransportConfig>) -> Vec<Rc<Transport>> {
    let ts: Vec<Rc<Transport>> = cfgs
        .into_iter()
        .map(|c| Transport::start(c, HashMap::new()).expect("start"))
        .collect();
    for a in &ts {
        for b in &ts {
            if a.shared.cfg.node_id != b.shared.cfg.node_id {
                a.set_peer(b.shared.cfg.node_id, Some(b.local_addr()));
            }
        }
    }
    ts
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting until {what}");
        glommio::timer::sleep(Duration::from_millis(2)).await;
    }
}

async fn recv_n(t: &Transport, n: usize) -> Vec<Inbound> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match deadline(WAIT, t.recv()).await {
            Some(i) => out.push(i),
            None => panic!("received {} of {n} frames", out.len()),
        }
    }
    out
}

fn numbered(i: u32) -> Bytes {
    Bytes::copy_from_slice(&i.to_be_bytes())
}

fn number(frame: &[u8]) -> u32 {
    u32::from_be_bytes(frame[..4].try_into().expect("numbered frame"))
}

fn lane_stats(t: &Transport, peer: u64, lane: Lane) -> LaneStats {
    t.stats().peer(peer).expect("peer").lane(lane).clone()
}

fn hello(from: u64, core: u16, lane: Lane, cluster: &str) -> Vec<u8> {
    Hello {
        lane,
        core,
        from,
        cluster_id: cluster.into(),
    }
    .encode()
}

/// Connects with raw bytes as the handshake; the reply status, or None if the acceptor
/// closed without one.
async fn raw_hello(addr: SocketAddr, bytes: &[u8]) -> (TcpStream, Option<Status>) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write handshake");
    let mut r = [0u8; wire::REPLY_LEN];
    let got = deadline(WAIT, s.read_exact(&mut r))
        .await
        .expect("a reply or a close");
    (s, got.ok().and_then(|()| Status::parse_reply(&r)))
}

async fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(deadline(WAIT, s.read(&mut b)).await, Some(Ok(0) | Err(_)))
}

#[test]
fn frames_arrive_in_order_per_lane() {
    run(async {
        let ts = mesh(vec![cfg(1, 0), cfg(2, 0)]);
        let (a, b) = (&ts[0], &ts[1]);
        let lane_of = |i: u32| {
            if i % 3 < 1 {
                Lane::Control
            } else {
                Lane::Bulk
            }
        };
        for i in 0..300 {
            a.send(2, lane_of(i), numbered(i)).expect("send");
            if i % 50 == 0 {
                // Let the writers run mid-stream too.
                futures_lite::future::yield_now().await;
            }
        }
        let got = recv_n(b, 300).await;
        for lane in Lane::ALL {
            let seq: Vec<u32> = got
                .iter()
                .filter(|i| i.lane == lane)
                .map(|i| {
                    assert_eq!(i.from, 1);
                    number(&i.frame)
                })
                .collect();
            let want: Vec<u32> = (0..300).filter(|&i| lane_of(i) == lane).collect();
            assert_eq!(seq, want, "{lane:?}");
        }
        b.send(1, Lane::Control, Bytes::from_static(b"pong"))
            .expect("send");
        let back = recv_n(a, 1).await;
        assert_eq!(
            back[0],
            Inbound {
                from: 2,
                lane: Lane::Control,
                frame: Bytes::from_static(b"pong")
            }
        );
        until("A counted every frame sent", || {
            let p = a.stats().peer(2).cloned().expect("peer");
            p.control.frames_sent == 100 && p.bulk.frames_sent == 200
        })
        .await;
        let sa = a.stats().peer(2).cloned().expect("peer");
        assert_eq!(sa.bulk.bytes_sent, 800);
        for lane in Lane::ALL {
            let l = sa.lane(lane);
            assert!(l.connected && l.connects == 1 && l.reconnects == 0, "{l:?}");
            assert_eq!(l.queued_frames, 0);
        }
        let sb = b.stats().peer(1).cloned().expect("peer");
        assert_eq!(sb.control.frames_received, 100);
        assert_eq!(sb.bulk.frames_received, 200);
        assert_eq!(sb.bulk.bytes_received, 800);
        assert!(sb.control.inbound_connected && sb.bulk.inbound_connected);
        assert_eq!(b.stats().accepted, 2);
        assert!(b.try_recv().is_none());
    });
}

#[test]
fn many_small_frames_are_batched() {
    run(async {
        let ts = mesh(vec![cfg(1, 0), cfg(2, 0)]);
        let (a, b) = (&ts[0], &ts[1]);
        const N: u32 = 20_000;
        for i in 0..N {
            a.send(2, Lane::Bulk, numbered(i)).expect("send");
        }
        let got = recv_n(b, N as usize).await;
        assert!(got.iter().map(|i| number(&i.frame)).eq(0..N));
        until("all counted", || {
            lane_stats(a, 2, Lane::Bulk).frames_sent == u64::from(N)
        })
        .await;
        let s = lane_stats(a, 2, Lane::Bulk);
        // 20k frames of 8 wire bytes fit one batch; a few more would still be batching.
        assert!(s.batches <= 3, "{} batches for {N} frames", s.batches);
    });
}

#[test]
fn a_peer_that_starts_later_is_reached_after_backoff() {
    run(async {
        let b_addr = free_addr();
        let a = Transport::start(cfg(1, 0), HashMap::from([(2, b_addr)])).expect("start");
        for i in 0..10 {
            a.send(2, Lane::Control, numbered(i)).expect("send");
        }
        until("A failed to connect a few times", || {
            lane_stats(&a, 2, Lane::Control).connect_errors >= 3
        })
        .await;
        let s = lane_stats(&a, 2, Lane::Control);
        assert!(!s.connected);
        assert_eq!(s.queued_frames, 10, "frames wait in the queue");
        let mut cb = cfg(2, 0);
        cb.listen = b_addr;
        let b = Transport::start(cb, HashMap::from([(1, a.local_addr())])).expect("start B");
        let got = recv_n(&b, 10).await;
        assert!(got.iter().map(|i| number(&i.frame)).eq(0..10));
        let s = lane_stats(&a, 2, Lane::Control);
        assert!(s.connected && s.connects == 1, "{s:?}");
    });
}

#[test]
fn a_restarted_peer_is_reconnected() {
    run(async {
        let mut ts = mesh(vec![cfg(1, 0), cfg(2, 0)]);
        let b = ts.pop().expect("b");
        let a = ts.pop().expect("a");
        a.send(2, Lane::Control, numbered(0)).expect("send");
        b.send(1, Lane::Control, numbered(0)).expect("send");
        recv_n(&b, 1).await;
        recv_n(&a, 1).await;
        let b_addr = b.local_addr();
        b.shutdown();
        drop(b);
        let mut cb = cfg(2, 0);
        cb.listen = b_addr;
        let b = Transport::start(cb, HashMap::from([(1, a.local_addr())])).expect("restart B");
        // Frames written just before A noticed the old connection died are lost (Raft
        // retransmits): keep sending until one arrives.
        let start = Instant::now();
        let mut i = 1;
        loop {
            let _ = a.send(2, Lane::Control, numbered(i));
            i += 1;
            if deadline(Duration::from_millis(20), b.recv())
                .await
                .is_some()
            {
                break;
            }
            assert!(start.elapsed() < WAIT, "restarted B never got a frame");
        }
        // Now the connection is up: later frames all arrive, in order.
        for j in 1000..1010 {
            a.send(2, Lane::Control, numbered(j)).expect("send");
        }
        let mut seen = Vec::new();
        while seen.len() < 10 {
            let f = deadline(WAIT, b.recv()).await.expect("frame");
            let n = number(&f.frame);
            if n >= 1000 {
                seen.push(n);
            }
        }
        assert_eq!(seen, (1000..1010).collect::<Vec<u32>>());
        let s = lane_stats(&a, 2, Lane::Control);
        assert!(s.reconnects >= 1, "{s:?}");
        // And the other way: A accepts the new B.
        b.send(1, Lane::Control, numbered(7)).expect("send");
        assert_eq!(number(&recv_n(&a, 1).await[0].frame), 7);
    });
}

#[test]
fn a_full_queue_refuses_and_counts() {
    run(async {
        let b_addr = free_addr();
        let mut ca = cfg(1, 0);
        ca.max_queue_bytes = 64 * 1024;
        let a = Transport::start(ca, HashMap::from([(2, b_addr)])).expect("start");
        // 1020 + 4 header = 1024 wire bytes: exactly 64 fit.
        let frame = Bytes::from(vec![7u8; 1020]);
        let (mut ok, mut full) = (0, 0);
        for _ in 0..100 {
            match a.send(2, Lane::Control, frame.clone()) {
                Ok(()) => ok += 1,
                Err(SendError::Full) => full += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!((ok, full), (64, 36));
        let s = lane_stats(&a, 2, Lane::Control);
        assert_eq!(s.dropped_full, 36);
        assert_eq!((s.queued_frames, s.queued_bytes), (64, 64 * 1024));
        // Each lane has its own bound, and one frame larger than the bound passes an empty
        // queue (it could never be sent otherwise).
        assert_eq!(
            a.send(2, Lane::Bulk, Bytes::from(vec![0u8; 100 * 1024])),
            Ok(())
        );
        assert_eq!(
            a.send(2, Lane::Bulk, Bytes::from_static(b"x")),
            Err(SendError::Full)
        );
        assert_eq!(a.send(9, Lane::Control, frame), Err(SendError::UnknownPeer));
        // While the peer is down the queue holds...
        until("A retried", || {
            lane_stats(&a, 2, Lane::Control).connect_errors >= 2
        })
        .await;
        assert_eq!(lane_stats(&a, 2, Lane::Control).queued_frames, 64);
        // ...and drains once it is up.
        let mut cb = cfg(2, 0);
        cb.listen = b_addr;
        let b = Transport::start(cb, HashMap::from([(1, a.local_addr())])).expect("start B");
        let got = recv_n(&b, 65).await;
        assert_eq!(got.iter().filter(|i| i.lane == Lane::Control).count(), 64);
        assert_eq!(got.iter().filter(|i| i.lane == Lane::Bulk).count(), 1);
        until("queue empty", || {
            lane_stats(&a, 2, Lane::Control).queued_bytes == 0
        })
        .await;
    });
}

#[test]
fn oversized_frames_are_rejected_both_ways() {
    run(async {
        let ts = mesh(vec![cfg(1, 0), cfg(2, 0)]);
        let (a, b) = (&ts[0], &ts[1]);
        let max = 4 << 20;
        assert_eq!(
            a.send(2, Lane::Bulk, Bytes::from(vec![0u8; max + 1])),
            Err(SendError::TooLarge)
        );
        // Exactly max_frame_bytes goes through (and is larger than the queue bound).
        let big = Bytes::from((0..max).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        a.send(2, Lane::Bulk, big.clone()).expect("send max frame");
        assert_eq!(recv_n(b, 1).await[0].frame, big);
        // A connector announcing a longer frame is cut off.
        let (mut s, status) = raw_hello(b.local_addr(), &hello(1, 0, Lane::Bulk, "test")).await;
        assert_eq!(status, Some(Status::Ok));
        s.write_all(&(max as u32 + 1).to_be_bytes())
            .await
            .expect("write");
        assert!(closed_by_peer(&mut s).await, "acceptor kept the connection");
        assert!(b.try_recv().is_none());
    });
}

#[test]
fn foreign_handshakes_are_refused() {
    run(async {
        let b = Transport::start(cfg(2, 0), HashMap::from([(1, free_addr())])).expect("start");
        // A node of another cluster.
        let mut ca = cfg(1, 0);
        ca.cluster_id = "other".into();
        let a = Transport::start(ca, HashMap::from([(2, b.local_addr())])).expect("start");
        a.send(2, Lane::Control, numbered(1)).expect("send");
        until("A was refused", || {
            lane_stats(&a, 2, Lane::Control).connect_errors >= 1 && b.stats().refused >= 1
        })
        .await;
        assert!(!lane_stats(&a, 2, Lane::Control).connected);
        assert_eq!(b.stats().accepted, 0);
        let addr = b.local_addr();
        let mut bad_version = hello(1, 0, Lane::Control, "test");
        bad_version[4] = wire::VERSION + 1;
        let cases = [
            (
                hello(1, 0, Lane::Control, "other"),
                Some(Status::WrongCluster),
            ),
            (hello(1, 1, Lane::Control, "test"), Some(Status::WrongCore)),
            (
                hello(3, 0, Lane::Control, "test"),
                Some(Status::UnknownNode),
            ),
            (hello(2, 0, Lane::Control, "test"), Some(Status::SameNode)),
            (bad_version, Some(Status::BadVersion)),
            (b"GET / HTTP/1.1\r\n\r\n".to_vec(), None),
        ];
        for (bytes, want) in cases {
            let (mut s, got) = raw_hello(addr, &bytes).await;
            assert_eq!(got, want);
            assert!(closed_by_peer(&mut s).await);
        }
        // A connector that never completes its handshake is closed after connect_timeout.
        let mut silent = TcpStream::connect(addr).await.expect("connect");
        assert!(closed_by_peer(&mut silent).await);
        assert!(b.stats().refused >= 7, "{:?}", b.stats());
        assert_eq!(b.stats().accepted, 0);
        assert!(b.try_recv().is_none());
    });
}

#[test]
fn blocking_drops_both_directions_then_heals() {
    run(async {
        let ts = mesh(vec![cfg(1, 0), cfg(2, 0)]);
        let (a, b) = (&ts[0], &ts[1]);
        a.send(2, Lane::Control, numbered(0)).expect("send");
        b.send(1, Lane::Control, numbered(0)).expect("send");
        recv_n(b, 1).await;
        recv_n(a, 1).await;

        a.set_blocked(2, true);
        assert!(a.stats().peer(2).expect("peer").blocked);
        for i in 1..=10 {
            assert_eq!(a.send(2, Lane::Control, numbered(i)), Ok(()));
            b.send(1, Lane::Control, numbered(i)).expect("send");
        }
        until("A discarded B's frames", || {
            lane_stats(a, 2, Lane::Control).dropped_blocked_in == 10
        })
        .await;
        let s = lane_stats(a, 2, Lane::Control);
        assert_eq!(s.dropped_blocked_out, 10);
        assert_eq!(s.frames_sent, 1, "nothing left A while blocked");
        assert!(a.try_recv().is_none());
        // Frames already waiting in A's inbox when the block starts are dropped at recv.
        a.set_blocked(2, false);
        b.send(1, Lane::Bulk, numbered(50)).expect("send");
        until("frame queued at A", || a.stats().inbound_queued[1] == 1).await;
        a.set_blocked(2, true);
        assert!(a.try_recv().is_none());
        assert_eq!(lane_stats(a, 2, Lane::Bulk).dropped_blocked_in, 1);

        // Healed: both directions work at once, over the same connections.
        a.set_blocked(2, false);
        a.send(2, Lane::Control, numbered(100)).expect("send");
        b.send(1, Lane::Control, numbered(100)).expect("send");
        assert_eq!(number(&recv_n(b, 1).await[0].frame), 100);
        assert_eq!(number(&recv_n(a, 1).await[0].frame), 100);
        assert_eq!(lane_stats(a, 2, Lane::Control).connects, 1);

        // Isolation drops everything the same way.
        a.set_isolated(true);
        assert!(a.stats().isolated);
        assert_eq!(a.send(2, Lane::Bulk, numbered(200)), Ok(()));
        b.send(1, Lane::Bulk, numbered(200)).expect("send");
        until("A discarded B's frame", || {
            lane_stats(a, 2, Lane::Bulk).dropped_blocked_in == 2
        })
        .await;
        assert_eq!(lane_stats(a, 2, Lane::Bulk).dropped_blocked_out, 1);
        a.set_isolated(false);
        b.send(1, Lane::Bulk, numbered(300)).expect("send");
        assert_eq!(number(&recv_n(a, 1).await[0].frame), 300);
        assert!(
            b.try_recv().is_none(),
            "frames sent while isolated never arrive"
        );
    });
}

#[test]
fn a_deaf_node_still_sends_but_drops_what_it_receives() {
    run(async {
        let ts = mesh(vec![cfg(1, 0), cfg(2, 0)]);
        let (a, b) = (&ts[0], &ts[1]);
        a.set_deaf(true);
        a.send(2, Lane::Control, numbered(1)).expect("send");
        assert_eq!(number(&recv_n(b, 1).await[0].frame), 1, "A still sends");
        b.send(1, Lane::Control, numbered(2)).expect("send");
        until("A discarded B's frame", || {
            lane_stats(a, 2, Lane::Control).dropped_blocked_in == 1
        })
        .await;
        assert!(a.try_recv().is_none());
        a.set_deaf(false);
        b.send(1, Lane::Control, numbered(3)).expect("send");
        assert_eq!(number(&recv_n(a, 1).await[0].frame), 3);
    });
}

/// Numbers of the Control frames the fake peer read.
type Received = Rc<RefCell<Vec<u32>>>;
/// The fake peer's Bulk connections, kept open and never read.
type Held = Rc<RefCell<Vec<TcpStream>>>;

/// A fake node 2 that completes handshakes, records Control frames and never reads its
/// Bulk connections.
async fn fake_peer(listener: TcpListener, control: Received, held: Held) {
    loop {
        let Ok(mut s) = listener.accept().await else {
            return;
        };
        let mut head = [0u8; wire::PREFIX_LEN + wire::FIXED_LEN];
        s.read_exact(&mut head).await.expect("hello");
        let fixed: [u8; wire::FIXED_LEN] = head[wire::PREFIX_LEN..].try_into().expect("fixed");
        let (lane, _, _, id_len) = wire::decode_fixed(&fixed).expect("hello");
        let mut id = vec![0u8; id_len];
        s.read_exact(&mut id).await.expect("cluster id");
        s.write_all(&Status::Ok.reply()).await.expect("reply");
        match lane {
            Lane::Bulk => held.borrow_mut().push(s),
            Lane::Control => {
                let control = control.clone();
                glommio::spawn_local(async move {
                    loop {
                        let mut h = [0u8; 4];
                        if s.read_exact(&mut h).await.is_err() {
                            return;
                        }
                        let mut f = vec![0u8; u32::from_be_bytes(h) as usize];
                        s.read_exact(&mut f).await.expect("frame");
                        control.borrow_mut().push(number(&f));
                    }
                })
                .detach();
            }
        }
    }
}

/// Starts node 1 with the fake node 2 as its peer.
fn with_fake_peer(ca: TransportConfig) -> (Rc<Transport>, Received, Held) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let control = Rc::new(RefCell::new(Vec::new()));
    let held = Rc::new(RefCell::new(Vec::new()));
    glommio::spawn_local(fake_peer(listener, control.clone(), held.clone())).detach();
    let a = Transport::start(ca, HashMap::from([(2, addr)])).expect("start");
    (a, control, held)
}

/// Feeds A's bulk lane to node 2 until the queue is full and no batch has completed for a
/// while: the peer's socket buffer is full.
async fn stall_bulk(a: &Transport) -> LaneStats {
    let chunk = Bytes::from(vec![1u8; 64 * 1024]);
    let start = Instant::now();
    let mut last = (0, Instant::now());
    loop {
        while a.send(2, Lane::Bulk, chunk.clone()).is_ok() {}
        let s = lane_stats(a, 2, Lane::Bulk);
        if s.bytes_sent != last.0 {
            last = (s.bytes_sent, Instant::now());
        } else if s.connected && last.1.elapsed() > Duration::from_millis(200) {
            return s;
        }
        assert!(start.elapsed() < WAIT, "bulk lane never stalled: {s:?}");
        glommio::timer::sleep(Duration::from_millis(2)).await;
    }
}

#[test]
fn control_flows_while_bulk_is_stalled() {
    run(async {
        let (a, control, held) = with_fake_peer(cfg(1, 0));
        let stalled = stall_bulk(&a).await;
        assert_eq!(held.borrow().len(), 1);
        assert!(
            stalled.dropped_full > 0 && stalled.queued_frames > 0,
            "{stalled:?}"
        );
        for i in 0..100 {
            a.send(2, Lane::Control, numbered(i)).expect("control send");
        }
        until("control frames reached the peer", || {
            control.borrow().len() == 100
        })
        .await;
        assert_eq!(*control.borrow(), (0..100).collect::<Vec<u32>>());
        // Bulk is still backed up (a stalled socket may trickle, so no exact count).
        let bulk = lane_stats(&a, 2, Lane::Bulk);
        assert!(bulk.queued_frames > 0, "{bulk:?}");
        assert_eq!(
            a.send(2, Lane::Bulk, Bytes::from(vec![0u8; 1 << 19])),
            Err(SendError::Full)
        );
        assert_eq!(bulk.connects, 1);
    });
}

#[test]
fn a_stalled_write_reconnects() {
    run(async {
        let mut ca = cfg(1, 0);
        ca.write_stall_timeout = Duration::from_millis(300);
        let (a, _control, held) = with_fake_peer(ca);
        stall_bulk(&a).await;
        until("the stalled bulk connection was replaced", || {
            let s = lane_stats(&a, 2, Lane::Bulk);
            s.connects >= 2 && s.dropped_lost >= 1
        })
        .await;
        assert!(held.borrow().len() >= 2);
    });
}

#[test]
fn a_full_inbox_backpressures_and_control_goes_first() {
    run(async {
        let mut cb = cfg(2, 0);
        cb.inbound_capacity = 8;
        let ts = mesh(vec![cfg(1, 0), cb]);
        let (a, b) = (&ts[0], &ts[1]);
        for i in 0..50 {
            a.send(2, Lane::Bulk, numbered(i)).expect("send");
        }
        until("B's bulk inbox is full", || {
            b.stats().inbound_queued[1] == 8
        })
        .await;
        for i in 0..5 {
            a.send(2, Lane::Control, numbered(i)).expect("send");
        }
        until("control queued at B", || b.stats().inbound_queued[0] == 5).await;
        assert_eq!(
            b.stats().inbound_queued[1],
            8,
            "the reader waits instead of queueing more"
        );
        for i in 0..5 {
            let f = b.try_recv().expect("control frame");
            assert_eq!((f.lane, number(&f.frame)), (Lane::Control, i));
        }
        // Nothing was dropped: every bulk frame arrives, in order.
        let rest = recv_n(b, 50).await;
        assert!(rest.iter().all(|f| f.lane == Lane::Bulk));
        assert!(rest.iter().map(|f| number(&f.frame)).eq(0..50));
        assert_eq!(lane_stats(b, 1, Lane::Bulk).frames_received, 50);
    });
}

#[test]
fn peers_can_be_replaced_and_removed() {
    run(async {
        let ts = mesh(vec![cfg(1, 0), cfg(2, 0)]);
        let (a, b) = (&ts[0], &ts[1]);
        a.send(2, Lane::Control, numbered(1)).expect("send");
        b.send(1, Lane::Control, numbered(1)).expect("send");
        recv_n(b, 1).await;
        recv_n(a, 1).await;

        // Node 2 moves to another address: A reconnects there.
        let b2 = Transport::start(cfg(2, 0), HashMap::from([(1, a.local_addr())])).expect("start");
        a.set_peer(2, Some(b2.local_addr()));
        a.send(2, Lane::Control, numbered(2)).expect("send");
        assert_eq!(number(&recv_n(&b2, 1).await[0].frame), 2);
        assert!(b.try_recv().is_none());
        assert_eq!(a.stats().peer(2).expect("peer").addr, b2.local_addr());

        // Node 2 is removed: A refuses to send to it, closes its connections and refuses its
        // reconnects.
        b2.send(1, Lane::Control, numbered(3)).expect("send");
        assert_eq!(number(&recv_n(a, 1).await[0].frame), 3);
        a.set_peer(2, None);
        assert!(a.stats().peer(2).is_none());
        assert_eq!(
            a.send(2, Lane::Control, numbered(4)),
            Err(SendError::UnknownPeer)
        );
        let refused = a.stats().refused;
        b2.send(1, Lane::Control, numbered(4)).expect("send");
        until("B2's reconnect was refused", || {
            lane_stats(&b2, 1, Lane::Control).connect_errors >= 1 && a.stats().refused > refused
        })
        .await;
        assert!(!lane_stats(&b2, 1, Lane::Control).connected);
        assert!(a.try_recv().is_none());
        // Our own id is not a peer.
        a.set_peer(1, Some(b.local_addr()));
        assert!(a.stats().peer(1).is_none());
    });
}

#[test]
fn shutdown_closes_everything_and_tasks_end() {
    run(async {
        let ts = mesh(vec![cfg(1, 0), cfg(2, 0)]);
        let (a, b) = (&ts[0], &ts[1]);
        for lane in Lane::ALL {
            a.send(2, lane, numbered(1)).expect("send");
            b.send(1, lane, numbered(1)).expect("send");
        }
        recv_n(b, 2).await;
        recv_n(a, 2).await;
        let shared = a.shared.clone();
        let addr = a.local_addr();
        a.shutdown();
        a.shutdown();
        assert_eq!(
            a.send(2, Lane::Control, numbered(2)),
            Err(SendError::Shutdown)
        );
        // Only the handle and our clone remain: the accept, reader and writer tasks are gone.
        until("A's tasks ended", || Rc::strong_count(&shared) == 2).await;
        // Nothing listens on A's port any more.
        let start = Instant::now();
        while TcpStream::connect(addr).await.is_ok() {
            assert!(start.elapsed() < WAIT, "A's listener still accepts");
            glommio::timer::sleep(Duration::from_millis(2)).await;
        }
        // B sees the connections go and cannot reconnect.
        b.send(1, Lane::Control, numbered(3)).expect("send");
        until("B lost A", || {
            let p = b.stats().peer(1).cloned().expect("peer");
            !p.control.inbound_connected
                && !p.bulk.inbound_connected
                && p.control.connect_errors >= 1
        })
        .await;
        let s = a.stats();
        assert!(s
            .peers
            .iter()
            .all(|p| !p.control.connected && !p.bulk.connected));
    });
}

#[test]
fn bad_configs_are_rejected_at_start() {
    run(async {
        let cases: [fn(&mut TransportConfig); 8] = [
            |c| c.cluster_id = String::new(),
            |c| c.cluster_id = "x".repeat(256),
            |c| c.node_id = 0,
            |c| c.core = 70_000,
            |c| c.inbound_capacity = 0,
            |c| c.max_queue_bytes = 0,
            |c| c.connect_timeout = Duration::ZERO,
            |c| c.backoff_min = Duration::from_secs(3),
        ];
        for edit in cases {
            let mut c = cfg(1, 0);
            edit(&mut c);
            let e = Transport::start(c, HashMap::new()).err().expect("rejected");
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        }
    });
}
