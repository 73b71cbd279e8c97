//! The provider pool actor owns per-key health: the request path reports each upstream
//! attempt, the actor folds the reports and publishes a snapshot that readers load.

mod common;

use common::{chat, Harness};
use deja::providers::OutcomeClass;
use deja_mock::Behaviour;
use std::time::Duration;

async fn health_after(h: &Harness, pred: impl Fn(&deja::providers::Health) -> bool) -> bool {
    let gw = &h.state().gateway;
    let pool = gw.providers().next().unwrap().pool.clone();
    for _ in 0..100 {
        if pred(&pool.health()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn outcomes_reach_the_pool_actor_and_its_published_health() {
    let h = Harness::start("");
    for i in 0..3 {
        let r = h
            .post("/v1/chat/completions", chat("m", &format!("q{i}")))
            .await;
        assert_eq!(r.status(), 200);
    }
    assert!(
        health_after(&h, |hl| hl.keys[0].successes == 3 && hl.keys[0].healthy).await,
        "three successes published"
    );
    assert!(h
        .state()
        .gateway
        .providers()
        .next()
        .unwrap()
        .pool
        .health()
        .keys[0]
        .latency_ewma_ms
        .is_some());

    h.mock.state.set_behaviour(Behaviour::Fail {
        status: 503,
        body: "down".into(),
    });
    for i in 0..3 {
        let r = h
            .post("/v1/chat/completions", chat("m", &format!("f{i}")))
            .await;
        assert_eq!(r.status(), 503);
    }
    assert!(
        health_after(&h, |hl| !hl.keys[0].healthy
            && hl.keys[0].consecutive_failures == 3
            && hl.keys[0].last_error == Some(OutcomeClass::Server))
        .await,
        "three 503s make the key unhealthy"
    );

    // A success heals the key; its failures stay counted.
    h.mock.state.set_behaviour(Behaviour::Normal);
    let r = h.post("/v1/chat/completions", chat("m", "back")).await;
    assert_eq!(r.status(), 200);
    assert!(health_after(&h, |hl| hl.keys[0].healthy && hl.keys[0].failures == 3).await);
}
