//! `server.busy_poll_us`: a worker keeps polling (burning CPU) for the window after a
//! request, then sleeps again. Its own test binary: it reads the whole process's CPU
//! time, which tests running in parallel threads would disturb.

mod common;

use common::{chat, Harness};
use std::time::Duration;

/// CPU time (user + system) of this process so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we pass; RUSAGE_SELF is valid.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) }, 0);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

async fn cpu_during(wall: Duration) -> Duration {
    let before = cpu_time();
    tokio::time::sleep(wall).await;
    cpu_time() - before
}

// One test: the CPU-time readings would see a second test's server.
#[tokio::test]
async fn workers_poll_for_the_window_after_a_request_then_sleep() {
    // Off by default: the process idles right after a request.
    {
        let h = Harness::start("[server]\nworkers = 1\n");
        let r = h.post("/v1/chat/completions", chat("mock/m", "hi")).await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let idle = cpu_during(Duration::from_millis(300)).await;
        assert!(
            idle <= Duration::from_millis(40),
            "busy without busy polling: {idle:?}"
        );
    }

    let h = Harness::start("[server]\nworkers = 1\nbusy_poll_us = 400000\n");
    let r = h.post("/v1/chat/completions", chat("mock/m", "hi")).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    // Inside the 400 ms window the worker spins: close to one core's worth of CPU.
    let busy = cpu_during(Duration::from_millis(200)).await;
    assert!(
        busy >= Duration::from_millis(60),
        "spinning used only {busy:?} of CPU in 200 ms"
    );
    // Past the window it sleeps: the process is idle again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = cpu_during(Duration::from_millis(300)).await;
    assert!(
        idle <= Duration::from_millis(40),
        "still busy after the window: {idle:?} of CPU in 300 ms"
    );
    // And a new request starts it again (and is served normally).
    let r = h
        .post("/v1/chat/completions", chat("mock/m", "again"))
        .await;
    assert_eq!(r.status(), 200);
    let busy = cpu_during(Duration::from_millis(200)).await;
    assert!(
        busy >= Duration::from_millis(60),
        "no spinning after a new request: {busy:?}"
    );
}
