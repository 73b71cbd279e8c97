//! Model addressing: `provider/model`, config aliases, bare names listed by a provider,
//! else the default provider.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// Which provider lists which model: configured lists plus what discovery found.
#[derive(Clone, Default)]
pub struct ModelRegistry {
    inner: Arc<RwLock<BTreeMap<String, Vec<String>>>>,
}

impl ModelRegistry {
    pub fn add_listed(&self, provider: &str, models: Vec<String>) {
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let list = g.entry(provider.to_owned()).or_default();
        for m in models {
            if !list.contains(&m) {
                list.push(m);
            }
        }
    }

    /// The first provider (in id order) listing `model`.
    pub fn provider_for(&self, model: &str) -> Option<String> {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        g.iter()
            .find(|(_, ms)| ms.iter().any(|m| m == model))
            .map(|(p, _)| p.clone())
    }

    /// `(provider, model)` for every listed model.
    pub fn all(&self) -> Vec<(String, String)> {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        g.iter()
            .flat_map(|(p, ms)| ms.iter().map(move |m| (p.clone(), m.clone())))
            .collect()
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub provider: String,
    /// The provider's own name for the model.
    pub model: String,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    #[error("The model `{0}` does not exist or no provider serves it. GET /v1/models lists the models deja can route; `provider/model` addresses a provider directly.")]
    UnknownModel(String),
}

impl RouteError {
    /// The model as the client wrote it, clipped: it is echoed in the error and logged.
    pub fn unknown(model: &str) -> Self {
        RouteError::UnknownModel(
            crate::telemetry::clip(model, crate::telemetry::MAX_CLIENT_FIELD_BYTES).into_owned(),
        )
    }
}

pub struct Router {
    providers: Vec<String>,
    aliases: BTreeMap<String, String>,
    default_provider: Option<String>,
    registry: ModelRegistry,
}

impl Router {
    pub fn new(
        providers: Vec<String>,
        aliases: BTreeMap<String, String>,
        default_provider: &str,
        registry: ModelRegistry,
    ) -> Self {
        let default_provider = if !default_provider.is_empty() {
            Some(default_provider.to_owned())
        } else if providers.len() == 1 {
            providers.first().cloned()
        } else if providers.iter().any(|p| p == "openai") {
            Some("openai".into())
        } else {
            None
        };
        Router {
            providers,
            aliases,
            default_provider,
            registry,
        }
    }

    pub fn resolve(&self, model: &str) -> Result<Route, RouteError> {
        if let Some(target) = self.aliases.get(model) {
            if let Some((p, m)) = target.split_once('/') {
                return Ok(Route {
                    provider: p.to_owned(),
                    model: m.to_owned(),
                });
            }
        }
        if let Some((p, m)) = model.split_once('/') {
            if !m.is_empty() && self.providers.iter().any(|x| x == p) {
                return Ok(Route {
                    provider: p.to_owned(),
                    model: m.to_owned(),
                });
            }
        }
        if let Some(p) = self.registry.provider_for(model) {
            return Ok(Route {
                provider: p,
                model: model.to_owned(),
            });
        }
        match &self.default_provider {
            Some(p) if !model.is_empty() => Ok(Route {
                provider: p.clone(),
                model: model.to_owned(),
            }),
            _ => Err(RouteError::unknown(model)),
        }
    }

    pub fn aliases(&self) -> &BTreeMap<String, String> {
        &self.aliases
    }

    pub fn registry(&self) -> &ModelRegistry {
        &self.registry
    }

    pub fn provider_ids(&self) -> &[String] {
        &self.providers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(default: &str) -> Router {
        let reg = ModelRegistry::default();
        reg.add_listed("groq", vec!["llama-3.1-8b-instant".into()]);
        let mut aliases = BTreeMap::new();
        aliases.insert("fast".into(), "groq/llama-3.1-8b-instant".into());
        Router::new(
            vec!["openai".into(), "groq".into(), "vllm".into()],
            aliases,
            default,
            reg,
        )
    }

    fn r(p: &str, m: &str) -> Route {
        Route {
            provider: p.into(),
            model: m.into(),
        }
    }

    #[test]
    fn addressing_rules() {
        let rt = router("");
        assert_eq!(
            rt.resolve("openai/gpt-4o-mini").unwrap(),
            r("openai", "gpt-4o-mini")
        );
        assert_eq!(
            rt.resolve("fast").unwrap(),
            r("groq", "llama-3.1-8b-instant")
        );
        assert_eq!(
            rt.resolve("llama-3.1-8b-instant").unwrap(),
            r("groq", "llama-3.1-8b-instant")
        );
        // Bare, unlisted: the default provider (openai when configured).
        assert_eq!(rt.resolve("gpt-4o").unwrap(), r("openai", "gpt-4o"));
        // A model name with a slash whose prefix is not a provider stays whole.
        assert_eq!(
            rt.resolve("meta-llama/Llama-3").unwrap(),
            r("openai", "meta-llama/Llama-3")
        );
        // Provider prefix with a slashed model name.
        assert_eq!(
            rt.resolve("vllm/meta-llama/Llama-3").unwrap(),
            r("vllm", "meta-llama/Llama-3")
        );
        assert_eq!(rt.resolve("vllm/x").map(|x| x.provider), Ok("vllm".into()));
    }

    #[test]
    fn unknown_without_default() {
        let reg = ModelRegistry::default();
        let rt = Router::new(vec!["a".into(), "b".into()], BTreeMap::new(), "", reg);
        assert_eq!(rt.resolve("m"), Err(RouteError::UnknownModel("m".into())));
        assert!(rt
            .resolve("")
            .unwrap_err()
            .to_string()
            .contains("/v1/models"));
        assert_eq!(rt.resolve("b/y").unwrap(), r("b", "y"));
    }
}
