//! The core's inbound queue: one bounded FIFO per lane, filled by the connection reader
//! tasks and drained by `Transport::recv`. A full lane makes its readers wait (they stop
//! reading their sockets, so TCP pushes back on the sender); nothing is dropped here.
//!
//! Control is served first, but after [`CONTROL_STREAK`] control frames in a row one waiting
//! Bulk frame goes out, so a flood of small messages cannot starve appends forever.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::task::{Poll, Waker};

use super::{Inbound, Lane};

const CONTROL_STREAK: u32 = 16;

pub struct Inbox {
    /// Invariant: each lane holds at most `capacity` frames.
    lanes: [RefCell<VecDeque<Inbound>>; 2],
    capacity: usize,
    streak: Cell<u32>,
    /// Tasks in `pop` waiting for a frame.
    receivers: RefCell<Vec<Waker>>,
    /// Readers waiting for room, per lane.
    senders: [RefCell<Vec<Waker>>; 2],
}

impl Inbox {
    /// `capacity` frames per lane, >= 1.
    pub fn new(capacity: usize) -> Self {
        Inbox {
            lanes: Default::default(),
            capacity: capacity.max(1),
            streak: Cell::new(0),
            receivers: RefCell::default(),
            senders: Default::default(),
        }
    }

    /// Waits for room in the frame's lane, then queues it.
    pub async fn push(&self, item: Inbound) {
        let lane = item.lane as usize;
        let mut item = Some(item);
        std::future::poll_fn(|cx| {
            let mut q = self.lanes[lane].borrow_mut();
            if q.len() < self.capacity {
                if let Some(item) = item.take() {
                    q.push_back(item);
                }
                drop(q);
                wake_all(&self.receivers);
                Poll::Ready(())
            } else {
                register(&self.senders[lane], cx.waker());
                Poll::Pending
            }
        })
        .await
    }

    pub fn try_pop(&self) -> Option<Inbound> {
        let control = &self.lanes[Lane::Control as usize];
        let bulk = &self.lanes[Lane::Bulk as usize];
        let take_bulk = bulk.borrow().front().is_some()
            && (control.borrow().is_empty() || self.streak.get() >= CONTROL_STREAK);
        let (lane, item) = if take_bulk {
            self.streak.set(0);
            (Lane::Bulk, bulk.borrow_mut().pop_front())
        } else {
            let item = control.borrow_mut().pop_front();
            if item.is_some() {
                self.streak.set(self.streak.get().saturating_add(1));
            }
            (Lane::Control, item)
        };
        if item.is_some() {
            wake_all(&self.senders[lane as usize]);
        }
        item
    }

    pub async fn pop(&self) -> Inbound {
        std::future::poll_fn(|cx| match self.try_pop() {
            Some(item) => Poll::Ready(item),
            None => {
                register(&self.receivers, cx.waker());
                Poll::Pending
            }
        })
        .await
    }

    pub fn len(&self, lane: Lane) -> usize {
        self.lanes[lane as usize].borrow().len()
    }

    /// Drops every queued frame (shutdown) and releases waiting readers.
    pub fn clear(&self) {
        for (q, s) in self.lanes.iter().zip(&self.senders) {
            q.borrow_mut().clear();
            wake_all(s);
        }
    }
}

/// Remembers `w` unless the same task is already registered. Bounded: every waiter is a
/// distinct task, and the list is emptied on each wake.
fn register(list: &RefCell<Vec<Waker>>, w: &Waker) {
    let mut ws = list.borrow_mut();
    if !ws.iter().any(|x| x.will_wake(w)) {
        ws.push(w.clone());
    }
}

fn wake_all(list: &RefCell<Vec<Waker>>) {
    let ws = std::mem::take(&mut *list.borrow_mut());
    for w in ws {
        w.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures_lite::future;

    fn item(lane: Lane, n: u8) -> Inbound {
        Inbound {
            from: 2,
            lane,
            frame: Bytes::from(vec![n]),
        }
    }

    #[test]
    fn control_first_with_a_fairness_valve() {
        let inbox = Inbox::new(100);
        future::block_on(async {
            for n in 0..3 {
                inbox.push(item(Lane::Bulk, n)).await;
            }
            for n in 0..40 {
                inbox.push(item(Lane::Control, n)).await;
            }
        });
        let order: Vec<(Lane, u8)> = std::iter::from_fn(|| inbox.try_pop())
            .map(|i| (i.lane, i.frame[0]))
            .collect();
        assert_eq!(order.len(), 43);
        // 16 control, 1 bulk, 16 control, 1 bulk, 8 control, the last bulk.
        assert_eq!(order[16], (Lane::Bulk, 0));
        assert_eq!(order[33], (Lane::Bulk, 1));
        assert_eq!(order[42], (Lane::Bulk, 2));
        let control: Vec<u8> = order
            .iter()
            .filter(|(l, _)| *l == Lane::Control)
            .map(|&(_, n)| n)
            .collect();
        assert_eq!(control, (0..40).collect::<Vec<u8>>(), "FIFO within a lane");
    }

    #[test]
    fn full_lane_waits_and_the_other_does_not() {
        let inbox = Inbox::new(2);
        future::block_on(async {
            inbox.push(item(Lane::Bulk, 0)).await;
            inbox.push(item(Lane::Bulk, 1)).await;
        });
        let mut third = Box::pin(inbox.push(item(Lane::Bulk, 2)));
        assert!(future::block_on(future::poll_once(third.as_mut())).is_none());
        // Control has its own room.
        assert!(future::block_on(future::poll_once(inbox.push(item(Lane::Control, 9)))).is_some());
        assert_eq!(inbox.len(Lane::Bulk), 2);
        assert_eq!(inbox.try_pop().map(|i| i.lane), Some(Lane::Control));
        assert_eq!(inbox.try_pop().map(|i| i.frame[0]), Some(0));
        // Room again: the waiting push completes.
        assert!(future::block_on(future::poll_once(third.as_mut())).is_some());
        assert_eq!(inbox.len(Lane::Bulk), 2);
        assert!(future::block_on(future::poll_once(inbox.pop())).is_some());
        inbox.clear();
        assert!(inbox.try_pop().is_none());
    }
}
