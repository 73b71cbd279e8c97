//! Embedder errors.

use std::path::PathBuf;

/// Errors of the embedder and its actor.
///
/// `Overloaded` is meant to become HTTP 503 with `Retry-After`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmbedError {
    /// Invalid configuration (or no running actix System for the handle).
    #[error("invalid embedder configuration: {0}")]
    Config(String),
    /// The ONNX Runtime shared library could not be loaded or initialised.
    #[error("failed to load ONNX Runtime from {}: {reason} (run scripts/fetch-model, or set ORT_DYLIB_PATH / ort_dylib_path)", path.display())]
    RuntimeLoad { path: PathBuf, reason: String },
    /// The ONNX model could not be loaded, or does not fit the configuration.
    #[error("failed to load embedding model {}: {reason}", path.display())]
    ModelLoad { path: PathBuf, reason: String },
    /// The tokenizer could not be loaded.
    #[error("failed to load tokenizer {}: {reason}", path.display())]
    TokenizerLoad { path: PathBuf, reason: String },
    /// Tokenisation of an input failed.
    #[error("tokenization failed: {0}")]
    Tokenize(String),
    /// Running the model failed or produced an unexpected output.
    #[error("embedding inference failed: {0}")]
    Inference(String),
    /// The texts of one request hold more tokens than allowed together.
    #[error("the input holds more than {limit} tokens")]
    TooManyTokens { limit: usize },
    /// Too many texts are waiting; retry later.
    #[error("embedder overloaded: too many texts waiting")]
    Overloaded,
    /// The embedder actors are gone (system stopping or a worker died).
    #[error("embedder unavailable")]
    Unavailable,
}
