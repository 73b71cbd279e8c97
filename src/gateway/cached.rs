//! The semantic cache in front of the providers: exact layer, embedding + nearest entries
//! in the request's partition, verification, coalescing of identical misses, and storing
//! complete successful responses (streamed ones assembled from their chunks).

use super::{call_provider, GatewayError, ParsedRequest, Reply, ReplyBody};
use crate::cache::key::{cache_key, CacheKey};
use crate::cache::replay::{is_cacheable, to_sse, SseAssembler};
use crate::cache::verify::Prepared;
use crate::cache::{CacheConfig, CacheHandle, Cached, Candidate, ExactKey, NewEntry, OnOverload};
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
    /// Why the cache was left out although the request allowed it
    /// (`x-deja-cache-bypass-reason`): see [`BypassReason`].
    pub bypass_reason: Option<BypassReason>,
}

/// Why a request that allowed the cache went upstream without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BypassReason {
    /// The embedder could not embed the lookup within `cache.max_embed_wait_ms`.
    EmbedderOverloaded,
    /// The request would open a partition beyond `cache.max_partitions`.
    PartitionLimit,
}

impl BypassReason {
    pub const ALL: [BypassReason; 2] = [
        BypassReason::EmbedderOverloaded,
        BypassReason::PartitionLimit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BypassReason::EmbedderOverloaded => "embedder-overloaded",
            BypassReason::PartitionLimit => "partition-limit",
        }
    }
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

/// The `x-deja-*` request headers deja reads. Any other `x-deja-*` request header is
/// refused (400), so a misspelt control is never silently ignored.
pub const REQUEST_HEADERS: &[&str] = &[
    "x-deja-cache",
    "x-deja-cache-threshold",
    "x-deja-cache-ttl",
    "x-deja-cache-namespace",
];

/// Longest namespace accepted, in characters (after percent-decoding).
pub const MAX_NAMESPACE_CHARS: usize = 128;

/// A header value as text when it is visible ASCII (spaces and tabs allowed inside).
fn visible_ascii<'a>(name: &str, raw: &'a [u8]) -> Result<&'a str, GatewayError> {
    if raw
        .iter()
        .all(|&b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
    {
        // Only ASCII bytes: always valid UTF-8.
        Ok(std::str::from_utf8(raw).unwrap_or_default().trim())
    } else {
        Err(GatewayError::invalid(
            format!(
                "{name} must be visible ASCII; percent-encode other characters \
                 (x-deja-cache-namespace accepts UTF-8 percent-encoding, e.g. tenant-%C3%A9)."
            ),
            Some(name),
        ))
    }
}

