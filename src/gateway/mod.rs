//! The domain functions behind the HTTP handlers: validate an OpenAI-format request,
//! route its model, call the provider through its pool, and shape the reply.

pub mod admin;
pub mod cached;
mod error;
pub mod local_embed;
pub mod messages;
mod stream;
pub mod verify;

pub use cached::{CacheControls, CacheMeta, CacheStatus, SemanticCache};
pub use error::GatewayError;
pub use stream::sse_error_event;

use crate::config::Config;
use crate::providers::{
    self, Adapter, Endpoint, ModelRegistry, NativeRequest, OutcomeClass, PoolState, ProviderKind,
    ProviderPool, ProviderReply, ProviderRequest, Route, Router,
};
use actix::prelude::*;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running provider: its kind, adapter, pool state and pool actor.
#[derive(Clone)]
pub struct ProviderHandle {
    pub id: Arc<str>,
    pub kind: ProviderKind,
    pub adapter: Adapter,
    /// Read by the request path directly (no message round trip per request).
    pub pool: Arc<PoolState>,
    pub actor: Addr<ProviderPool>,
}

/// Everything a request needs, shared by all workers.
pub struct Gateway {
    pub config: Arc<Config>,
    router: Router,
    providers: HashMap<String, ProviderHandle>,
    /// `None` when `cache.enabled = false`.
    pub cache: Option<Arc<SemanticCache>>,
    /// deja's own embedding model on `/v1/embeddings`; `None` when not offered.
    pub local_embeddings: Option<local_embed::LocalEmbeddings>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Pool(#[from] crate::providers::PoolError),
    #[error("cannot open the cache at {path}: {source}")]
    Cache {
        path: std::path::PathBuf,
        source: crate::cache::CacheError,
    },
    #[error("cannot start the embedder (set cache.enabled = false to run without the semantic cache): {0}")]
    Embedder(#[from] crate::embed::EmbedError),
}

impl Gateway {
    /// Start one pool actor per configured provider. Call inside a running actix System.
    pub fn start(config: Config) -> Result<Arc<Self>, StartError> {
        let registry = ModelRegistry::default();
        let mut providers = HashMap::new();
        for (id, pc) in &config.providers {
            registry.add_listed(id, pc.models.clone());
            let state = Arc::new(PoolState::new(id, pc)?);
            let adapter = Adapter::new(id, pc)?;
            let pool = ProviderPool::new(
                state.clone(),
                adapter.clone(),
                pc.discover_models,
                registry.clone(),
            );
            // Each pool actor gets its own arbiter thread so model discovery never shares a
            // thread with request handling.
            let arbiter = Arbiter::new();
            let addr = ProviderPool::start_in_arbiter(&arbiter.handle(), move |_| pool);
            providers.insert(
                id.clone(),
                ProviderHandle {
                    id: id.as_str().into(),
                    kind: pc.kind,
                    adapter,
                    pool: state,
                    actor: addr,
                },
            );
        }
        let router = Router::new(
            config.providers.keys().cloned().collect(),
            config.routing.aliases.clone(),
            &config.routing.default_provider,
            registry,
        );
        let cache = if config.cache.enabled {
            let embedder = crate::embed::EmbedderHandle::start(config.embedder.clone())?;
            let path = config.server.data_dir.join("cache");
            let store =
                crate::cache::CacheStore::open(&path, config.cache.clone()).map_err(|source| {
                    StartError::Cache {
                        path: path.clone(),
                        source,
                    }
                })?;
            let handle = crate::cache::CacheHandle::start(Arc::new(store)).map_err(|source| {
                StartError::Cache {
                    path: path.clone(),
                    source,
                }
            })?;
            Some(Arc::new(SemanticCache::new(
                handle,
                embedder,
                config.cache.clone(),
                verify::Judge::new(&config.verifier),
                config.embedder.queue_limit,
            )))
        } else {
            None
        };
        let local_embeddings = local_embed::LocalEmbeddings::new(
            &config.embedder,
            cache.as_ref().map(|c| c.embedder.clone()),
        );
        Ok(Arc::new(Gateway {
            config: Arc::new(config),
            router,
            providers,
            cache,
            local_embeddings,
        }))
    }

    /// After the HTTP server stopped: make the cache durable (hit counts, sled, graph
    /// dump) through its writer, and wait for it: the process exits right after.
    pub async fn shutdown(&self) {
        let Some(c) = &self.cache else { return };
        match c.handle.writer.send(crate::cache::Persist).await {
            Ok(Ok(dumped)) => tracing::info!(partitions_dumped = dumped, "cache persisted"),
            Ok(Err(e)) => tracing::error!(error = %e, "persisting the cache failed"),
            Err(_) => match c.handle.store.flush() {
                // The writer is gone (it only stops with the System): sled at least.
                Ok(()) => tracing::warn!("cache writer gone at shutdown; sled flushed"),
                Err(e) => tracing::error!(error = %e, "flushing the cache failed"),
            },
        }
    }

    /// Ready when every pool actor is running and has ended its model discovery (bare
    /// model names route by the listed models; before that they would go to the
    /// default provider).
    pub fn is_ready(&self) -> bool {
        self.providers
            .values()
            .all(|p| p.actor.connected() && p.pool.discovery_done())
    }

    pub fn providers(&self) -> impl Iterator<Item = &ProviderHandle> {
        self.providers.values()
    }

    pub fn router(&self) -> &Router {
        &self.router
    }
}

/// A reply ready for the HTTP edge.
pub struct Reply {
    pub status: u16,
    pub body: ReplyBody,
    pub provider: Arc<str>,
    /// The provider's model name that served the request.
    pub model: String,
    /// Time spent waiting on the provider (to the full body, or to the stream's headers).
    pub upstream: Duration,
    /// How the cache took part.
    pub cache: CacheMeta,
}

pub enum ReplyBody {
    Json(Bytes),
    /// SSE bytes; an upstream failure mid-stream arrives as an in-band error event.
    Stream(BoxStream<'static, Result<Bytes, std::convert::Infallible>>),
}

/// A parsed, validated OpenAI-format request.
pub struct ParsedRequest {
    pub endpoint: Endpoint,
    pub model: String,
    pub stream: bool,
    pub body: Map<String, Value>,
    /// The client's original, when it spoke a provider's format (the Anthropic API).
    pub native: Option<NativeRequest>,
}

/// Parse and validate a request body for `endpoint`; errors say what is wrong and where.
pub fn parse_request(endpoint: Endpoint, body: &[u8]) -> Result<ParsedRequest, GatewayError> {
    if body.is_empty() {
        return Err(GatewayError::invalid(
            "Request body is empty; expected a JSON object.",
            None,
        ));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| GatewayError::invalid(format!("Request body is not valid JSON: {e}"), None))?;
    let Value::Object(body) = value else {
        return Err(GatewayError::invalid(
            "Request body must be a JSON object.",
            None,
        ));
    };
    validate_request(endpoint, body)
}

/// Validate an OpenAI-format request object for `endpoint` (what [`parse_request`] does
/// after parsing; the inbound Anthropic API builds the object directly).
pub fn validate_request(
    endpoint: Endpoint,
    body: Map<String, Value>,
) -> Result<ParsedRequest, GatewayError> {
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(Value::String(_)) | None => {
            return Err(GatewayError::invalid(
                "Missing required parameter: 'model'.",
                Some("model"),
            ))
        }
        Some(_) => {
            return Err(GatewayError::invalid(
                "'model' must be a string.",
                Some("model"),
            ))
        }
    };
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(GatewayError::invalid(
                "'stream' must be a boolean.",
                Some("stream"),
            ))
        }
    };
    match endpoint {
        Endpoint::ChatCompletions => validate_messages(&body)?,
        Endpoint::Completions => {
            if !body.contains_key("prompt") {
                return Err(GatewayError::invalid(
                    "Missing required parameter: 'prompt'.",
                    Some("prompt"),
                ));
            }
        }
        Endpoint::Embeddings => {
            if stream {
                return Err(GatewayError::invalid(
                    "Embeddings cannot be streamed.",
                    Some("stream"),
                ));
            }
            match body.get("input") {
                Some(Value::String(_)) | Some(Value::Array(_)) => {}
                Some(_) => {
                    return Err(GatewayError::invalid(
                        "'input' must be a string or an array.",
                        Some("input"),
                    ))
                }
                None => {
                    return Err(GatewayError::invalid(
                        "Missing required parameter: 'input'.",
                        Some("input"),
                    ))
                }
            }
        }
    }
    Ok(ParsedRequest {
        endpoint,
        model,
        stream,
        body,
        native: None,
    })
}

