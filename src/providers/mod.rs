//! Providers: a closed enum of kinds, a translation trait per wire format, and one pool
//! actor per configured provider holding its HTTP client and keys.
//!
//! Every adapter takes an OpenAI-format request and answers in OpenAI format (JSON or SSE
//! chunks); [`send`] is the shared driver that applies timeouts and maps transport errors.

pub mod anthropic;
mod azure;
pub mod bedrock;
pub mod chat;
pub mod cohere;
mod gemini;
mod health;
mod kind;
mod native_common;
mod openai;
mod pool;
mod router;
pub mod sse;
pub mod stream;

pub use anthropic::AnthropicAdapter;
pub use bedrock::BedrockAdapter;
pub use cohere::CohereAdapter;
mod vertex_auth;

pub use crate::config::ProviderKind;
pub use azure::AzureAdapter;
pub use gemini::GeminiAdapter;
pub use health::{Health, KeyHealth, OutcomeClass};
pub use kind::{wire_format, WireFormat};
pub use openai::OpenAiAdapter;
pub use pool::{KeyStats, Lease, PoolError, PoolState, PoolStats, ProviderPool};
pub use router::{ModelRegistry, Route, RouteError, Router};

use crate::config::ProviderConfig;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use serde_json::{Map, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The OpenAI-shaped endpoints deja forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
}

impl Endpoint {
    /// Path below the provider's base URL.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
        }
    }
}

/// An OpenAI-format request on its way to a provider. Built by [`ProviderRequest::new`],
/// the one place the route's model is set: `model` and `body.model` are the provider's
/// own model name, and adapters read `model` rather than the body.
#[derive(Debug, Clone)]
pub struct ProviderRequest {
    pub endpoint: Endpoint,
    pub body: Map<String, Value>,
    pub stream: bool,
    pub model: String,
    /// The request as the client wrote it, when that is a provider format: an adapter of
    /// that format sends it (model set) instead of translating `body` back.
    pub native: Option<NativeRequest>,
}

/// A request in a provider's own format, as the client sent it.
#[derive(Debug, Clone)]
pub enum NativeRequest {
    /// An Anthropic Messages request (the inbound `/v1/messages` API).
    Anthropic(Map<String, Value>),
}

impl ProviderRequest {
    /// `body` for the provider serving `model` (the route's model name).
    pub fn new(
        endpoint: Endpoint,
        mut body: Map<String, Value>,
        stream: bool,
        model: &str,
    ) -> Self {
        body.insert("model".into(), Value::String(model.to_owned()));
        ProviderRequest {
            endpoint,
            body,
            stream,
            model: model.to_owned(),
            native: None,
        }
    }

    /// The same request with the client's own-format original.
    pub fn with_native(mut self, native: Option<NativeRequest>) -> Self {
        self.native = native;
        self
    }
}

pub type ChunkStream = BoxStream<'static, Result<Bytes, ProviderError>>;

/// What a provider answered, already in OpenAI format.
pub enum ProviderReply {
    /// A complete JSON body (2xx).
    Complete { status: u16, body: Bytes },
    /// SSE bytes (`data: {...}\n\n` ... `data: [DONE]\n\n`), passed on as they arrive.
    Stream { stream: ChunkStream },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("provider `{provider}` is unreachable: {message}")]
    Unreachable { provider: Arc<str>, message: String },
    #[error("provider `{provider}` did not answer within {secs}s")]
    Timeout { provider: Arc<str>, secs: f64 },
    /// The provider's own error (4xx/5xx); `body` is already OpenAI-shaped JSON.
    #[error("provider `{provider}` answered HTTP {status}")]
    Upstream {
        provider: Arc<str>,
        status: u16,
        body: Bytes,
    },
    #[error("provider `{provider}` sent an invalid response: {message}")]
    InvalidResponse { provider: Arc<str>, message: String },
    #[error("provider `{provider}` stream ended before completion: {message}")]
    StreamInterrupted { provider: Arc<str>, message: String },
}

