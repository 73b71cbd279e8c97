//! Embedder configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::EmbedError;

/// Environment variable consulted when [`EmbedderConfig::ort_dylib_path`] is unset.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// How token vectors are pooled into one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Mean of the token vectors weighted by the attention mask
    /// (sentence-transformers' default, and all-MiniLM-L6-v2's).
    #[default]
    Mean,
    /// The first token's (`[CLS]`) vector.
    Cls,
}

/// Configuration of the local embedder.
///
/// Relative paths are resolved against the process' working directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbedderConfig {
    /// ONNX model file (a sentence-transformers export whose first output is
    /// `last_hidden_state` `[batch, seq, dimensions]`, or already pooled `[batch, dimensions]`).
    pub model_path: PathBuf,
    /// Hugging Face `tokenizer.json` matching the model.
    pub tokenizer_path: PathBuf,
    /// ONNX Runtime shared library. `None`: env `ORT_DYLIB_PATH`, else
    /// `models/libonnxruntime.so` (what `scripts/fetch-model` writes).
    /// ONNX Runtime is loaded once per process: the first load's path wins.
    pub ort_dylib_path: Option<PathBuf>,
    /// Length of the output vectors; checked against the model at load.
    pub dimensions: usize,
    /// Maximum tokens per text, special tokens included (the model's limit:
    /// 256 for all-MiniLM-L6-v2). Longer texts keep head and tail.
    pub max_tokens: usize,
    /// Pooling of token vectors.
    pub pooling: Pooling,
    /// L2-normalise the pooled vectors.
    pub normalize: bool,
    /// Number of `EmbedWorker` threads (each with its own session).
    pub threads: usize,
    /// ONNX Runtime intra-op threads per session.
    pub intra_op_threads: usize,
    /// Most texts per dynamic batch.
    pub batch_max: usize,
    /// How long the batcher waits for more texts after the first one, in
    /// microseconds (0: take only what is already waiting). Tokio's timer has
    /// millisecond resolution, so non-zero waits round up to the next tick.
    pub batch_wait_us: u64,
    /// Most texts waiting or being embedded at once; beyond it requests are
    /// refused with [`EmbedError::Overloaded`].
    pub queue_limit: usize,
    /// Serve this model on `POST /v1/embeddings` as `local/{serve_name}` (no upstream call).
    /// Empty: do not serve it. The embedder starts on the first such request unless the
    /// semantic cache already runs it.
    pub serve_name: String,
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        Self {
            model_path: PathBuf::from("models/model.onnx"),
            tokenizer_path: PathBuf::from("models/tokenizer.json"),
            ort_dylib_path: None,
            dimensions: 384,
            max_tokens: 256,
            pooling: Pooling::Mean,
            normalize: true,
            threads: 1,
            intra_op_threads: 1,
            batch_max: 32,
            batch_wait_us: 0,
            queue_limit: 1024,
            serve_name: "all-MiniLM-L6-v2".into(),
        }
    }
}

impl EmbedderConfig {
    /// The ONNX Runtime library to load: `ort_dylib_path`, else env
    /// `ORT_DYLIB_PATH`, else `models/libonnxruntime.so`.
    pub fn resolved_ort_dylib_path(&self) -> PathBuf {
        if let Some(p) = &self.ort_dylib_path {
            return p.clone();
        }
        match std::env::var_os(ORT_DYLIB_ENV) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from("models/libonnxruntime.so"),
        }
    }

    /// Checks the numeric settings.
    pub fn validate(&self) -> Result<(), EmbedError> {
        let bad = |m: &str| Err(EmbedError::Config(m.to_string()));
        if self.dimensions == 0 {
            return bad("dimensions must be > 0");
        }
        if self.max_tokens < 8 {
            return bad("max_tokens must be >= 8");
        }
        if self.threads == 0 {
            return bad("threads must be >= 1");
        }
        if self.intra_op_threads == 0 {
            return bad("intra_op_threads must be >= 1");
        }
        if self.batch_max == 0 {
            return bad("batch_max must be >= 1");
        }
        if self.queue_limit == 0 {
            return bad("queue_limit must be >= 1");
        }
        Ok(())
    }
}
