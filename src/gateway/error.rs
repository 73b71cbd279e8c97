//! Errors of the gateway domain. The HTTP edge maps each to a status and an OpenAI-shaped body.

use crate::providers::{ProviderError, RouteError};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Malformed JSON, a missing or mistyped field.
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
    },
    #[error(transparent)]
    ModelNotFound(#[from] RouteError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// A bounded queue (the embedder's) is full: retry later.
    #[error("deja's {what} is overloaded; retry after {retry_after_secs}s.")]
    Overloaded {
        what: &'static str,
        retry_after_secs: u64,
    },
    /// Admin cache routes while `cache.enabled = false`.
    #[error("The semantic cache is disabled (cache.enabled = false).")]
    CacheDisabled,
    #[error("No cache entry with id {0}.")]
    EntryNotFound(u64),
    /// The cache or embedder failed (the request cannot be served as asked).
    #[error("cache error: {0}")]
    Cache(String),
    /// deja's own embedding model (`local/...` on `/v1/embeddings`) failed.
    #[error("local embedding model error: {0}")]
    LocalEmbedder(String),
}

impl GatewayError {
    pub fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        GatewayError::InvalidRequest {
            message: message.into(),
            param: param.map(str::to_owned),
        }
    }

    pub fn invalid_at(message: impl Into<String>, param: String) -> Self {
        GatewayError::InvalidRequest {
            message: message.into(),
            param: Some(param),
        }
    }
}
