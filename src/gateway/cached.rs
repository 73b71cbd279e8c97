//! The semantic cache in front of the providers: exact layer, embedding + nearest entries
//! in the request's partition, verification, coalescing of identical misses, and storing
//! complete successful responses (streamed ones assembled from their chunks).

use super::{call_provider, GatewayError, ParsedRequest, Reply, ReplyBody};
use crate::cache::key::{cache_key, CacheKey};
use crate::cache::replay::{is_cacheable, to_sse, SseAssembler};
use crate::cache::verify::Prepared;
use crate::cache::{CacheConfig, CacheHandle, Cached, Candidate, ExactKey, NewEntry};
use crate::embed::{EmbedError, EmbedderHandle};
use crate::providers::{Endpoint, Route};
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use serde_json::Value;
use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::watch;

/// How a request was answered, for the `x-deja-cache*` headers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheMeta {
    pub status: CacheStatus,
    pub similarity: Option<f32>,
    pub entry: Option<u64>,
    /// Why the best candidate above the threshold was refused.
    pub refused: Option<String>,
    /// Answered by another in-flight identical request's upstream call.
    pub coalesced: bool,
    /// Time this request waited for deja's embedder (a cache lookup that embedded,
    /// or local embeddings): the `x-deja-embed-us` header.
    pub embed: Option<Duration>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CacheStatus {
    HitExact,
    HitSemantic,
    Miss,
    #[default]
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::HitExact => "hit-exact",
            CacheStatus::HitSemantic => "hit-semantic",
            CacheStatus::Miss => "miss",
            CacheStatus::Bypass => "bypass",
        }
    }
}

/// Per-request cache controls (headers `x-deja-cache*`, `Cache-Control`).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheControls {
    pub read: bool,
    pub write: bool,
    pub threshold: Option<f32>,
    pub ttl_secs: Option<u64>,
    pub namespace: String,
}

impl Default for CacheControls {
    fn default() -> Self {
        CacheControls {
            read: true,
            write: true,
            threshold: None,
            ttl_secs: None,
            namespace: String::new(),
        }
    }
}

impl CacheControls {
    /// Parse from a header lookup. `x-deja-cache: on | off | read-only | write-only`;
    /// `Cache-Control: no-cache` skips reading, `no-store` skips writing.
    pub fn parse<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Result<Self, GatewayError> {
        let mut c = CacheControls::default();
        if let Some(v) = header("x-deja-cache") {
            (c.read, c.write) = match v.trim().to_ascii_lowercase().as_str() {
                "on" | "" => (true, true),
                "off" => (false, false),
                "read-only" => (true, false),
                "write-only" => (false, true),
                other => {
                    return Err(GatewayError::invalid(
                        format!(
                            "x-deja-cache must be on, off, read-only or write-only, got `{other}`."
                        ),
                        Some("x-deja-cache"),
                    ))
                }
            };
        }
        if let Some(cc) = header("cache-control") {
            for d in cc.split(',').map(|d| d.trim().to_ascii_lowercase()) {
                match d.as_str() {
                    "no-cache" => c.read = false,
                    "no-store" => c.write = false,
                    _ => {}
                }
            }
        }
        if let Some(t) = header("x-deja-cache-threshold") {
            let v: f32 =
                t.trim()
                    .parse()
                    .ok()
                    .filter(|v: &f32| (0.0..=1.0).contains(v))
                    .ok_or_else(|| {
                        GatewayError::invalid(
                    format!("x-deja-cache-threshold must be a number between 0 and 1, got `{t}`."),
                    Some("x-deja-cache-threshold"),
                )
                    })?;
            c.threshold = Some(v);
        }
        if let Some(t) = header("x-deja-cache-ttl") {
            let v: u64 = t.trim().parse().ok().filter(|v| *v > 0).ok_or_else(|| {
                GatewayError::invalid(
                    format!("x-deja-cache-ttl must be a positive number of seconds, got `{t}`."),
                    Some("x-deja-cache-ttl"),
                )
            })?;
            c.ttl_secs = Some(v);
        }
        if let Some(ns) = header("x-deja-cache-namespace") {
            let ns = ns.trim();
            if ns.len() > 128 || ns.chars().any(|ch| ch.is_control()) {
                return Err(GatewayError::invalid(
                    "x-deja-cache-namespace must be at most 128 printable characters.",
                    Some("x-deja-cache-namespace"),
                ));
            }
            c.namespace = ns.to_owned();
        }
        Ok(c)
    }
}

