//! deja: an LLM gateway whose edge is a semantic cache.
//!
//! The crate is laid out by actor and concern:
//! - [`http`]: the actix-web front end (thin handlers, error mapping, middleware).
//! - [`gateway`]: the domain functions the handlers call (`forward`, `list_models`, ...).
//! - [`providers`]: provider kinds, wire-format adapters and one pool actor per provider.
//! - [`embed`]: the local ONNX embedder actor.
//! - [`cache`]: the semantic cache (HNSW index in memory, entries in sled).
//! - [`config`]: layered configuration (embedded defaults < file < env < flags).
//! - [`telemetry`]: logging and metrics.
//! - [`eval`]: measuring the cache on labelled pairs and intent data (`deja eval-pairs`).
//! - [`warmup`]: the `deja warmup FILE` batch client that fills the cache.

pub mod cache;
pub mod config;
pub mod embed;
pub mod eval;
pub mod gateway;
pub mod http;
pub mod providers;
pub mod telemetry;
pub mod warmup;
