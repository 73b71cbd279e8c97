//! The cache inspection API's domain functions: stats, listing, search with verdicts,
//! deletion, export and batch insertion (the warm-up path).

use super::cached::{cache_error, embed_error, request_key, CacheControls, Judged, SemanticCache};
use super::{parse_request, Gateway, GatewayError};
use crate::cache::{Entry, EntryFilter, ExactKey, ListPage, NewEntry};
use crate::providers::Endpoint;
use crate::telemetry::metrics::{single, Labels, Scrape};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn cache(gw: &Gateway) -> Result<&Arc<SemanticCache>, GatewayError> {
    gw.cache.as_ref().ok_or(GatewayError::CacheDisabled)
}

/// `GET /admin/cache/stats`.
pub fn stats(gw: &Gateway) -> Result<Value, GatewayError> {
    let c = cache(gw)?;
    let n = &c.counters;
    let (he, hs, mi) = (
        n.hits_exact.load(Ordering::Relaxed),
        n.hits_semantic.load(Ordering::Relaxed),
        n.misses.load(Ordering::Relaxed),
    );
    let lookups = he + hs + mi;
    let refusals = n.refusals.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let store = c.handle.store.stats();
    let embed = c.embedder.stats();
    Ok(json!({
        "entries": store.entries,
        "bytes": store.bytes,
        "hits": {"exact": he, "semantic": hs},
        "misses": mi,
        "bypass": n.bypass.load(Ordering::Relaxed),
        "bypass_reasons": super::cached::BypassReason::ALL
            .iter()
            .zip(&n.bypass_reasons)
            .map(|(r, v)| (r.as_str().to_owned(), json!(v.load(Ordering::Relaxed))))
            .collect::<Map<String, Value>>(),
        "max_partitions": c.config.max_partitions,
        "coalesced": n.coalesced.load(Ordering::Relaxed),
        "stored": n.stored.load(Ordering::Relaxed),
        "hit_rate": if lookups == 0 { 0.0 } else { (he + hs) as f64 / lookups as f64 },
        "refusals": refusals,
        "evictions": store.evictions,
        "expirations": store.expirations,
        "index": store,
        "embedder": {"batches": embed.batches, "texts": embed.texts, "pending": c.embedder.pending()},
        "similarity_threshold": c.config.similarity_threshold,
    }))
}

/// An entry as the admin API shows it (no vector).
pub fn entry_view(e: &Entry) -> Value {
    json!({
        "id": e.id.to_string(),
        "namespace": e.namespace,
        "model": e.model,
        "partition": e.partition,
        "prompt_text": e.prompt_text,
        "response": e.response,
        "created_ms": e.created_ms,
        "expires_ms": e.expires_ms,
        "hits": e.hits,
        "last_hit_ms": e.last_hit_ms,
        "size_bytes": e.size_bytes,
    })
}

/// `GET /admin/cache/entries`.
pub fn list(
    gw: &Gateway,
    filter: &EntryFilter,
    after: Option<u64>,
    limit: usize,
) -> Result<ListPage, GatewayError> {
    let c = cache(gw)?;
    c.handle
        .store
        .list(filter, after, limit.clamp(1, 1000), c.handle.now_ms())
        .map_err(cache_error)
}

/// `GET /admin/cache/entries/{id}`.
pub fn get(gw: &Gateway, id: u64) -> Result<Value, GatewayError> {
    let c = cache(gw)?;
    match c.handle.get(id).map_err(cache_error)? {
        Some(e) => Ok(entry_view(&e)),
        None => Err(GatewayError::EntryNotFound(id)),
    }
}

/// `DELETE /admin/cache/entries/{id}`.
pub async fn delete(gw: &Gateway, id: u64) -> Result<(), GatewayError> {
    let c = cache(gw)?;
    match c.handle.delete(id).await {
        Ok(()) => Ok(()),
        Err(crate::cache::CacheError::NotFound(_)) => Err(GatewayError::EntryNotFound(id)),
        Err(e) => Err(cache_error(e)),
    }
}

/// `DELETE /admin/cache` (all, or those matching the filter).
pub async fn delete_where(gw: &Gateway, filter: EntryFilter) -> Result<u64, GatewayError> {
    cache(gw)?
        .handle
        .delete_where(filter)
        .await
        .map_err(cache_error)
}