impl CacheControls {
    /// Parse from the request's headers (name in lower case, raw value), every
    /// occurrence in order. `x-deja-cache: on | off | read-only | write-only`;
    /// `Cache-Control: no-cache` skips reading, `no-store` skips writing.
    ///
    /// Every `x-deja-*` header must be one of [`REQUEST_HEADERS`], appear once and be
    /// visible ASCII; anything else is an error naming the header (never ignored).
    pub fn from_headers<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Self, GatewayError> {
        let mut deja: [Option<&'a str>; REQUEST_HEADERS.len()] = [None; REQUEST_HEADERS.len()];
        let mut cache_control: Vec<&'a [u8]> = Vec::new();
        for (name, raw) in headers {
            if name.eq_ignore_ascii_case("cache-control") {
                cache_control.push(raw);
                continue;
            }
            if !name
                .get(..7)
                .is_some_and(|p| p.eq_ignore_ascii_case("x-deja-"))
            {
                continue;
            }
            let lower = name.to_ascii_lowercase();
            let Some(i) = REQUEST_HEADERS.iter().position(|h| *h == lower) else {
                return Err(GatewayError::invalid(
                    format!(
                        "Unknown request header {}; deja reads {}.",
                        crate::telemetry::clip(&lower, 64),
                        REQUEST_HEADERS.join(", ")
                    ),
                    Some(&crate::telemetry::clip(&lower, 64)),
                ));
            };
            let header = REQUEST_HEADERS[i];
            if deja[i].is_some() {
                return Err(GatewayError::invalid(
                    format!("{header} was sent more than once; send it once."),
                    Some(header),
                ));
            }
            deja[i] = Some(visible_ascii(header, raw)?);
        }
        let [cache, threshold, ttl, namespace] = deja;
        let mut c = CacheControls::default();
        if let Some(v) = cache {
            (c.read, c.write) = match v.to_ascii_lowercase().as_str() {
                "on" | "" => (true, true),
                "off" => (false, false),
                "read-only" => (true, false),
                "write-only" => (false, true),
                _ => {
                    return Err(GatewayError::invalid(
                        format!(
                            "x-deja-cache must be on, off, read-only or write-only, got `{}`.",
                            crate::telemetry::clip(v, 64)
                        ),
                        Some("x-deja-cache"),
                    ))
                }
            };
        }
        // A standard header, which may repeat: every directive of every occurrence counts.
        for cc in cache_control {
            let cc = String::from_utf8_lossy(cc);
            for d in cc.split(',').map(|d| d.trim().to_ascii_lowercase()) {
                match d.as_str() {
                    "no-cache" => c.read = false,
                    "no-store" => c.write = false,
                    _ => {}
                }
            }
        }
        if let Some(t) = threshold {
            let v: f32 = t
                .parse()
                .ok()
                .filter(|v: &f32| (0.0..=1.0).contains(v))
                .ok_or_else(|| {
                    GatewayError::invalid(
                        format!(
                            "x-deja-cache-threshold must be a number between 0 and 1, got `{}`.",
                            crate::telemetry::clip(t, 64)
                        ),
                        Some("x-deja-cache-threshold"),
                    )
                })?;
            c.threshold = Some(v);
        }
        if let Some(t) = ttl {
            let v: u64 = t.parse().ok().filter(|v| *v > 0).ok_or_else(|| {
                GatewayError::invalid(
                    format!(
                        "x-deja-cache-ttl must be a positive number of seconds, got `{}`.",
                        crate::telemetry::clip(t, 64)
                    ),
                    Some("x-deja-cache-ttl"),
                )
            })?;
            c.ttl_secs = Some(v);
        }
        if let Some(ns) = namespace {
            c.namespace = parse_namespace(ns)?;
        }
        Ok(c)
    }
}

/// `x-deja-cache-namespace`: visible ASCII, where `%XX` escapes spell UTF-8 (so a
/// namespace may be any text: `tenant-%C3%A9` is `tenant-é`). A `%` not followed by
/// two hex digits, or escapes that are not UTF-8, are refused rather than guessed.
pub fn parse_namespace(raw: &str) -> Result<String, GatewayError> {
    let bad = |why: &str| {
        GatewayError::invalid(
            format!("x-deja-cache-namespace {why}."),
            Some("x-deja-cache-namespace"),
        )
    };
    let b = raw.as_bytes();
    for (i, _) in raw.match_indices('%') {
        let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
        if !(hex(i + 1) && hex(i + 2)) {
            return Err(bad(
                "has a `%` that is not followed by two hex digits (write a literal % as %25)",
            ));
        }
    }
    let ns = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| bad("percent-escapes must spell UTF-8 text"))?;
    if ns.chars().count() > MAX_NAMESPACE_CHARS || ns.chars().any(char::is_control) {
        return Err(bad(&format!(
            "must be at most {MAX_NAMESPACE_CHARS} printable characters"
        )));
    }
    Ok(ns.into_owned())
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
    /// Bypasses by [`BypassReason`] (index = position in [`BypassReason::ALL`]).
    pub bypass_reasons: [AtomicU64; BypassReason::ALL.len()],
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
        if let Some(r) = m.bypass_reason {
            let i = BypassReason::ALL.iter().position(|x| *x == r).unwrap_or(0);
            self.bypass_reasons[i].fetch_add(1, Ordering::Relaxed);
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

    /// The serving lookup, bounded by `cache.max_embed_wait_ms`: when the embedder's
    /// queue is full, or its expected wait is already longer, or the embedding does not
    /// come in time, `Overloaded` with a `Retry-After` from the embedder's real queue.
    /// A lookup given up is dropped from the embedder's queue, costing it nothing.
    pub async fn lookup_in_time(
        &self,
        key: &CacheKey,
        threshold: f32,
    ) -> Result<Lookup, GatewayError> {
        let limit = Duration::from_millis(self.config.max_embed_wait_ms);
        let overloaded = || GatewayError::Overloaded {
            what: "embedder",
            retry_after_secs: crate::embed::retry_after_secs(self.embedder.estimated_wait()),
        };
        if self.embedder.estimated_wait() > limit {
            return Err(overloaded());
        }
        match tokio::time::timeout(
            limit,
            self.candidates(key, threshold, self.config.top_k, true),
        )
        .await
        {
            Ok(Err(GatewayError::Overloaded { .. })) | Err(_) => Err(overloaded()),
            Ok(r) => r,
        }
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
    if !cache.handle.store.admits_partition(&key.partition) {
        return bypass(gw, route, req, BypassReason::PartitionLimit).await;
    }
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
        let lookup = match cache.lookup_in_time(&key, threshold).await {
            Ok(l) => l,
            Err(GatewayError::Overloaded { .. })
                if cache.config.on_overload == OnOverload::Bypass =>
            {
                return bypass(gw, route, req, BypassReason::EmbedderOverloaded).await;
            }
            Err(e) => return Err(e),
        };
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
                        store_failed(&e);
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
                        let body = body
                            .filter(|v| is_cacheable(v, allow_truncated))
                            .map(Arc::new);
                        let cache = guard.cache.clone();
                        guard.finish(body.clone());
                        if let Some(body) = body {
                            actix_rt::spawn(async move {
                                if let Err(e) = cache
                                    .store(&key, &model, &ns, vector, (*body).clone(), ttl)
                                    .await
                                {
                                    store_failed(&e);
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

/// A response that could not be stored: an overloaded embedder or a full partition
/// table are expected under load (counted elsewhere), not worth a warning per request.
fn store_failed(e: &GatewayError) {
    match e {
        GatewayError::Overloaded { .. } => {
            tracing::debug!(error = %e, "response not cached: embedder overloaded")
        }
        GatewayError::Cache(m) if m.contains("cache.max_partitions") => {
            tracing::debug!(error = %e, "response not cached: partition limit")
        }
        _ => tracing::warn!(error = %e, "storing a response in the cache failed"),
    }
}

/// Answer upstream without the cache, saying why.
async fn bypass(
    gw: &super::Gateway,
    route: &Route,
    req: ParsedRequest,
    reason: BypassReason,
) -> Result<Reply, GatewayError> {
    let mut r = call_provider(gw, route, req).await?;
    r.cache = CacheMeta {
        status: CacheStatus::Bypass,
        bypass_reason: Some(reason),
        ..Default::default()
    };
    Ok(r)
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
