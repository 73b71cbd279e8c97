//! Optional busy polling for the HTTP workers (HAProxy's `busy-polling`, deja's
//! `server.busy_poll_us`).
//!
//! On virtual machines an idle vCPU halts, and waking it takes an inter-processor
//! interrupt and a trip through the hypervisor: tens of microseconds on every hop of a
//! request (client → deja, provider → deja). With busy polling on, a worker that served a
//! request in the last `busy_poll_us` keeps polling its sockets instead of sleeping, so
//! the next event finds it running. It costs a core per busy worker while traffic flows;
//! once a worker has been idle for the window it sleeps as usual.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

struct Spinner {
    window: Duration,
    last: Cell<Instant>,
    sleeping: Cell<bool>,
    wake: tokio::sync::Notify,
}

thread_local! {
    static SPINNER: RefCell<Option<Rc<Spinner>>> = const { RefCell::new(None) };
}

/// Start busy polling on this worker thread (once; later calls do nothing).
/// Call from inside the worker's runtime.
pub fn install(window: Duration) {
    if window.is_zero() {
        return;
    }
    let spinner = SPINNER.with(|s| {
        let mut s = s.borrow_mut();
        if s.is_some() {
            return None;
        }
        let spinner = Rc::new(Spinner {
            window,
            last: Cell::new(Instant::now()),
            sleeping: Cell::new(false),
            wake: tokio::sync::Notify::new(),
        });
        *s = Some(spinner.clone());
        Some(spinner)
    });
    let Some(spinner) = spinner else { return };
    actix_rt::spawn(async move {
        loop {
            if spinner.last.get().elapsed() < spinner.window {
                // A yielded task makes the scheduler poll the I/O driver without
                // blocking, then run it again: the worker never parks.
                tokio::task::yield_now().await;
            } else {
                spinner.sleeping.set(true);
                spinner.wake.notified().await;
                spinner.sleeping.set(false);
            }
        }
    });
}

/// Note activity on this thread: keeps (or starts) its worker polling for the window.
pub fn touch() {
    SPINNER.with(|s| {
        if let Some(sp) = s.borrow().as_ref() {
            sp.last.set(Instant::now());
            if sp.sleeping.get() {
                sp.wake.notify_one();
            }
        }
    });
}