impl ProviderError {
    fn from_reqwest(provider: &Arc<str>, e: reqwest::Error, timeout: Duration) -> Self {
        if e.is_timeout() {
            ProviderError::Timeout {
                provider: provider.clone(),
                secs: timeout.as_secs_f64(),
            }
        } else if e.is_decode() {
            ProviderError::InvalidResponse {
                provider: provider.clone(),
                message: e.to_string(),
            }
        } else {
            // Strip the URL: it may carry a key in its query string for some providers.
            ProviderError::Unreachable {
                provider: provider.clone(),
                message: error_chain(&e.without_url()),
            }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// Translation between OpenAI format and one provider wire format.
pub trait ProviderAdapter: Send + Sync {
    /// Build the HTTP request for `req` (URL, auth, body translated to the wire format).
    /// Async because some providers must first obtain a token (Vertex AI) or sign the
    /// finished request (Bedrock).
    fn build_request(
        &self,
        lease: &Lease,
        req: &ProviderRequest,
    ) -> impl Future<Output = Result<reqwest::RequestBuilder, ProviderError>> + Send;

    /// Turn a 2xx non-streaming response body into an OpenAI-format body. `req` is the
    /// request it answers (its endpoint, model, `encoding_format`...).
    fn translate_response(
        &self,
        provider: &Arc<str>,
        req: &ProviderRequest,
        body: Bytes,
    ) -> Result<Bytes, ProviderError>;

    /// Turn a 2xx streaming response into OpenAI SSE chunks (non-OpenAI formats: through
    /// [`stream::chunk_stream`], which applies `req`'s `stream_options.include_usage`).
    fn translate_stream(
        &self,
        provider: &Arc<str>,
        req: &ProviderRequest,
        resp: reqwest::Response,
    ) -> ChunkStream;

    /// Turn a provider error response into an OpenAI-shaped error.
    fn translate_error(&self, provider: &Arc<str>, status: u16, body: Bytes) -> ProviderError;

    /// The provider's model list (`GET /models`).
    fn list_models(
        &self,
        lease: &Lease,
    ) -> impl Future<Output = Result<Vec<String>, ProviderError>> + Send;
}

/// The adapters deja has, one per wire format. A closed enum: adding a wire format is a
/// compile error everywhere it must be handled.
#[derive(Debug, Clone)]
pub enum Adapter {
    OpenAi(OpenAiAdapter),
    Anthropic(AnthropicAdapter),
    Bedrock(BedrockAdapter),
    Cohere(CohereAdapter),
    Azure(AzureAdapter),
    Gemini(GeminiAdapter),
}

impl Adapter {
    /// The adapter for provider `id`, holding whatever of its config the wire format needs
    /// (deployments, regions, credentials, token caches).
    pub fn new(id: &str, cfg: &ProviderConfig) -> Result<Self, PoolError> {
        Ok(match wire_format(cfg.kind) {
            WireFormat::OpenAi => Adapter::OpenAi(OpenAiAdapter),
            WireFormat::Anthropic => Adapter::Anthropic(AnthropicAdapter::new(id, cfg)?),
            WireFormat::Bedrock => Adapter::Bedrock(BedrockAdapter::new(id, cfg)?),
            WireFormat::Cohere => Adapter::Cohere(CohereAdapter),
            WireFormat::Azure => Adapter::Azure(AzureAdapter::new(cfg)),
            WireFormat::Gemini => Adapter::Gemini(GeminiAdapter::new(id, cfg)?),
        })
    }
}

/// Send `req` with `lease` through `adapter`: the shared driver for every provider.
pub async fn send(
    adapter: &Adapter,
    provider: &Arc<str>,
    lease: &Lease,
    req: &ProviderRequest,
) -> Result<ProviderReply, ProviderError> {
    match adapter {
        Adapter::OpenAi(a) => send_with(a, provider, lease, req).await,
        Adapter::Anthropic(a) => send_with(a, provider, lease, req).await,
        Adapter::Bedrock(a) => a.send(provider, lease, req).await,
        Adapter::Cohere(a) => send_with(a, provider, lease, req)
            .await
            .map(|r| native_common::finish_reply(r, req)),
        Adapter::Azure(a) => send_with(a, provider, lease, req).await,
        Adapter::Gemini(a) => send_with(a, provider, lease, req).await,
    }
}

async fn send_with<A: ProviderAdapter>(
    a: &A,
    provider: &Arc<str>,
    lease: &Lease,
    req: &ProviderRequest,
) -> Result<ProviderReply, ProviderError> {
    let builder = a.build_request(lease, req).await?;
    let timeout = lease.timeout;
    let fut = async {
        let resp = builder
            .send()
            .await
            .map_err(|e| ProviderError::from_reqwest(provider, e, timeout))?;
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(a.translate_error(provider, status, body));
        }
        if req.stream {
            return Ok(ProviderReply::Stream {
                stream: a.translate_stream(provider, req, resp),
            });
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| ProviderError::from_reqwest(provider, e, timeout))?;
        let body = a.translate_response(provider, req, body)?;
        Ok(ProviderReply::Complete { status, body })
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(ProviderError::Timeout {
            provider: provider.clone(),
            secs: timeout.as_secs_f64(),
        }),
    }
}

/// The provider's model list through `adapter`.
pub async fn list_models(adapter: &Adapter, lease: &Lease) -> Result<Vec<String>, ProviderError> {
    match adapter {
        Adapter::OpenAi(a) => a.list_models(lease).await,
        Adapter::Anthropic(a) => a.list_models(lease).await,
        Adapter::Bedrock(a) => a.list_models(lease).await,
        Adapter::Cohere(a) => a.list_models(lease).await,
        Adapter::Azure(a) => a.list_models(lease).await,
        Adapter::Gemini(a) => a.list_models(lease).await,
    }
}

/// Pass SSE bytes through unchanged, turning a transport error into
/// [`ProviderError::StreamInterrupted`] and ending the stream after it.
pub(crate) fn passthrough_stream(provider: &Arc<str>, resp: reqwest::Response) -> ChunkStream {
    let provider = provider.clone();
    let mut failed = false;
    resp.bytes_stream()
        .map(move |r| {
            r.map_err(|e| ProviderError::StreamInterrupted {
                provider: provider.clone(),
                message: error_chain(&e.without_url()),
            })
        })
        .take_while(move |r| {
            let go = !failed;
            failed |= r.is_err();
            std::future::ready(go)
        })
        .boxed()
}

/// Send a model-list request (`builder`: already authorised) with a short timeout and
/// return its JSON body; a non-2xx answer goes through the adapter's error translation.
pub(crate) async fn fetch_model_list<A: ProviderAdapter>(
    adapter: &A,
    lease: &Lease,
    builder: reqwest::RequestBuilder,
) -> Result<Value, ProviderError> {
    let resp = builder
        .timeout(lease.timeout.min(Duration::from_secs(10)))
        .send()
        .await
        .map_err(|e| ProviderError::from_reqwest(&lease.provider, e, lease.timeout))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap_or_default();
    if !(200..300).contains(&status) {
        return Err(adapter.translate_error(&lease.provider, status, body));
    }
    serde_json::from_slice(&body).map_err(|e| ProviderError::InvalidResponse {
        provider: lease.provider.clone(),
        message: format!("model list is not JSON: {e}"),
    })
}

/// The strings at `v[list][*][field]` (model ids in a list response).
pub(crate) fn names_in(v: &Value, list: &str, field: &str) -> Vec<String> {
    v.get(list)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| m.get(field).and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
