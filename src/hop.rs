//! Cross-core request hops: the only traffic between cores.
//!
//! Each core has one inbox, a bounded crossbeam channel that every other core sends into,
//! plus an `AtomicWaker` for the inbox task. Protocol (from glommio's thread-safe wakers):
//! sender `try_send` then `wake`; receiver `try_recv`, else register the waker and
//! `try_recv` again before returning Pending, so a send racing the registration is not lost.
//! Replies travel back over a `futures_channel::oneshot`, whose waker is thread-safe too.
//!
//! Bound: a sender core holds one permit per in-flight hop to a destination (a local
//! semaphore of `PER_SENDER` permits), and the channel holds `PER_SENDER` x senders, so
//! `try_send` never finds the channel full.

use std::sync::Arc;
use std::task::Poll;

use atomic_waker::AtomicWaker;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use futures_channel::oneshot;
use shards::wire::Request;
use shards::Reply;

/// In-flight hops one core may have towards one other core.
pub const PER_SENDER: usize = 1024;

pub struct Hop {
    pub group: u32,
    pub request: Request,
    pub reply: oneshot::Sender<Reply>,
}

/// The sending side of a core's inbox (cloned into every core).
#[derive(Clone)]
pub struct InboxSender {
    tx: Sender<Hop>,
    waker: Arc<AtomicWaker>,
}

impl InboxSender {
    /// Sends without blocking. Err(hop) when the owner core is gone (shutdown) or, against
    /// the invariant above, full.
    pub fn send(&self, hop: Hop) -> Result<(), Hop> {
        match self.tx.try_send(hop) {
            Ok(()) => {
                self.waker.wake();
                Ok(())
            }
            Err(e) => Err(e.into_inner()),
        }
    }

    /// Wakes the inbox task without sending (used to deliver shutdown).
    pub fn wake(&self) {
        self.waker.wake();
    }
}

pub struct InboxReceiver {
    rx: Receiver<Hop>,
    waker: Arc<AtomicWaker>,
}

impl InboxReceiver {
    /// Waits for the next hop; None once every sender is gone.
    pub async fn recv(&self) -> Option<Hop> {
        std::future::poll_fn(|cx| match self.rx.try_recv() {
            Ok(h) => Poll::Ready(Some(h)),
            Err(TryRecvError::Disconnected) => Poll::Ready(None),
            Err(TryRecvError::Empty) => {
                self.waker.register(cx.waker());
                match self.rx.try_recv() {
                    Ok(h) => Poll::Ready(Some(h)),
                    Err(TryRecvError::Disconnected) => Poll::Ready(None),
                    Err(TryRecvError::Empty) => Poll::Pending,
                }
            }
        })
        .await
    }

    pub fn try_recv(&self) -> Option<Hop> {
        self.rx.try_recv().ok()
    }

    /// Registers the current task to be woken by a send or `InboxSender::wake`.
    pub fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }
}

/// One inbox for a core with `senders` other cores sending into it.
pub fn inbox(senders: usize) -> (InboxSender, InboxReceiver) {
    let (tx, rx) = crossbeam_channel::bounded(PER_SENDER * senders.max(1));
    let waker = Arc::new(AtomicWaker::new());
    (
        InboxSender {
            tx,
            waker: waker.clone(),
        },
        InboxReceiver { rx, waker },
    )
}
