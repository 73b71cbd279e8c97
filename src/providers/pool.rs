//! One pool per provider: its keys, its HTTP clients and each key's counts.
//!
//! The request path reads the pool's [`PoolState`] directly (weighted-random key choice,
//! atomic counters): asking an actor for a lease would cost two thread wake-ups per
//! request, which on a 2-core machine was most of deja's added latency. The
//! [`ProviderPool`] actor owns the same state for the pool's background work (model
//! discovery; circuit breaking later hooks in at [`PoolState::record`]).
//!
//! Each worker thread gets its own reqwest client per pool: hyper drives a pooled
//! connection on the runtime that opened it, so one client shared by every actix worker
//! would hop threads whenever a worker reuses another worker's connection.

use super::health::{Health, HealthBook, Outcome, OutcomeClass, Reports, HEALTH_INTERVAL};
use super::{list_models, Adapter, Endpoint, ModelRegistry, ProviderKind};
use crate::config::{ProviderConfig, Secret};
use actix::prelude::*;
use arc_swap::ArcSwap;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a request needs to call the provider once.
#[derive(Clone)]
pub struct Lease {
    pub provider: Arc<str>,
    pub client: reqwest::Client,
    pub base_url: Arc<str>,
    /// `base_url` joined with each OpenAI endpoint path, parsed once for the pool.
    endpoint_urls: Arc<EndpointUrls>,
    pub key: Option<Secret>,
    pub key_index: usize,
    pub timeout: Duration,
}

/// The OpenAI endpoints' URLs below a base URL, parsed at start-up: reqwest parses a URL
/// given as a string on every request (host and IDNA processing included), ~4% of the
/// instructions deja spent per proxied request (callgrind).
struct EndpointUrls {
    chat_completions: Option<reqwest::Url>,
    completions: Option<reqwest::Url>,
    embeddings: Option<reqwest::Url>,
}

impl EndpointUrls {
    fn new(base_url: &str) -> Self {
        let parse = |e: Endpoint| reqwest::Url::parse(&format!("{base_url}{}", e.path())).ok();
        EndpointUrls {
            chat_completions: parse(Endpoint::ChatCompletions),
            completions: parse(Endpoint::Completions),
            embeddings: parse(Endpoint::Embeddings),
        }
    }
}

impl Lease {
    /// `base_url` + the endpoint's path, already parsed (`None` if that is no valid URL:
    /// the request then fails with reqwest's own error, as a string URL would).
    pub fn endpoint_url(&self, endpoint: Endpoint) -> Option<reqwest::Url> {
        let u = &self.endpoint_urls;
        match endpoint {
            Endpoint::ChatCompletions => u.chat_completions.clone(),
            Endpoint::Completions => u.completions.clone(),
            Endpoint::Embeddings => u.embeddings.clone(),
        }
    }

