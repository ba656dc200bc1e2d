//! A query that waits, finished on the async runtime without waking the runtime to start it.
//!
//! A UDP worker hands a query whose chain waits (a forwarded query, sent upstream by the time it
//! waits) to its runtime. Spawned, the task would be polled again at once only to find it still
//! waiting for its answer; and when the workers shared one multi-threaded runtime, a spawn from
//! the worker's thread also woke an idle runtime thread for that poll: a wake-up and two context
//! switches per forwarded query for nothing, about a third of the forwarding path's CPU at 5,000
//! queries/s.
//!
//! [`park`] polls the future once more, on the calling thread, with a waker of its own. Whatever
//! the future waits for (its upstream socket, its timeout) now holds that waker, and the task
//! is spawned only when it fires: from inside the runtime's I/O driver, on the worker that will
//! poll it, so nothing else is woken. Until then the future is only memory.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};

type Fut = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs `fut` to completion on `rt`, first polling it here, and spawning it only once what it
/// waits for wakes it (at once if it was woken while being polled here).
pub fn park(rt: &tokio::runtime::Handle, mut fut: Fut) {
    let parked = Arc::new(Parked { rt: rt.clone(), slot: Mutex::new(Slot::Polling) });
    let waker = Waker::from(parked.clone());
    if fut.as_mut().poll(&mut Context::from_waker(&waker)).is_ready() {
        return;
    }
    let mut slot = parked.slot.lock().expect("parked lock");
    match *slot {
        Slot::Polling => *slot = Slot::Parked(fut),
        // Woken while it was being polled: what it waited for is there already.
        _ => {
            *slot = Slot::Spawned;
            drop(slot);
            rt.spawn(fut);
        }
    }
}

struct Parked {
    rt: tokio::runtime::Handle,
    slot: Mutex<Slot>,
}

enum Slot {
    /// Being polled by [`park`].
    Polling,
    /// Woken while being polled by [`park`], which spawns it.
    Woken,
    /// Waiting for its waker.
    Parked(Fut),
    /// Handed to the runtime, whose task polls it with the task's own waker from then on; a
    /// wake of this waker still registered somewhere is stale and ignored.
    Spawned,
}

impl Wake for Parked {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut slot = self.slot.lock().expect("parked lock");
        match std::mem::replace(&mut *slot, Slot::Spawned) {
            Slot::Parked(fut) => {
                drop(slot);
                self.rt.spawn(fut);
            }
            Slot::Polling => *slot = Slot::Woken,
            Slot::Woken => *slot = Slot::Woken,
            Slot::Spawned => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::Poll;
    use std::time::Duration;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
    }

    /// A future that completes on the first poll is not spawned.
    #[test]
    fn a_ready_future_completes_here() {
        let rt = runtime();
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        park(rt.handle(), Box::pin(async move { d.store(true, Ordering::SeqCst) }));
        assert!(done.load(Ordering::SeqCst));
    }

    /// A future waiting on a socket finishes on the runtime once its datagram arrives.
    #[test]
    fn a_waiting_future_finishes_when_woken() {
        let rt = runtime();
        let _enter = rt.enter();
        let std_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        std_sock.set_nonblocking(true).unwrap();
        let addr = std_sock.local_addr().unwrap();
        let sock = tokio::net::UdpSocket::from_std(std_sock).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        park(
            rt.handle(),
            Box::pin(async move {
                let mut buf = [0u8; 16];
                let n = sock.recv(&mut buf).await.unwrap();
                tx.send(buf[..n].to_vec()).unwrap();
            }),
        );
        assert!(rx.try_recv().is_err(), "finished before its datagram");
        std::net::UdpSocket::bind("127.0.0.1:0").unwrap().send_to(b"hi", addr).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), b"hi");
    }

    /// A future woken while it is being polled here (its waker fired before it returned) is
    /// spawned at once rather than left waiting for a wake that already happened.
    #[test]
    fn a_future_woken_during_its_poll_is_spawned() {
        let rt = runtime();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut first = true;
        park(
            rt.handle(),
            Box::pin(std::future::poll_fn(move |cx| {
                if first {
                    first = false;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                tx.send(()).unwrap();
                Poll::Ready(())
            })),
        );
        assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok(), "never finished");
    }
}