fn validate_messages(body: &Map<String, Value>) -> Result<(), GatewayError> {
    let msgs = match body.get("messages") {
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(GatewayError::invalid(
                "'messages' must be an array.",
                Some("messages"),
            ))
        }
        None => {
            return Err(GatewayError::invalid(
                "Missing required parameter: 'messages'.",
                Some("messages"),
            ))
        }
    };
    if msgs.is_empty() {
        return Err(GatewayError::invalid(
            "'messages' must contain at least one message.",
            Some("messages"),
        ));
    }
    for (i, m) in msgs.iter().enumerate() {
        let Some(obj) = m.as_object() else {
            return Err(GatewayError::invalid_at(
                format!("messages[{i}] must be an object."),
                format!("messages[{i}]"),
            ));
        };
        match obj.get("role") {
            Some(Value::String(r)) if !r.is_empty() => {}
            _ => {
                return Err(GatewayError::invalid_at(
                    format!("Missing required parameter: 'messages[{i}].role'."),
                    format!("messages[{i}].role"),
                ))
            }
        }
    }
    Ok(())
}

/// Serve an OpenAI-format request: from the cache when it can, else from the provider
/// its model routes to.
pub async fn forward(
    gw: &Gateway,
    endpoint: Endpoint,
    body: &[u8],
    controls: &CacheControls,
) -> Result<Reply, GatewayError> {
    forward_parsed(gw, parse_request(endpoint, body)?, controls).await
}

