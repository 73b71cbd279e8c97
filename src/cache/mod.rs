//! Semantic cache: HNSW index in memory, entries persisted in sled.
pub mod verify;