/// Counters for `/admin/cache/stats` and `/metrics`.
#[derive(Default)]
pub struct CacheCounters {
    pub hits_exact: AtomicU64,
    pub hits_semantic: AtomicU64,
    pub misses: AtomicU64,
    pub bypass: AtomicU64,
    pub coalesced: AtomicU64,
    pub stored: AtomicU64,
    pub refusals: Mutex<HashMap<String, u64>>,
}

impl CacheCounters {
    fn count(&self, m: &CacheMeta) {
        let c = match m.status {
            CacheStatus::HitExact => &self.hits_exact,
            CacheStatus::HitSemantic => &self.hits_semantic,
            CacheStatus::Miss => &self.misses,
            CacheStatus::Bypass => &self.bypass,
        };
        c.fetch_add(1, Ordering::Relaxed);
        if m.coalesced {
            self.coalesced.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(r) = &m.refused {
            *self
                .refusals
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(r.clone())
                .or_insert(0) += 1;
        }
    }
}

/// A verdict on one candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub entry: Cached,
    pub similarity: f32,
    pub above_threshold: bool,
    pub accepted: bool,
    pub reason: Option<String>,
    pub detail: String,
}

/// The outcome of [`SemanticCache::candidates`].
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The request's embedding.
    pub vector: Vec<f32>,
    /// The candidates judged, best first.
    pub judged: Vec<Judged>,
    /// The highest similarity the index returned (judged or not).
    pub nearest: Option<f32>,
    /// Time spent waiting for the embedding.
    pub embed: Duration,
}

type Flight = watch::Receiver<Option<Option<Arc<Value>>>>;

/// The semantic cache as the gateway uses it.
pub struct SemanticCache {
    pub handle: CacheHandle,
    pub embedder: EmbedderHandle,
    pub config: CacheConfig,
    pub counters: CacheCounters,
    verifier: super::verify::Judge,
    inflight: Mutex<HashMap<[u8; 32], Flight>>,
    pub(crate) embedder_queue_limit: usize,
}

impl SemanticCache {
    pub fn new(
        handle: CacheHandle,
        embedder: EmbedderHandle,
        config: CacheConfig,
        verifier: super::verify::Judge,
        embedder_queue_limit: usize,
    ) -> Self {
        SemanticCache {
            embedder_queue_limit,
            handle,
            embedder,
            config,
            counters: CacheCounters::default(),
            verifier,
            inflight: Mutex::new(HashMap::new()),
        }
    }

    /// What the embedder is given for a question: with `cache.respell`, its text with
    /// misspellings corrected, the same for entries stored and for lookups.
    pub fn embedding_text(&self, text: &str) -> String {
        if self.config.respell {
            self.verifier.embedding_text(text)
        } else {
            text.to_owned()
        }
    }

    /// Nearest entries for `key` (embedding `key.text`), judged: above the threshold
    /// and accepted by the verifier. With `serving` judging stops at the first accepted
    /// entry, which is the one served, entries below the threshold are not read, and the
    /// index is searched narrow first (`hnsw.ef_search_fast`), then at `hnsw.ef_search`
    /// only when the narrow pass found nothing to serve; the admin search (`!serving`)
    /// judges all `k` of one full-width search.
    pub async fn candidates(
        &self,
        key: &CacheKey,
        threshold: f32,
        k: usize,
        serving: bool,
    ) -> Result<Lookup, GatewayError> {
        let started = std::time::Instant::now();
        let text = self.embedding_text(&key.text);
        // The embedding job is queued on the first poll; the request's side of the
        // verifier then runs on this thread while the embedder works.
        let ((vector, embed), request) = futures_util::future::join(
            async {
                let v = self.embedder.embed(text).await;
                (v, started.elapsed())
            },
            async { self.verifier.prepare(&key.text) },
        )
        .await;
        let vector = vector.map_err(embed_error)?;
        let (fast, full) = (self.config.hnsw.ef_search_fast, self.config.hnsw.ef_search);
        let mut out = Lookup {
            judged: Vec::with_capacity(k),
            nearest: None,
            embed,
            vector: Vec::new(),
        };
        let passes: &[Option<usize>] = if serving && fast < full {
            &[Some(fast), None]
        } else {
            &[None]
        };
        for &ef in passes {
            let found = self
                .handle
                .search_ef(&vector, &key.partition, k, ef)
                .map_err(cache_error)?;
            if self.judge_found(&request, threshold, found, serving, &mut out)? {
                break;
            }
        }
        out.judged
            .sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        out.vector = vector;
        Ok(out)
    }

