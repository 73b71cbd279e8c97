//! Semantic cache: HNSW index in memory, entries persisted in sled.

pub mod key;
pub mod replay;
