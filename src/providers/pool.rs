//! One pool actor per provider: it owns the provider's HTTP client and keys, hands out a
//! [`Lease`] (client + weighted-random key) per request and counts each key's outcomes.
//! The request itself runs on the caller's worker thread, so the actor is never the
//! bottleneck; retries, fallbacks and circuit breaking hook in at [`PoolState::record`].

use super::{list_models, Adapter, ModelRegistry, ProviderKind};
use crate::config::{ProviderConfig, Secret};
use actix::prelude::*;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;
use std::time::Duration;

/// What a request needs to call the provider once.
#[derive(Clone)]
pub struct Lease {
    pub provider: Arc<str>,
    pub client: reqwest::Client,
    pub base_url: Arc<str>,
    pub key: Option<Secret>,
    pub key_index: usize,
    pub timeout: Duration,
}

impl Lease {
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

/// The pool's state, usable without an actix System.
pub struct PoolState {
    provider: Arc<str>,
    kind: ProviderKind,
    client: reqwest::Client,
    base_url: Arc<str>,
    timeout: Duration,
    keys: Vec<Secret>,
    /// Running sum of weights, for weighted random choice.
    cumulative: Vec<u64>,
    stats: Vec<KeyStats>,
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
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs_f64(cfg.connect_timeout_secs))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .user_agent(concat!("deja/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| err(e.to_string()))?;
        let base_url = cfg
            .effective_base_url()
            .ok_or_else(|| err("no base_url".into()))?;
        let all = cfg.all_keys();
        let mut cumulative = Vec::with_capacity(all.len());
        let mut total = 0u64;
        for k in &all {
            total += u64::from(k.weight);
            cumulative.push(total);
        }
        Ok(PoolState {
            provider: id.into(),
            kind: cfg.kind,
            client,
            base_url: base_url.into(),
            timeout: Duration::from_secs_f64(cfg.timeout_secs),
            stats: all
                .iter()
                .map(|k| KeyStats {
                    weight: k.weight,
                    ..Default::default()
                })
                .collect(),
            keys: all.into_iter().map(|k| k.key).collect(),
            cumulative,
        })
    }

    /// Choose a key by weighted random and hand out what a request needs.
    pub fn checkout(&mut self, rng: &mut impl Rng) -> Lease {
        let (key, key_index) = match self.cumulative.last() {
            None => (None, 0),
            Some(&total) => {
                let r = rng.random_range(0..total);
                let i = self.cumulative.partition_point(|&c| c <= r);
                (Some(self.keys[i].clone()), i)
            }
        };
        if let Some(s) = self.stats.get_mut(key_index) {
            s.requests += 1;
        }
        Lease {
            provider: self.provider.clone(),
            client: self.client.clone(),
            base_url: self.base_url.clone(),
            key,
            key_index,
            timeout: self.timeout,
        }
    }

    /// Count a request's outcome against its key.
    pub fn record(&mut self, key_index: usize, failed: bool) {
        if failed {
            if let Some(s) = self.stats.get_mut(key_index) {
                s.failures += 1;
            }
        }
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            provider: self.provider.to_string(),
            kind: self.kind.as_str(),
            keys: self.stats.clone(),
        }
    }
}

/// The actor shell around [`PoolState`].
pub struct ProviderPool {
    state: PoolState,
    adapter: Adapter,
    discover: bool,
    registry: ModelRegistry,
    rng: rand::rngs::SmallRng,
}

impl ProviderPool {
    pub fn new(
        state: PoolState,
        adapter: Adapter,
        discover: bool,
        registry: ModelRegistry,
    ) -> Self {
        use rand::SeedableRng;
        ProviderPool {
            state,
            adapter,
            discover,
            registry,
            rng: rand::rngs::SmallRng::from_os_rng(),
        }
    }
}

impl Actor for ProviderPool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
        if !self.discover {
            return;
        }
        let lease = self.state.checkout(&mut self.rng);
        let adapter = self.adapter.clone();
        let registry = self.registry.clone();
        let provider = self.state.provider.clone();
        actix::spawn(async move {
            match list_models(&adapter, &lease).await {
                Ok(models) => {
                    tracing::info!(provider = %provider, count = models.len(), "discovered models");
                    registry.add_listed(&provider, models);
                }
                Err(e) => {
                    tracing::warn!(provider = %provider, error = %e, "model discovery failed")
                }
            }
        });
    }
}

/// Ask for a lease.
#[derive(Message)]
#[rtype(result = "Lease")]
pub struct Checkout;

impl Handler<Checkout> for ProviderPool {
    type Result = MessageResult<Checkout>;
    fn handle(&mut self, _: Checkout, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.state.checkout(&mut self.rng))
    }
}

/// Report how a leased request ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Outcome {
    pub key_index: usize,
    pub failed: bool,
}

impl Handler<Outcome> for ProviderPool {
    type Result = ();
    fn handle(&mut self, o: Outcome, _: &mut Context<Self>) {
        self.state.record(o.key_index, o.failed);
    }
}

#[derive(Message)]
#[rtype(result = "PoolStats")]
pub struct Stats;

impl Handler<Stats> for ProviderPool {
    type Result = MessageResult<Stats>;
    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.state.stats())
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
        let mut st = PoolState::new("p", &cfg).unwrap();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut counts = [0u32; 2];
        for _ in 0..40_000 {
            counts[st.checkout(&mut rng).key_index] += 1;
        }
        let share_b = f64::from(counts[1]) / 40_000.0;
        assert!((share_b - 0.75).abs() < 0.02, "share of b = {share_b}");
        assert_eq!(st.stats().keys[1].requests, u64::from(counts[1]));
        st.record(1, true);
        st.record(1, false);
        st.record(0, true);
        let stats = st.stats();
        assert_eq!((stats.keys[0].failures, stats.keys[1].failures), (1, 1));
    }

    #[test]
    fn keyless_provider_leases_without_key_and_counts_failures() {
        let cfg = ProviderConfig::new(ProviderKind::Ollama);
        let mut st = PoolState::new("o", &cfg).unwrap();
        let lease = st.checkout(&mut rand::rng());
        assert!(lease.key.is_none());
        assert_eq!(&*lease.base_url, "http://127.0.0.1:11434/v1");
        st.record(lease.key_index, true);
        assert!(st.stats().keys.is_empty());
    }
}
