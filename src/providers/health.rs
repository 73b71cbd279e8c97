//! Per-key health, owned by each provider's pool actor.
//!
//! The request path reports every upstream attempt's [`Outcome`] (key, error class,
//! latency) into the pool's [`Reports`] queue: a short lock and no thread wake-up per
//! request. The [`super::ProviderPool`] actor drains the queue on its timer, folds the
//! reports into the per-key [`KeyHealth`] it alone owns ([`HealthBook`]) and publishes
//! an immutable [`Health`] snapshot that readers (routing, `/admin`) load lock-free.

use super::ProviderError;
use arc_swap::ArcSwap;
use parking_lot::Mutex;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// How often the pool actor folds reports into a new snapshot.
pub const HEALTH_INTERVAL: Duration = Duration::from_millis(100);

/// Consecutive failures after which a key is reported unhealthy.
pub const UNHEALTHY_AFTER: u32 = 3;

/// Weight of the newest latency in the moving average.
const EWMA_ALPHA: f64 = 0.2;

/// What an upstream attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeClass {
    Success,
    /// 429.
    RateLimited,
    /// 401 / 403: the key itself is refused.
    Auth,
    /// 5xx from the provider.
    Server,
    Timeout,
    /// Connection refused, reset, DNS, or a stream broken mid-way.
    Unreachable,
    /// A 4xx about the request (not the key), or a response deja could not read.
    Client,
}

impl OutcomeClass {
    /// The class of a failed attempt.
    pub fn of(e: &ProviderError) -> Self {
        match e {
            ProviderError::Upstream { status, .. } => match status {
                429 => OutcomeClass::RateLimited,
                401 | 403 => OutcomeClass::Auth,
                s if *s >= 500 => OutcomeClass::Server,
                _ => OutcomeClass::Client,
            },
            ProviderError::Timeout { .. } => OutcomeClass::Timeout,
            ProviderError::Unreachable { .. } | ProviderError::StreamInterrupted { .. } => {
                OutcomeClass::Unreachable
            }
            ProviderError::InvalidResponse { .. } => OutcomeClass::Client,
        }
    }

    /// Whether it counts against the key (a request error is the client's, not the key's).
    pub fn is_key_failure(self) -> bool {
        !matches!(self, OutcomeClass::Success | OutcomeClass::Client)
    }
}

/// One upstream attempt, as reported by the request path.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub key_index: usize,
    pub class: OutcomeClass,
    pub latency: Duration,
}

/// One key's health as last published.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KeyHealth {
    pub healthy: bool,
    pub consecutive_failures: u32,
    pub successes: u64,
    pub failures: u64,
    /// The class of the latest failure.
    pub last_error: Option<OutcomeClass>,
    /// Exponentially weighted average latency of successful attempts, ms.
    pub latency_ewma_ms: Option<f64>,
}

/// The pool's published health: one entry per configured key (one for a keyless pool).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Health {
    pub keys: Vec<KeyHealth>,
    /// Reports folded so far.
    pub reports: u64,
}

/// The queue between the request path and the pool actor.
#[derive(Debug, Default)]
pub struct Reports {
    queue: Mutex<Vec<Outcome>>,
}

impl Reports {
    pub fn push(&self, o: Outcome) {
        self.queue.lock().push(o);
    }

    fn drain(&self) -> Vec<Outcome> {
        std::mem::take(&mut *self.queue.lock())
    }
}

/// The per-key state the pool actor owns, and the snapshot it publishes.
pub struct HealthBook {
    health: Health,
    published: Arc<ArcSwap<Health>>,
}

impl HealthBook {
    /// The starting snapshot for `keys` keys (at least one entry), all healthy.
    pub fn initial(keys: usize) -> Health {
        Health {
            keys: vec![
                KeyHealth {
                    healthy: true,
                    ..Default::default()
                };
                keys.max(1)
            ],
            reports: 0,
        }
    }

    /// The owner of what `published` shows (which holds [`HealthBook::initial`]).
    pub fn new(published: Arc<ArcSwap<Health>>) -> Self {
        HealthBook {
            health: Health::clone(&published.load()),
            published,
        }
    }

    /// Fold what was reported since the last call and publish when anything changed.
    pub fn fold(&mut self, reports: &Reports) {
        let batch = reports.drain();
        if batch.is_empty() {
            return;
        }
        for o in batch {
            self.apply(o);
        }
        self.published.store(Arc::new(self.health.clone()));
    }

    fn apply(&mut self, o: Outcome) {
        self.health.reports += 1;
        let Some(k) = self.health.keys.get_mut(o.key_index) else {
            return;
        };
        if o.class.is_key_failure() {
            k.failures += 1;
            k.consecutive_failures += 1;
            k.last_error = Some(o.class);
        } else {
            if o.class == OutcomeClass::Success {
                k.successes += 1;
                let ms = o.latency.as_secs_f64() * 1000.0;
                k.latency_ewma_ms = Some(match k.latency_ewma_ms {
                    None => ms,
                    Some(prev) => prev + EWMA_ALPHA * (ms - prev),
                });
            }
            k.consecutive_failures = 0;
        }
        k.healthy = k.consecutive_failures < UNHEALTHY_AFTER;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(key_index: usize, class: OutcomeClass, ms: u64) -> Outcome {
        Outcome {
            key_index,
            class,
            latency: Duration::from_millis(ms),
        }
    }

    #[test]
    fn reports_are_folded_into_a_published_snapshot() {
        let reports = Reports::default();
        let published = Arc::new(ArcSwap::from_pointee(HealthBook::initial(2)));
        let mut book = HealthBook::new(published.clone());
        reports.push(o(0, OutcomeClass::Success, 100));
        reports.push(o(0, OutcomeClass::Success, 200));
        for _ in 0..UNHEALTHY_AFTER {
            reports.push(o(1, OutcomeClass::Server, 5));
        }
        // Nothing is published before the owner folds.
        assert_eq!(published.load().reports, 0);
        book.fold(&reports);
        let h = published.load();
        assert_eq!(h.reports, 2 + u64::from(UNHEALTHY_AFTER));
        assert!(h.keys[0].healthy);
        assert_eq!(h.keys[0].successes, 2);
        assert_eq!(h.keys[0].latency_ewma_ms, Some(120.0));
        assert!(!h.keys[1].healthy);
        assert_eq!(h.keys[1].last_error, Some(OutcomeClass::Server));
        // A success heals; a client error neither counts nor heals latency.
        reports.push(o(1, OutcomeClass::Client, 1));
        reports.push(o(1, OutcomeClass::Success, 50));
        book.fold(&reports);
        let h = published.load();
        assert!(h.keys[1].healthy);
        assert_eq!(h.keys[1].consecutive_failures, 0);
        assert_eq!(h.keys[1].failures, u64::from(UNHEALTHY_AFTER));
        assert_eq!(h.keys[1].latency_ewma_ms, Some(50.0));
    }

    #[test]
    fn error_classes_follow_the_status() {
        let up = |status| ProviderError::Upstream {
            provider: "p".into(),
            status,
            body: bytes::Bytes::new(),
        };
        assert_eq!(OutcomeClass::of(&up(429)), OutcomeClass::RateLimited);
        assert_eq!(OutcomeClass::of(&up(401)), OutcomeClass::Auth);
        assert_eq!(OutcomeClass::of(&up(503)), OutcomeClass::Server);
        assert_eq!(OutcomeClass::of(&up(400)), OutcomeClass::Client);
        assert!(!OutcomeClass::Client.is_key_failure());
        assert!(OutcomeClass::RateLimited.is_key_failure());
    }
}