    /// Judge `found` (best first) into `out`, skipping entries already there; when
    /// `serving`, stop at the first accepted one or the first below the threshold
    /// (all after it are too). Returns whether one was accepted.
    fn judge_found(
        &self,
        request: &Prepared<'_>,
        threshold: f32,
        found: Vec<Candidate>,
        serving: bool,
        out: &mut Lookup,
    ) -> Result<bool, GatewayError> {
        for c in found {
            out.nearest = Some(out.nearest.map_or(c.similarity, |n| n.max(c.similarity)));
            let above = c.similarity >= threshold;
            if serving && !above {
                break;
            }
            if out.judged.iter().any(|j| j.entry.id == c.id) {
                continue;
            }
            let Some(entry) = self.handle.get_cached(c.id).map_err(cache_error)? else {
                continue;
            };
            let (accepted, reason, detail) = if above {
                self.verifier
                    .judge(request, &entry.prompt_text, c.similarity)
            } else {
                (
                    false,
                    None,
                    format!(
                        "similarity {:.3} below threshold {threshold:.3}",
                        c.similarity
                    ),
                )
            };
            out.judged.push(Judged {
                entry,
                similarity: c.similarity,
                above_threshold: above,
                accepted,
                reason,
                detail,
            });
            if accepted && serving {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Store a complete response under `key` (embedding it when `vector` is `None`).
    pub async fn store(
        &self,
        key: &CacheKey,
        model: &str,
        namespace: &str,
        vector: Option<Vec<f32>>,
        response: Value,
        ttl_secs: Option<u64>,
    ) -> Result<u64, GatewayError> {
        let vector = match vector {
            Some(v) => v,
            None => self
                .embedder
                .embed(self.embedding_text(&key.text))
                .await
                .map_err(embed_error)?,
        };
        let ids = self
            .handle
            .insert(vec![NewEntry {
                partition: key.partition.clone(),
                namespace: namespace.to_owned(),
                model: model.to_owned(),
                prompt_text: key.text.clone(),
                exact_key: ExactKey(key.exact),
                vector,
                response,
                ttl_secs,
            }])
            .await
            .map_err(cache_error)?;
        self.counters.stored.fetch_add(1, Ordering::Relaxed);
        Ok(ids.first().copied().unwrap_or_default())
    }
}

pub(crate) fn embed_error(e: EmbedError) -> GatewayError {
    match e {
        EmbedError::Overloaded => GatewayError::Overloaded {
            what: "embedder",
            retry_after_secs: 1,
        },
        other => GatewayError::Cache(other.to_string()),
    }
}

pub(crate) fn cache_error(e: crate::cache::CacheError) -> GatewayError {
    GatewayError::Cache(e.to_string())
}

fn endpoint_name(e: Endpoint) -> &'static str {
    match e {
        Endpoint::ChatCompletions => "chat",
        Endpoint::Completions => "completions",
        Endpoint::Embeddings => "embeddings",
    }
}

/// The cache key a request would use (admin search uses the same).
pub fn request_key(
    route: &Route,
    controls: &CacheControls,
    req: &ParsedRequest,
) -> Option<CacheKey> {
    let route_name = format!("{}/{}", route.provider, route.model);
    cache_key(
        &route_name,
        &controls.namespace,
        endpoint_name(req.endpoint),
        &req.body,
    )
}

/// A reply the cache answers with: an entry's stored bytes, or a coalesced leader's
/// parsed response.
enum HitBody<'a> {
    Stored(&'a Bytes),
    Parsed(&'a Value),
}

fn hit_reply(
    route: &Route,
    response: HitBody<'_>,
    stream: bool,
    include_usage: bool,
    meta: CacheMeta,
) -> Result<Reply, GatewayError> {
    let sse = |v: &Value| {
        let frames = to_sse(v, include_usage);
        ReplyBody::Stream(stream::iter(frames.into_iter().map(Ok)).boxed())
    };
    let body = match (response, stream) {
        // a non-streaming hit sends the stored bytes as they are
        (HitBody::Stored(b), false) => ReplyBody::Json(b.clone()),
        (HitBody::Stored(b), true) => sse(&serde_json::from_slice(b).map_err(|e| {
            GatewayError::Cache(format!("entry {:?}: stored response: {e}", meta.entry))
        })?),
        (HitBody::Parsed(v), false) => ReplyBody::Json(Bytes::from(v.to_string())),
        (HitBody::Parsed(v), true) => sse(v),
    };
    Ok(Reply {
        status: 200,
        body,
        provider: route.provider.as_str().into(),
        model: route.model.clone(),
        upstream: Duration::ZERO,
        cache: meta,
    })
}

fn include_usage(req: &ParsedRequest) -> bool {
    crate::providers::chat::wants_usage(&req.body)
}

/// Answer `req` from the cache when it can; otherwise call the provider and store the reply.
pub async fn serve(
    cache: &Arc<SemanticCache>,
    gw: &super::Gateway,
    route: &Route,
    req: ParsedRequest,
    controls: &CacheControls,
) -> Result<Reply, GatewayError> {
    let reply = serve_inner(cache, gw, route, req, controls).await?;
    cache.counters.count(&reply.cache);
    if let Some(id) = reply.cache.entry.filter(|_| {
        matches!(
            reply.cache.status,
            CacheStatus::HitExact | CacheStatus::HitSemantic
        )
    }) {
        cache.handle.record_hit(id);
    }
    Ok(reply)
}

async fn serve_inner(
    cache: &Arc<SemanticCache>,
    gw: &super::Gateway,
    route: &Route,
    req: ParsedRequest,
    controls: &CacheControls,
) -> Result<Reply, GatewayError> {
    let cacheable = matches!(
        req.endpoint,
        Endpoint::ChatCompletions | Endpoint::Completions
    );
    let key = if cacheable && (controls.read || controls.write) {
        request_key(route, controls, &req)
    } else {
        None
    };
    let Some(key) = key else {
        return call_provider(gw, route, req).await;
    };
    let (stream, usage) = (req.stream, include_usage(&req));
    let mut meta = CacheMeta {
        status: CacheStatus::Miss,
        ..Default::default()
    };
    let mut vector = None;
    if controls.read {
        if let Some(entry) = cache
            .handle
            .get_exact_cached(&ExactKey(key.exact))
            .map_err(cache_error)?
        {
            meta.status = CacheStatus::HitExact;
            meta.similarity = Some(1.0);
            meta.entry = Some(entry.id);
            let body = HitBody::Stored(&entry.response);
            return hit_reply(route, body, stream, usage, meta);
        }
        let threshold = controls
            .threshold
            .unwrap_or(cache.config.similarity_threshold);
        let lookup = cache
            .candidates(&key, threshold, cache.config.top_k, true)
            .await?;
        meta.embed = Some(lookup.embed);
        if let Some(best) = lookup.judged.iter().find(|j| j.accepted) {
            meta.status = CacheStatus::HitSemantic;
            meta.similarity = Some(best.similarity);
            meta.entry = Some(best.entry.id);
            let body = HitBody::Stored(&best.entry.response);
            return hit_reply(route, body, stream, usage, meta);
        }
        meta.similarity = lookup.nearest;
        meta.refused = lookup
            .judged
            .iter()
            .find(|j| j.above_threshold && !j.accepted)
            .and_then(|j| j.reason.clone());
        vector = Some(lookup.vector);
    }
    if !controls.write {
        let mut r = call_provider(gw, route, req).await?;
        r.cache = meta;
        return Ok(r);
    }

    // Coalesce identical misses: the first caller goes upstream, the others wait for it.
    let leader = {
        let mut map = cache.inflight.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&key.exact) {
            Some(rx) => Err(rx.clone()),
            None => {
                let (tx, rx) = watch::channel(None);
                map.insert(key.exact, rx);
                Ok(tx)
            }
        }
    };
    let tx = match leader {
        Ok(tx) => tx,
        Err(mut rx) => {
            let waited =
                tokio::time::timeout(Duration::from_secs(600), rx.wait_for(Option::is_some)).await;
            let result = match waited {
                Ok(Ok(v)) => v.clone().flatten(),
                _ => None,
            };
            if let Some(body) = result {
                meta.coalesced = true;
                return hit_reply(route, HitBody::Parsed(&body), stream, usage, meta);
            }
            // The leader's call failed or was not cacheable: go upstream ourselves.
            let mut r = call_provider(gw, route, req).await?;
            r.cache = meta;
            return Ok(r);
        }
    };
    let guard = FlightGuard {
        cache: cache.clone(),
        key: key.exact,
        tx: Some(tx),
    };
    let model = format!("{}/{}", route.provider, route.model);
    let mut reply = match call_provider(gw, route, req).await {
        Ok(r) => r,
        Err(e) => {
            drop(guard);
            return Err(e);
        }
    };
    reply.cache = meta;
    let allow_truncated = cache.config.store_truncated;
    let ns = controls.namespace.clone();
    let ttl = controls.ttl_secs;
    match reply.body {
        ReplyBody::Json(ref bytes) if reply.status == 200 => {
            let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
            let body = parsed
                .filter(|v| is_cacheable(v, allow_truncated))
                .map(Arc::new);
            guard.finish(body.clone());
            if let Some(body) = body {
                let cache = cache.clone();
                actix_rt::spawn(async move {
                    if let Err(e) = cache
                        .store(&key, &model, &ns, vector, (*body).clone(), ttl)
                        .await
                    {
                        tracing::warn!(error = %e, "storing a response in the cache failed");
                    }
                });
            }
        }
        ReplyBody::Stream(s) => {
            reply.body = ReplyBody::Stream(
                Teeing {
                    inner: s,
                    asm: Some(SseAssembler::new()),
                    on_done: Some(Box::new(move |body: Option<Value>| {
                        let body = body.filter(|v| is_cacheable(v, allow_truncated)).map(Arc::new);
                        let cache = guard.cache.clone();
                        guard.finish(body.clone());
                        if let Some(body) = body {
                            actix_rt::spawn(async move {
                                if let Err(e) = cache.store(&key, &model, &ns, vector, (*body).clone(), ttl).await {
                                    tracing::warn!(error = %e, "storing a streamed response in the cache failed");
                                }
                            });
                        }
                    })),
                }
                .boxed(),
            );
        }
        ReplyBody::Json(_) => guard.finish(None),
    }
    Ok(reply)
}

/// Removes the in-flight marker and wakes waiters; dropping it unfinished wakes them
/// with "no result" so they go upstream themselves.
struct FlightGuard {
    cache: Arc<SemanticCache>,
    key: [u8; 32],
    tx: Option<watch::Sender<Option<Option<Arc<Value>>>>>,
}

impl FlightGuard {
    fn finish(mut self, body: Option<Arc<Value>>) {
        self.release(body);
    }

    fn release(&mut self, body: Option<Arc<Value>>) {
        if let Some(tx) = self.tx.take() {
            self.cache
                .inflight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&self.key);
            let _ = tx.send(Some(body));
        }
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.release(None);
    }
}

type OnDone = Box<dyn FnOnce(Option<Value>) + Send>;

/// Passes a stream through while assembling it; at the end hands the assembled body on.
/// Dropped before the end (client gone): hands on nothing.
struct Teeing {
    inner: BoxStream<'static, Result<Bytes, Infallible>>,
    asm: Option<SseAssembler>,
    on_done: Option<OnDone>,
}

impl Stream for Teeing {
    type Item = Result<Bytes, Infallible>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(b))) => {
                if let Some(a) = self.asm.as_mut() {
                    a.feed(&b);
                }
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(None) => {
                let body = self.asm.take().and_then(SseAssembler::finish);
                if let Some(f) = self.on_done.take() {
                    f(body);
                }
                Poll::Ready(None)
            }
            other => other,
        }
    }
}

impl Drop for Teeing {
    fn drop(&mut self) {
        if let Some(f) = self.on_done.take() {
            f(None);
        }
    }
}