/// Every live entry as JSON lines, produced on a blocking thread.
pub fn export(gw: &Gateway) -> Result<tokio::sync::mpsc::Receiver<bytes::Bytes>, GatewayError> {
    let c = cache(gw)?.clone();
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    std::thread::spawn(move || {
        let now = c.handle.now_ms();
        for e in c.handle.store.export(now) {
            let line = match e {
                Ok(e) => format!("{}\n", entry_view(&e)),
                Err(err) => format!("{}\n", json!({"error": err.to_string()})),
            };
            if tx.blocking_send(bytes::Bytes::from(line)).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

/// A request-shaped query: `prompt` or `messages`, `model`, optional params.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub messages: Option<Vec<Value>>,
    pub model: String,
    #[serde(default)]
    pub namespace: Option<String>,
    /// Sampling parameters the request would carry (they select the partition).
    #[serde(default)]
    pub params: Option<Map<String, Value>>,
}

impl Query {
    /// The chat request body this query stands for.
    fn body(&self) -> Result<Vec<u8>, GatewayError> {
        let mut body = self.params.clone().unwrap_or_default();
        body.insert("model".into(), json!(self.model));
        let messages = match (&self.prompt, &self.messages) {
            (Some(p), None) => vec![json!({"role": "user", "content": p})],
            (None, Some(m)) => m.clone(),
            _ => {
                return Err(GatewayError::invalid(
                    "Give exactly one of 'prompt' or 'messages'.",
                    Some("prompt"),
                ))
            }
        };
        body.insert("messages".into(), Value::Array(messages));
        Ok(serde_json::to_vec(&body).unwrap_or_default())
    }

    fn key(
        &self,
        gw: &Gateway,
    ) -> Result<(crate::cache::key::CacheKey, crate::providers::Route), GatewayError> {
        let req = parse_request(Endpoint::ChatCompletions, &self.body()?)?;
        let route = gw.router().resolve(&req.model)?;
        let controls = CacheControls {
            namespace: self.namespace.clone().unwrap_or_default(),
            ..Default::default()
        };
        let key = request_key(&route, &controls, &req).ok_or_else(|| {
            GatewayError::invalid("The prompt has no text to cache.", Some("prompt"))
        })?;
        Ok((key, route))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    #[serde(flatten)]
    pub query: Query,
    #[serde(default = "default_k")]
    pub k: usize,
    #[serde(default)]
    pub threshold: Option<f32>,
}

fn default_k() -> usize {
    5
}

/// `POST /admin/cache/search`: nearest entries with similarity, verdict and whether each
/// would be served.
pub async fn search(gw: &Gateway, req: SearchRequest) -> Result<Value, GatewayError> {
    let c = cache(gw)?;
    let (key, _) = req.query.key(gw)?;
    let threshold = match req.threshold {
        None => c.config.similarity_threshold,
        Some(t) if (0.0..=1.0).contains(&t) => t,
        Some(t) => {
            return Err(GatewayError::invalid(
                format!("threshold must be a number between 0 and 1, got {t}."),
                Some("threshold"),
            ))
        }
    };
    let exact = c
        .handle
        .get_exact(&ExactKey(key.exact))
        .map_err(cache_error)?;
    let judged = c
        .candidates(&key, threshold, req.k.clamp(1, 100), false)
        .await?
        .judged;
    let mut served_one = exact.is_some();
    let candidates: Vec<Value> = judged
        .iter()
        .map(|j: &Judged| {
            let would_serve = j.accepted && !served_one;
            served_one |= would_serve;
            json!({
                "id": j.entry.id.to_string(),
                "similarity": j.similarity,
                "prompt_text": j.entry.prompt_text,
                "model": j.entry.model,
                "namespace": j.entry.namespace,
                "above_threshold": j.above_threshold,
                "verdict": if j.accepted { "accepted" } else { "refused" },
                "reason": j.reason,
                "detail": j.detail,
                "would_serve": would_serve,
            })
        })
        .collect();
    Ok(json!({
        "query_text": key.text,
        "partition": key.partition,
        "threshold": threshold,
        "exact_match": exact.map(|e| e.id.to_string()),
        "candidates": candidates,
    }))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsertItem {
    #[serde(flatten)]
    pub query: Query,
    /// The answer: assistant text, or a whole `chat.completion` body.
    pub response: Value,
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsertRequest {
    pub entries: Vec<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InsertResult {
    pub index: usize,
    pub status: &'static str,
    pub id: Option<String>,
    pub error: Option<String>,
}

/// A `chat.completion` body for a warm-up answer given as text.
fn completion_body(model: &str, text: &str, n: usize) -> Value {
    json!({
        "id": format!("chatcmpl-deja-warmup-{n}"),
        "object": "chat.completion",
        "created": crate::cache::now_ms() / 1000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null}, "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    })
}

/// `POST /admin/cache/entries`: insert prompt/response pairs in one acknowledged batch.
/// Each entry is reported in order: inserted, duplicate (already cached or repeated in
/// the batch) or failed with the reason; one bad entry never fails the others.
pub async fn insert(gw: &Gateway, req: InsertRequest) -> Result<Value, GatewayError> {
    let c = cache(gw)?;
    if req.entries.len() > c.embedder_queue_room() {
        return Err(GatewayError::invalid(
            format!("At most {} entries per batch.", c.embedder_queue_room()),
            Some("entries"),
        ));
    }
    let mut results: Vec<InsertResult> = Vec::with_capacity(req.entries.len());
    let mut pending: Vec<(usize, NewEntry)> = Vec::new();
    let mut seen = HashSet::new();
    for (i, raw) in req.entries.into_iter().enumerate() {
        let r = (|| -> Result<Option<NewEntry>, GatewayError> {
            let item: InsertItem = serde_json::from_value(raw).map_err(|e| {
                GatewayError::invalid(format!("entries[{i}]: {e}"), Some("entries"))
            })?;
            let (key, route) = item.query.key(gw)?;
            let model = format!("{}/{}", route.provider, route.model);
            let response = match &item.response {
                Value::String(s) if !s.trim().is_empty() => completion_body(&route.model, s, i),
                Value::Object(o) if o.get("choices").is_some_and(Value::is_array) => {
                    item.response.clone()
                }
                _ => return Err(GatewayError::invalid(
                    "'response' must be non-empty text or a chat.completion object with choices.",
                    Some("response"),
                )),
            };
            if !seen.insert(key.exact)
                || c.handle
                    .get_exact(&ExactKey(key.exact))
                    .map_err(cache_error)?
                    .is_some()
            {
                return Ok(None);
            }
            Ok(Some(NewEntry {
                partition: key.partition,
                namespace: item.query.namespace.unwrap_or_default(),
                model,
                prompt_text: key.text,
                exact_key: ExactKey(key.exact),
                vector: Vec::new(),
                response,
                ttl_secs: item.ttl_secs,
            }))
        })();
        match r {
            Ok(Some(e)) => {
                results.push(InsertResult {
                    index: i,
                    status: "inserted",
                    id: None,
                    error: None,
                });
                pending.push((i, e));
            }
            Ok(None) => results.push(InsertResult {
                index: i,
                status: "duplicate",
                id: None,
                error: None,
            }),
            Err(e) => results.push(InsertResult {
                index: i,
                status: "failed",
                id: None,
                error: Some(e.to_string()),
            }),
        }
    }
    if !pending.is_empty() {
        let texts = pending
            .iter()
            .map(|(_, e)| c.embedding_text(&e.prompt_text))
            .collect();
        let vectors = c.embedder.embed_many(texts).await.map_err(embed_error)?;
        let mut batch = Vec::with_capacity(pending.len());
        let mut order = Vec::with_capacity(pending.len());
        for ((i, mut e), v) in pending.into_iter().zip(vectors) {
            e.vector = v;
            order.push(i);
            batch.push(e);
        }
        let ids = c.handle.insert(batch).await.map_err(cache_error)?;
        for (i, id) in order.into_iter().zip(ids) {
            results[i].id = Some(id.to_string());
        }
        c.counters.stored.fetch_add(
            results.iter().filter(|r| r.id.is_some()).count() as u64,
            Ordering::Relaxed,
        );
    }
    let inserted = results.iter().filter(|r| r.status == "inserted").count();
    let skipped = results.iter().filter(|r| r.status == "duplicate").count();
    let failed = results.iter().filter(|r| r.status == "failed").count();
    let ids: Vec<&String> = results.iter().filter_map(|r| r.id.as_ref()).collect();
    Ok(
        json!({"inserted": inserted, "skipped": skipped, "failed": failed, "ids": ids, "results": results}),
    )
}

impl SemanticCache {
    /// How many texts one insert batch may embed at once.
    fn embedder_queue_room(&self) -> usize {
        self.embedder_queue_limit
    }
}

/// One per-key counter of every provider pool, in Prometheus text format.
/// One sample per configured key of every provider.
fn per_key(
    pools: &[crate::providers::PoolStats],
    pick: impl Fn(&crate::providers::KeyStats) -> u64,
) -> Vec<(Labels, u64)> {
    pools
        .iter()
        .flat_map(|p| {
            p.keys.iter().enumerate().map(move |(i, k)| {
                (
                    vec![("provider", p.provider.to_string()), ("key", i.to_string())],
                    k,
                )
            })
        })
        .map(|(labels, k)| (labels, pick(k)))
        .collect()
}

/// One sample per label value.
fn by<'a>(
    label: &'static str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) -> Vec<(Labels, u64)> {
    values
        .into_iter()
        .map(|(v, n)| (vec![(label, v.to_owned())], n))
        .collect()
}

/// `GET /metrics`: Prometheus (OpenMetrics) text, low-cardinality labels only.
pub fn metrics(gw: &Gateway) -> String {
    let mut m = Scrape::default();
    let mut pools: Vec<_> = gw.providers().map(|p| p.pool.stats()).collect();
    pools.sort_by(|a, b| a.provider.cmp(&b.provider));
    m.counter(
        "deja_provider_key_requests",
        "Requests sent with each configured key (by position in the provider's key list).",
        per_key(&pools, |k| k.requests),
    );
    m.counter(
        "deja_provider_key_failures",
        "Requests that failed against each key (auth, rate limit, 5xx, unreachable).",
        per_key(&pools, |k| k.failures),
    );
    if let Some(c) = &gw.cache {
        let n = &c.counters;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        m.counter(
            "deja_cache_lookups",
            "Requests by cache outcome.",
            by(
                "result",
                [
                    ("hit_exact", load(&n.hits_exact)),
                    ("hit_semantic", load(&n.hits_semantic)),
                    ("miss", load(&n.misses)),
                    ("bypass", load(&n.bypass)),
                ],
            ),
        );
        let mut refusals: Vec<(String, u64)> = n
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(r, v)| (r.clone(), *v))
            .collect();
        refusals.sort();
        m.counter(
            "deja_cache_refusals",
            "Candidates above the threshold refused by the verifier, by reason.",
            by("reason", refusals.iter().map(|(r, v)| (r.as_str(), *v))),
        );
        m.counter(
            "deja_cache_bypass",
            "Requests that allowed the cache but went upstream without it, by reason.",
            by(
                "reason",
                super::cached::BypassReason::ALL
                    .iter()
                    .zip(&n.bypass_reasons)
                    .map(|(r, v)| (r.as_str(), load(v))),
            ),
        );
        m.counter(
            "deja_cache_coalesced",
            "Requests answered by an identical in-flight request's upstream call.",
            single(load(&n.coalesced)),
        );
        m.counter(
            "deja_cache_stored",
            "Responses stored in the cache.",
            single(load(&n.stored)),
        );
        let st = c.handle.store.stats();
        m.gauge(
            "deja_cache_entries",
            "Live cache entries.",
            single(st.entries),
        );
        m.gauge(
            "deja_cache_bytes",
            "Accounted bytes of live cache entries.",
            single(st.bytes),
        );
        m.gauge(
            "deja_cache_partitions",
            "Cache partitions (route x namespace x parameters).",
            single(st.partitions),
        );
        m.counter(
            "deja_cache_evictions",
            "Entries evicted over a limit.",
            single(st.evictions),
        );
        let e = c.embedder.stats();
        m.counter(
            "deja_embedder_batches",
            "Batches sent to the embedder workers.",
            single(e.batches),
        );
        m.counter(
            "deja_embedder_texts",
            "Texts in those batches.",
            single(e.texts),
        );
        m.gauge(
            "deja_embedder_pending",
            "Texts waiting for or inside the embedder.",
            single(c.embedder.pending() as u64),
        );
    }
    m.encode()
}
