//! Secrets: values that must never reach a log line, an error message or a response.

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::sync::Arc;

/// A secret value (API key, admin token). `Debug` and `Display` print `*****`.
///
/// In configuration a secret is written either literally or as `env:NAME`, which
/// [`crate::config::load`] resolves from the environment at start-up.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call only where it is sent (an auth header), never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `Some(NAME)` when the configured value is an `env:NAME` reference not yet resolved.
    pub(crate) fn env_reference(&self) -> Option<&str> {
        self.0.strip_prefix("env:")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("sk-very-secret");
        assert_eq!(format!("{s:?}"), "*****");
        assert_eq!(format!("{s}"), "*****");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(*****)");
        assert_eq!(s.expose(), "sk-very-secret");
    }

    #[test]
    fn env_reference_is_recognised() {
        assert_eq!(
            Secret::new("env:OPENAI_API_KEY").env_reference(),
            Some("OPENAI_API_KEY")
        );
        assert_eq!(Secret::new("sk-1").env_reference(), None);
    }
}
