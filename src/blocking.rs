//! A minimal executor for callers without an async runtime.
//!
//! The blocking methods ([`Encryptor::encrypt_blocking`](crate::Encryptor::encrypt_blocking)
//! and friends) drive the async API on the calling thread with [`block_on`]. The local KEK
//! completes without waiting; KMS providers that need a reactor (tokio) bring their own
//! runtime handle. Do not call blocking methods from inside an async task: they park the thread.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to completion on the current thread.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return out,
            Poll::Pending => thread::park(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drives_a_future_woken_from_another_thread() {
        struct Once(Option<std::sync::mpsc::Receiver<u32>>, bool);
        impl Future for Once {
            type Output = u32;
            fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
                if let Ok(v) = self
                    .0
                    .as_ref()
                    .map_or(Err(()), |r| r.try_recv().map_err(|_| ()))
                {
                    return Poll::Ready(v);
                }
                if !self.1 {
                    self.1 = true;
                    let w = cx.waker().clone();
                    let (tx, rx) = std::sync::mpsc::channel();
                    self.0 = Some(rx);
                    thread::spawn(move || {
                        thread::sleep(std::time::Duration::from_millis(10));
                        let _ = tx.send(42);
                        w.wake();
                    });
                }
                Poll::Pending
            }
        }
        assert_eq!(block_on(Once(None, false)), 42);
    }
}
