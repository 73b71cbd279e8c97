//! `[verifier]`: the false-hit verifier's settings (the verifier itself is
//! `cache::verify`, built by `gateway::verify::Judge`).

use crate::cache::verify::Strictness;
use serde::Deserialize;

/// `[verifier]` configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifierConfig {
    /// `strict`, `balanced` (default) or `off` (the similarity threshold alone).
    pub strictness: Strictness,
}
