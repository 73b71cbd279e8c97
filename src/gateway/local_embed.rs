//! deja's own embedding model on `POST /v1/embeddings`: `model: "local/all-MiniLM-L6-v2"`
//! (`local/` + `embedder.serve_name`) is answered by the embedder actor, with no upstream.
//!
//! The model is offered when `embedder.serve_name` is non-empty and the model and tokenizer
//! files exist at start-up. When the semantic cache is on, its running embedder serves these
//! requests too (the same vectors the cache uses); otherwise the embedder is started on the
//! first local-embedding request (loading the model takes that request a moment), so a
//! gateway that never embeds locally never loads ONNX Runtime.
//!
//! The answer has OpenAI's shape: `float` or `base64` (little-endian f32) `encoding_format`,
//! `dimensions` accepted only when it equals the model's, `usage.prompt_tokens` counted by the
//! model's tokenizer as the model sees the text (special tokens in, truncated to
//! `max_tokens`).
//!
//! These requests are the embedder's bulk work: they run after the cache's lookups, in
//! slices of `embedder.bulk_slice_tokens`, and one request may hold at most
//! `embedder.max_request_tokens` tokens (a 400 naming the limit beyond). A full bulk queue
//! is a 503 whose `Retry-After` is the embedder's estimate of the work ahead.

use super::{CacheMeta, GatewayError, ParsedRequest, Reply, ReplyBody};
use crate::embed::{retry_after_secs, EmbedError, EmbedderConfig, EmbedderHandle};
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

/// OpenAI's limit on inputs per embeddings request.
const MAX_INPUTS: usize = 2048;

pub struct LocalEmbeddings {
    /// `local/{serve_name}`.
    model_id: String,
    cfg: EmbedderConfig,
    handle: tokio::sync::OnceCell<Result<EmbedderHandle, EmbedError>>,
}

impl LocalEmbeddings {
    /// `None` when `serve_name` is empty or the model files are missing. `running` is the
    /// cache's embedder, if the cache started one.
    pub fn new(cfg: &EmbedderConfig, running: Option<EmbedderHandle>) -> Option<Self> {
        if cfg.serve_name.is_empty() {
            return None;
        }
        if !cfg.model_path.is_file() || !cfg.tokenizer_path.is_file() {
            tracing::info!(
                model = %cfg.model_path.display(),
                "local embeddings not offered: the model files are missing (run scripts/fetch-model)"
            );
            return None;
        }
        let handle = tokio::sync::OnceCell::new();
        if let Some(h) = running {
            let _ = handle.set(Ok(h));
        }
        Some(LocalEmbeddings {
            model_id: format!("local/{}", cfg.serve_name),
            cfg: cfg.clone(),
            handle,
        })
    }

    /// The model id clients use (`local/all-MiniLM-L6-v2`).
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub fn serves(&self, model: &str) -> bool {
        model == self.model_id
    }

    async fn embedder(&self) -> Result<&EmbedderHandle, GatewayError> {
        let r = self
            .handle
            .get_or_init(|| async {
                tracing::info!(model = %self.model_id, "starting the embedder for local embeddings");
                // Loads on the blocking pool: this HTTP worker keeps serving meanwhile.
                EmbedderHandle::start_async(self.cfg.clone()).await
            })
            .await;
        r.as_ref()
            .map_err(|e| GatewayError::LocalEmbedder(e.to_string()))
    }

    /// Answer an embeddings request for [`model_id`](Self::model_id).
    pub async fn embed(&self, req: &ParsedRequest) -> Result<Reply, GatewayError> {
        let texts = inputs(req, MAX_INPUTS.min(self.cfg.queue_limit))?;
        let base64_out = match req.body.get("encoding_format") {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) if s == "float" => false,
            Some(Value::String(s)) if s == "base64" => true,
            Some(_) => {
                return Err(GatewayError::invalid(
                    "'encoding_format' must be \"float\" or \"base64\".",
                    Some("encoding_format"),
                ))
            }
        };
        match req.body.get("dimensions") {
            None | Some(Value::Null) => {}
            Some(d) if d.as_u64() == Some(self.cfg.dimensions as u64) => {}
            Some(_) => {
                return Err(GatewayError::invalid(
                    format!(
                        "Model '{}' produces {}-dimensional vectors and cannot shorten them; omit 'dimensions' or set it to {}.",
                        self.model_id, self.cfg.dimensions, self.cfg.dimensions
                    ),
                    Some("dimensions"),
                ))
            }
        }
        let embedder = self.embedder().await?;
        let started = Instant::now();
        let limit = self.cfg.max_request_tokens;
        let ids = embedder
            .tokenize_many(texts, limit)
            .await
            .map_err(|e| match e {
                EmbedError::TooManyTokens { limit } => GatewayError::invalid(
                    format!(
                        "The input holds more than {limit} tokens (this gateway's limit per request for '{}', embedder.max_request_tokens); send fewer or shorter texts.",
                        self.model_id
                    ),
                    Some("input"),
                ),
                other => GatewayError::LocalEmbedder(other.to_string()),
            })?;
        let tokens: usize = ids.iter().map(Vec::len).sum();
        let vectors = embedder.embed_token_ids(ids).await.map_err(|e| match e {
            EmbedError::Overloaded => GatewayError::Overloaded {
                what: "embedder",
                retry_after_secs: retry_after_secs(embedder.estimated_bulk_wait()),
            },
            other => GatewayError::LocalEmbedder(other.to_string()),
        })?;
        let elapsed = started.elapsed();
        let data: Vec<Value> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let embedding = if base64_out {
                    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    json!(v)
                };
                json!({"object": "embedding", "index": i, "embedding": embedding})
            })
            .collect();
        let body = json!({
            "object": "list",
            "data": data,
            "model": self.model_id,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        });
        Ok(Reply {
            status: 200,
            body: ReplyBody::Json(Bytes::from(body.to_string())),
            provider: Arc::from("local"),
            model: self.cfg.serve_name.clone(),
            upstream: elapsed,
            cache: CacheMeta {
                embed: Some(elapsed),
                ..CacheMeta::default()
            },
        })
    }
}

/// The texts of `input`: a string or an array of strings (no token arrays, no empty text).
fn inputs(req: &ParsedRequest, max: usize) -> Result<Vec<String>, GatewayError> {
    let texts: Vec<String> = match req.body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => {
            if a.is_empty() {
                return Err(GatewayError::invalid(
                    "'input' must not be an empty array.",
                    Some("input"),
                ));
            }
            a.iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        GatewayError::invalid_at(
                            "The local embedding model takes text: 'input' must be a string or an array of strings.",
                            format!("input[{i}]"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?
        }
        _ => {
            return Err(GatewayError::invalid(
                "'input' must be a string or an array of strings.",
                Some("input"),
            ))
        }
    };
    if texts.len() > max {
        return Err(GatewayError::invalid(
            format!("At most {max} inputs per request; got {}.", texts.len()),
            Some("input"),
        ));
    }
    if let Some(i) = texts.iter().position(|t| t.is_empty()) {
        return Err(GatewayError::invalid_at(
            "Input texts must not be empty.",
            format!("input[{i}]"),
        ));
    }
    Ok(texts)
}
