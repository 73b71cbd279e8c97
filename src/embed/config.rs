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
    /// Most texts waiting or being embedded at once, counted separately for
    /// the interactive queue ([`EmbedderHandle::embed`]: cache lookups and
    /// stores) and the bulk queue ([`EmbedderHandle::embed_many`]:
    /// `/v1/embeddings`, admin inserts), so bulk work never fills the room of
    /// lookups. Beyond it requests are refused with [`EmbedError::Overloaded`];
    /// one `embed_many` call of more texts is always refused.
    ///
    /// [`EmbedderHandle::embed`]: super::EmbedderHandle::embed
    /// [`EmbedderHandle::embed_many`]: super::EmbedderHandle::embed_many
    pub queue_limit: usize,
    /// Most tokens in one ONNX Runtime run, padding included (rows times the
    /// padded length; a single text always runs). Bounds the memory of a run,
    /// whose attention alone takes rows x 12 heads x length² floats: with the
    /// arena off, 2048 tokens (8 texts of 256) add about 140 MB while they
    /// run, 4096 about 300 MB. Long texts gain nothing from bigger batches
    /// (tokens/s stays flat); short ones fill a batch long before this cap.
    /// Also caps the tokens of one interactive batch.
    pub max_batch_tokens: usize,
    /// Bulk work ([`EmbedderHandle::embed_many`]) is cut into slices of at most
    /// this many tokens (without padding; a single text always makes a slice,
    /// so values below `max_tokens` act as `max_tokens` for long texts), and
    /// a free worker takes the next slice only when no interactive job waits:
    /// a cache lookup waits for at most one slice per worker. The default, one
    /// text of 256 tokens, is about 55 ms of one core of the development
    /// machine (docs/embedder.md).
    ///
    /// [`EmbedderHandle::embed_many`]: super::EmbedderHandle::embed_many
    pub bulk_slice_tokens: usize,
    /// Most tokens (as the model sees them: special tokens in, each text
    /// truncated to `max_tokens`) in one `POST /v1/embeddings` request for the
    /// local model; a request over it is a 400 naming the limit.
    pub max_request_tokens: usize,
    /// ONNX Runtime's CPU memory arena (and memory patterns). On, the arena
    /// keeps the largest working set any batch needed until the process ends;
    /// off (the default), each run's buffers are freed when it ends, at no
    /// measurable cost in speed for this model.
    pub cpu_arena: bool,
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
            max_batch_tokens: 2048,
            bulk_slice_tokens: 256,
            max_request_tokens: 65_536,
            cpu_arena: false,
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
        if self.max_batch_tokens == 0 {
            return bad("max_batch_tokens must be >= 1");
        }
        if self.bulk_slice_tokens == 0 {
            return bad("bulk_slice_tokens must be >= 1");
        }
        if self.max_request_tokens == 0 {
            return bad("max_request_tokens must be >= 1");
        }
        Ok(())
    }
}
