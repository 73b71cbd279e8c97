//! The verification stage between "nearest entry above the threshold" and "serve it":
//! the false-hit verifier (`cache::verify`) built once at start-up and shared.

use crate::cache::verify::{Prepared, Verifier};
pub use crate::config::VerifierConfig;
use std::sync::Arc;

/// Decides whether a candidate entry's text answers the request's text.
#[derive(Debug, Clone)]
pub struct Judge {
    verifier: Arc<Verifier>,
}

impl Judge {
    pub fn new(cfg: &VerifierConfig) -> Self {
        Judge {
            verifier: Arc::new(Verifier::new(cfg.strictness)),
        }
    }

    /// What the embedder is given for a question (misspellings corrected).
    pub fn embedding_text(&self, text: &str) -> String {
        self.verifier.embedding_text(text)
    }

    /// The request's side of judging, done once for all its candidates.
    pub fn prepare<'a>(&self, request: &'a str) -> Prepared<'a> {
        self.verifier.prepare(request)
    }

    /// `(accepted, refusal reason, explanation)`.
    pub fn judge(
        &self,
        request: &Prepared<'_>,
        candidate: &str,
        similarity: f32,
    ) -> (bool, Option<String>, String) {
        let v = self
            .verifier
            .verify_prepared(request, candidate, similarity);
        (v.accept, v.reason.map(|r| r.as_str().to_owned()), v.detail)
    }
}
