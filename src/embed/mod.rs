//! Local ONNX embedder (all-MiniLM-L6-v2 by default) and its actor.
//!
//! Two layers:
//! - [`Embedder`]: a plain struct owning one ONNX Runtime session and the
//!   tokenizer. `embed_batch` tokenises, sorts the texts by length into
//!   sub-batches of similar length (each padded to its longest), runs the
//!   model, pools (mean over the attention mask, or CLS) and L2-normalises,
//!   matching sentence-transformers' output. Usable and testable without
//!   actix.
//! - [`EmbedderHandle`]: a cloneable handle over [`EmbedWorker`] actors on a
//!   `SyncArbiter` (one session per thread) with **prioritised dynamic
//!   batching**: concurrent [`EmbedderHandle::embed`] calls (cache lookups)
//!   are gathered for up to `batch_wait_us`, `batch_max` texts or
//!   `max_batch_tokens` tokens and run as one batch, before any bulk work
//!   ([`EmbedderHandle::embed_many`]), which runs in slices of
//!   `bulk_slice_tokens`. More than `queue_limit` waiting texts (per queue)
//!   are refused with [`EmbedError::Overloaded`]; [`EmbedderHandle::estimated_wait`]
//!   tells how long a new lookup would wait. See `docs/embedder.md`.
//!
//! ## Long inputs
//! A text longer than `max_tokens` tokens (special tokens included) keeps its
//! leading special token(s), the first quarter of the remaining budget, the
//! last three quarters of it, and its trailing special token(s): in chat
//! prompts the latest message is at the end. See [`truncate_ids`] and
//! [`pretrim_text`] (a cheap character-level cut applied first to very long
//! texts so that tokenising them stays bounded).
//!
//! The model files come from `scripts/fetch-model` (see `models/README.md`).

mod actor;
mod config;
mod embedder;
mod error;

pub use actor::{
    retry_after_secs, EmbedBatch, EmbedStats, EmbedTokenIds, EmbedWorker, EmbedderHandle,
};
pub use config::{EmbedderConfig, Pooling, ORT_DYLIB_ENV};
pub use embedder::{
    pretrim_text, truncate_ids, Embedder, TokenEmbeddings, PRETRIM_CHARS_PER_TOKEN,
};
pub use error::EmbedError;
