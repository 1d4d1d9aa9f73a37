//! Single-core synchronisation helpers (no atomics: everything here lives on one executor).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;
use std::task::{Poll, Waker};
use std::time::Duration;

/// Wakes one waiting task; a notification sent while nobody waits is kept until the next
/// wait (so a wake-up between "check for work" and "wait" is never lost).
#[derive(Default)]
pub struct LocalNotify {
    notified: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl LocalNotify {
    pub fn notify(&self) {
        self.notified.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    pub async fn wait(&self) {
        std::future::poll_fn(|cx| {
            if self.notified.replace(false) {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

/// A one-way latch many tasks can wait on (used for shutdown).
#[derive(Default)]
pub struct Latch {
    set: Cell<bool>,
    wakers: RefCell<Vec<Waker>>,
}

impl Latch {
    pub fn set(&self) {
        self.set.set(true);
        for w in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }

    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    pub async fn wait(&self) {
        std::future::poll_fn(|cx| {
            if self.set.get() {
                Poll::Ready(())
            } else {
                let mut ws = self.wakers.borrow_mut();
                // Bounded: waiters are the accept loop and one per connection.
                if !ws.iter().any(|w| w.will_wake(cx.waker())) {
                    ws.push(cx.waker().clone());
                }
                Poll::Pending
            }
        })
        .await
    }
}

/// Runs `fut` for at most `dur`; None when the deadline passed first.
pub async fn deadline<F: Future>(dur: Duration, fut: F) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let mut timer = pin!(glommio::timer::sleep(dur));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// Runs `fut` unless `latch` is set first; None when the latch won.
pub async fn unless<F: Future>(latch: &Latch, fut: F) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let mut stop = pin!(latch.wait());
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}
