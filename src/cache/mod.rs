//! Semantic cache: HNSW index in memory, entries persisted in sled.