    /// Add the bearer key, if the provider has one.
    pub fn authorize(&self, b: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.key {
            Some(k) => b.bearer_auth(k.expose()),
            None => b,
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct KeyStats {
    pub weight: u32,
    pub requests: u64,
    pub failures: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PoolStats {
    pub provider: String,
    pub kind: &'static str,
    pub keys: Vec<KeyStats>,
}

#[derive(Default)]
struct KeyCounters {
    requests: AtomicU64,
    failures: AtomicU64,
}

/// How to build the pool's HTTP client (once per worker thread).
#[derive(Clone)]
struct ClientSpec {
    headers: HeaderMap,
    connect_timeout: Duration,
}

impl ClientSpec {
    fn build(&self) -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .default_headers(self.headers.clone())
            .connect_timeout(self.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .user_agent(concat!("deja/", env!("CARGO_PKG_VERSION")))
            .build()
    }
}

static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's client for each pool, by pool id.
    static CLIENTS: RefCell<Vec<(u64, reqwest::Client)>> = const { RefCell::new(Vec::new()) };
}

/// The pool's state: shared by every worker, usable without an actix System.
pub struct PoolState {
    id: u64,
    provider: Arc<str>,
    kind: ProviderKind,
    spec: ClientSpec,
    /// Built at start-up (proving the spec builds); used where a thread's own fails.
    fallback: reqwest::Client,
    base_url: Arc<str>,
    endpoint_urls: Arc<EndpointUrls>,
    timeout: Duration,
    keys: Vec<Secret>,
    weights: Vec<u32>,
    /// Running sum of weights, for weighted random choice.
    cumulative: Vec<u64>,
    counters: Vec<KeyCounters>,
    /// Model discovery has ended (listed, failed, or not configured).
    discovered: AtomicBool,
    /// Outcome reports for the pool actor.
    reports: Reports,
    /// Per-key health, published by the pool actor (its only writer).
    health: Arc<ArcSwap<Health>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("provider `{provider}`: {message}")]
    Build { provider: String, message: String },
}

impl PoolState {
    pub fn new(id: &str, cfg: &ProviderConfig) -> Result<Self, PoolError> {
        let err = |message: String| PoolError::Build {
            provider: id.to_owned(),
            message,
        };
        let mut headers = HeaderMap::new();
        for (k, v) in &cfg.headers {
            let name =
                HeaderName::try_from(k.as_str()).map_err(|e| err(format!("header `{k}`: {e}")))?;
            let value =
                HeaderValue::try_from(v.as_str()).map_err(|e| err(format!("header `{k}`: {e}")))?;
            headers.insert(name, value);
        }
        let spec = ClientSpec {
            headers,
            connect_timeout: Duration::from_secs_f64(cfg.connect_timeout_secs),
        };
        let fallback = spec.build().map_err(|e| err(e.to_string()))?;
        let base_url = cfg
            .effective_base_url()
            .ok_or_else(|| err("no base_url".into()))?;
        let all = cfg.all_keys();
        let all_len = all.len();
        let mut cumulative = Vec::with_capacity(all.len());
        let mut total = 0u64;
        for k in &all {
            total += u64::from(k.weight);
            cumulative.push(total);
        }
        Ok(PoolState {
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            provider: id.into(),
            kind: cfg.kind,
            spec,
            fallback,
            endpoint_urls: Arc::new(EndpointUrls::new(&base_url)),
            base_url: base_url.into(),
            timeout: Duration::from_secs_f64(cfg.timeout_secs),
            weights: all.iter().map(|k| k.weight).collect(),
            counters: all.iter().map(|_| KeyCounters::default()).collect(),
            keys: all.into_iter().map(|k| k.key).collect(),
            health: Arc::new(ArcSwap::from_pointee(HealthBook::initial(all_len))),
            reports: Reports::default(),
            cumulative,
            discovered: AtomicBool::new(!cfg.discover_models),
        })
    }

    /// Whether model discovery has ended (a provider without it: from the start).
    pub fn discovery_done(&self) -> bool {
        self.discovered.load(Ordering::Acquire)
    }

    /// This thread's client for the pool, built on first use.
    fn client(&self) -> reqwest::Client {
        CLIENTS.with(|c| {
            let mut clients = c.borrow_mut();
            if let Some((_, client)) = clients.iter().find(|(id, _)| *id == self.id) {
                return client.clone();
            }
            let client = self.spec.build().unwrap_or_else(|e| {
                tracing::warn!(provider = %self.provider, error = %e, "per-thread HTTP client failed to build; sharing the pool's");
                self.fallback.clone()
            });
            clients.push((self.id, client.clone()));
            client
        })
    }

    /// Choose a key by weighted random and hand out what a request needs.
    pub fn checkout(&self, rng: &mut impl Rng) -> Lease {
        let (key, key_index) = match self.cumulative.last() {
            None => (None, 0),
            Some(&total) => {
                let r = rng.random_range(0..total);
                let i = self.cumulative.partition_point(|&c| c <= r);
                (Some(self.keys[i].clone()), i)
            }
        };
        if let Some(c) = self.counters.get(key_index) {
            c.requests.fetch_add(1, Ordering::Relaxed);
        }
        Lease {
            provider: self.provider.clone(),
            client: self.client(),
            base_url: self.base_url.clone(),
            endpoint_urls: self.endpoint_urls.clone(),
            key,
            key_index,
            timeout: self.timeout,
        }
    }

    /// Report an upstream attempt's outcome: counted against its key at once, and
    /// queued for the pool actor, which folds it into the published [`Health`].
    pub fn report(&self, key_index: usize, class: OutcomeClass, latency: Duration) {
        if class.is_key_failure() {
            if let Some(c) = self.counters.get(key_index) {
                c.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.reports.push(Outcome {
            key_index,
            class,
            latency,
        });
    }

    /// The per-key health the pool actor last published.
    pub fn health(&self) -> Arc<Health> {
        self.health.load_full()
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            provider: self.provider.to_string(),
            kind: self.kind.as_str(),
            keys: self
                .weights
                .iter()
                .zip(&self.counters)
                .map(|(&weight, c)| KeyStats {
                    weight,
                    requests: c.requests.load(Ordering::Relaxed),
                    failures: c.failures.load(Ordering::Relaxed),
                })
                .collect(),
        }
    }
}

/// The actor shell around [`PoolState`]: the pool's background work.
pub struct ProviderPool {
    state: Arc<PoolState>,
    adapter: Adapter,
    discover: bool,
    registry: ModelRegistry,
}

impl ProviderPool {
    pub fn new(
        state: Arc<PoolState>,
        adapter: Adapter,
        discover: bool,
        registry: ModelRegistry,
    ) -> Self {
        ProviderPool {
            state,
            adapter,
            discover,
            registry,
        }
    }
}

impl Actor for ProviderPool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The actor owns the pool's health: it folds the request path's reports on
        // its timer (no wake-up per request) and publishes the snapshot.
        let mut book = HealthBook::new(self.state.health.clone());
        ctx.run_interval(HEALTH_INTERVAL, move |act, _| book.fold(&act.state.reports));
        if !self.discover {
            return;
        }
        let lease = self.state.checkout(&mut rand::rng());
        let adapter = self.adapter.clone();
        let registry = self.registry.clone();
        let state = self.state.clone();
        actix::spawn(async move {
            let provider = &state.provider;
            match list_models(&adapter, &lease).await {
                Ok(models) => {
                    tracing::info!(provider = %provider, count = models.len(), "discovered models");
                    registry.add_listed(provider, models);
                }
                Err(e) => {
                    tracing::warn!(provider = %provider, error = %e, "model discovery failed")
                }
            }
            state.discovered.store(true, Ordering::Release);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeyConfig;
    use rand::SeedableRng;

    #[test]
    fn weighted_choice_follows_weights() {
        let mut cfg = ProviderConfig::new(ProviderKind::OpenAi);
        cfg.keys = vec![
            KeyConfig {
                key: Secret::new("a"),
                weight: 1,
            },
            KeyConfig {
                key: Secret::new("b"),
                weight: 3,
            },
        ];
        let st = PoolState::new("p", &cfg).unwrap();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut counts = [0u32; 2];
        for _ in 0..40_000 {
            counts[st.checkout(&mut rng).key_index] += 1;
        }
        let share_b = f64::from(counts[1]) / 40_000.0;
        assert!((share_b - 0.75).abs() < 0.02, "share of b = {share_b}");
        assert_eq!(st.stats().keys[1].requests, u64::from(counts[1]));
        let ms = Duration::from_millis(1);
        st.report(1, OutcomeClass::Server, ms);
        st.report(1, OutcomeClass::Success, ms);
        st.report(1, OutcomeClass::Client, ms);
        st.report(0, OutcomeClass::RateLimited, ms);
        let stats = st.stats();
        assert_eq!((stats.keys[0].failures, stats.keys[1].failures), (1, 1));
        assert_eq!((stats.keys[0].weight, stats.keys[1].weight), (1, 3));
    }

    #[test]
    fn keyless_provider_leases_without_key_and_counts_failures() {
        let cfg = ProviderConfig::new(ProviderKind::Ollama);
        let st = PoolState::new("o", &cfg).unwrap();
        let lease = st.checkout(&mut rand::rng());
        assert!(lease.key.is_none());
        assert_eq!(&*lease.base_url, "http://127.0.0.1:11434/v1");
        st.report(lease.key_index, OutcomeClass::Timeout, Duration::ZERO);
        assert!(st.stats().keys.is_empty());
    }

    #[test]
    fn endpoint_urls_are_the_base_url_joined_with_each_path() {
        let mut cfg = ProviderConfig::new(ProviderKind::OpenAiCompatible);
        cfg.base_url = Some("http://127.0.0.1:9/proxy/v1".into());
        let lease = PoolState::new("c", &cfg)
            .unwrap()
            .checkout(&mut rand::rng());
        for e in [
            Endpoint::ChatCompletions,
            Endpoint::Completions,
            Endpoint::Embeddings,
        ] {
            let url = lease.endpoint_url(e).expect("parsed at start-up");
            assert_eq!(
                url.as_str(),
                format!("http://127.0.0.1:9/proxy/v1{}", e.path())
            );
        }
        // Not a URL: no parsed form; the request fails later, as with the string.
        cfg.base_url = Some("not a url".into());
        let lease = PoolState::new("c", &cfg)
            .unwrap()
            .checkout(&mut rand::rng());
        assert!(lease.endpoint_url(Endpoint::ChatCompletions).is_none());
    }

    #[test]
    fn discovery_is_pending_only_where_configured() {
        let mut cfg = ProviderConfig::new(ProviderKind::Ollama);
        cfg.discover_models = true;
        assert!(!PoolState::new("o", &cfg).unwrap().discovery_done());
        cfg.discover_models = false;
        assert!(PoolState::new("o", &cfg).unwrap().discovery_done());
    }

    #[test]
    fn each_thread_gets_its_own_client_per_pool_and_keeps_it() {
        let cfg = ProviderConfig::new(ProviderKind::Ollama);
        let (a, b) = (
            PoolState::new("a", &cfg).unwrap(),
            PoolState::new("b", &cfg).unwrap(),
        );
        let count = || CLIENTS.with(|c| c.borrow().len());
        let before = count();
        a.checkout(&mut rand::rng());
        a.checkout(&mut rand::rng());
        assert_eq!(count(), before + 1, "one client per pool per thread");
        b.checkout(&mut rand::rng());
        assert_eq!(count(), before + 2);
        std::thread::scope(|s| {
            s.spawn(|| {
                assert_eq!(count(), 0, "a new thread starts without clients");
                a.checkout(&mut rand::rng());
                assert_eq!(count(), 1);
            });
        });
    }
}
