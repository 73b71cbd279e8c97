//! The verification stage between "nearest entry above the threshold" and "serve it".
//! Until the false-hit verifier lands (issue 4) every candidate above the threshold is
//! accepted; the seam is here so the cache flow and the admin search do not change.

/// Decides whether a candidate entry's text answers the request's text.
#[derive(Debug, Clone, Default)]
pub struct Judge;

impl Judge {
    /// `(accepted, refusal reason, explanation)`.
    pub fn judge(
        &self,
        _request: &str,
        _candidate: &str,
        similarity: f32,
    ) -> (bool, Option<String>, String) {
        (
            true,
            None,
            format!("similarity {similarity:.3} at or above the threshold"),
        )
    }
}