/// [`forward`] for a request already parsed and validated.
pub async fn forward_parsed(
    gw: &Gateway,
    req: ParsedRequest,
    controls: &CacheControls,
) -> Result<Reply, GatewayError> {
    let endpoint = req.endpoint;
    if let Some(local) = gw
        .local_embeddings
        .as_ref()
        .filter(|l| endpoint == Endpoint::Embeddings && l.serves(&req.model))
    {
        return local.embed(&req).await;
    }
    let route = gw.router.resolve(&req.model)?;
    match &gw.cache {
        Some(cache) => cached::serve(cache, gw, &route, req, controls).await,
        None => call_provider(gw, &route, req).await,
    }
}

/// Call the provider of `route` with `req` (its model rewritten to the provider's name).
pub async fn call_provider(
    gw: &Gateway,
    route: &Route,
    req: ParsedRequest,
) -> Result<Reply, GatewayError> {
    let handle = gw.providers.get(&route.provider).ok_or_else(|| {
        GatewayError::ModelNotFound(crate::providers::RouteError::unknown(&req.model))
    })?;
    let preq = ProviderRequest::new(req.endpoint, req.body, req.stream, &route.model)
        .with_native(req.native);
    let lease = handle.pool.checkout(&mut rand::rng());
    let key_index = lease.key_index;
    let started = Instant::now();
    let result = providers::send(&handle.adapter, &handle.id, &lease, &preq).await;
    let upstream = started.elapsed();
    match result {
        Ok(ProviderReply::Complete { status, body }) => {
            handle
                .pool
                .report(key_index, OutcomeClass::Success, upstream);
            Ok(Reply {
                status,
                body: ReplyBody::Json(body),
                provider: handle.id.clone(),
                model: route.model.clone(),
                upstream,
                cache: CacheMeta::default(),
            })
        }
        Ok(ProviderReply::Stream { stream }) => Ok(Reply {
            status: 200,
            body: ReplyBody::Stream(stream::reporting(
                stream,
                handle.pool.clone(),
                key_index,
                started,
            )),
            provider: handle.id.clone(),
            model: route.model.clone(),
            upstream,
            cache: CacheMeta::default(),
        }),
        Err(e) => {
            handle
                .pool
                .report(key_index, OutcomeClass::of(&e), upstream);
            Err(e.into())
        }
    }
}

/// `GET /v1/models`: aliases, configured and discovered models, as `provider/model`.
pub fn list_models(gw: &Gateway) -> Value {
    let mut data: Vec<Value> = Vec::new();
    for (alias, target) in gw.router.aliases() {
        data.push(json!({"id": alias, "object": "model", "created": 0, "owned_by": "deja", "deja_target": target}));
    }
    if let Some(local) = &gw.local_embeddings {
        data.push(
            json!({"id": local.model_id(), "object": "model", "created": 0, "owned_by": "deja"}),
        );
    }
    for (p, m) in gw.router.registry().all() {
        data.push(
            json!({"id": format!("{p}/{m}"), "object": "model", "created": 0, "owned_by": p}),
        );
    }
    json!({"object": "list", "data": data})
}
