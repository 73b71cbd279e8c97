//! Zero-configuration: find providers from the environment variables their own SDKs use.

use super::{Config, ProviderConfig, ProviderKind, Secret};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// When the configuration names no provider and `discovery.from_env` is on, add one
/// provider per kind whose API-key variable is set (`OPENAI_API_KEY` with
/// `OPENAI_BASE_URL`, `GROQ_API_KEY`, ...) and Ollama from `OLLAMA_HOST` or a listener on
/// `localhost:11434`. Returns the ids added.
pub fn discover_providers(config: &mut Config, env: &HashMap<String, String>) -> Vec<String> {
    if !config.providers.is_empty() || !config.discovery.from_env {
        return Vec::new();
    }
    let mut added = Vec::new();
    for kind in ProviderKind::ALL {
        let Some(key_vars) = kind.key_env_vars() else {
            continue;
        };
        let Some(key) = key_vars
            .iter()
            .find_map(|v| env.get(*v).filter(|s| !s.is_empty()))
        else {
            continue;
        };
        let mut p = ProviderConfig::new(*kind);
        p.api_key = Some(Secret::new(key.as_str()));
        if let Some(url) = kind
            .base_url_env_var()
            .and_then(|v| env.get(v))
            .filter(|s| !s.is_empty())
        {
            p.base_url = Some(url.clone());
        }
        // A kind without a public default endpoint (Azure) needs its endpoint variable.
        if p.effective_base_url().is_none() {
            continue;
        }
        config.providers.insert(kind.as_str().to_owned(), p);
        added.push(kind.as_str().to_owned());
    }
    let ollama = match env.get("OLLAMA_HOST").filter(|s| !s.is_empty()) {
        Some(host) => Some(ollama_url(host)),
        None if config.discovery.probe_ollama && listening("127.0.0.1:11434") => {
            Some("http://127.0.0.1:11434".to_owned())
        }
        None => None,
    };
    if let Some(base) = ollama {
        let mut p = ProviderConfig::new(ProviderKind::Ollama);
        p.base_url = Some(format!("{base}/v1"));
        config.providers.insert("ollama".into(), p);
        added.push("ollama".into());
    }
    if config.routing.default_provider.is_empty() && config.providers.contains_key("openai") {
        config.routing.default_provider = "openai".into();
    }
    added
}

/// `OLLAMA_HOST` may be `host`, `host:port` or a URL.
fn ollama_url(host: &str) -> String {
    let h = host.trim_end_matches('/');
    let with_scheme = if h.contains("://") {
        h.to_owned()
    } else {
        format!("http://{h}")
    };
    let after_scheme = with_scheme.split_once("://").map(|x| x.1).unwrap_or("");
    if after_scheme.contains(':') {
        with_scheme
    } else {
        format!("{with_scheme}:11434")
    }
}

fn listening(addr: &str) -> bool {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map(|a| a.collect())
        .unwrap_or_default();
    addrs
        .iter()
        .any(|a| TcpStream::connect_timeout(a, Duration::from_millis(150)).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, Overrides};

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn openai_with_base_url_and_groq_from_env() {
        let e = env(&[
            ("OPENAI_API_KEY", "sk-x"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
            ("GROQ_API_KEY", "gsk"),
            ("DEJA__DISCOVERY__PROBE_OLLAMA", "false"),
        ]);
        let mut c = load(None, &e, &Overrides::default()).unwrap();
        let added = discover_providers(&mut c, &e);
        assert_eq!(added, vec!["openai".to_string(), "groq".to_string()]);
        assert_eq!(
            c.providers["openai"].effective_base_url().unwrap(),
            "http://127.0.0.1:9/v1"
        );
        assert_eq!(
            c.providers["groq"].api_key.as_ref().unwrap().expose(),
            "gsk"
        );
        assert_eq!(c.routing.default_provider, "openai");
    }

    #[test]
    fn azure_needs_its_endpoint_and_gemini_its_key() {
        let e = env(&[
            ("AZURE_OPENAI_API_KEY", "az"),
            ("GOOGLE_API_KEY", "g"),
            ("DEJA__DISCOVERY__PROBE_OLLAMA", "false"),
        ]);
        let mut c = load(None, &e, &Overrides::default()).unwrap();
        // Without AZURE_OPENAI_ENDPOINT there is nowhere to send Azure requests.
        assert_eq!(discover_providers(&mut c, &e), vec!["gemini".to_string()]);
        assert_eq!(
            c.providers["gemini"].api_key.as_ref().unwrap().expose(),
            "g"
        );
        let e = env(&[
            ("AZURE_OPENAI_API_KEY", "az"),
            ("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com/"),
            ("DEJA__DISCOVERY__PROBE_OLLAMA", "false"),
        ]);
        let mut c = load(None, &e, &Overrides::default()).unwrap();
        assert_eq!(discover_providers(&mut c, &e), vec!["azure".to_string()]);
        assert_eq!(
            c.providers["azure"].effective_base_url().unwrap(),
            "https://res.openai.azure.com"
        );
    }

    #[test]
    fn ollama_host_forms() {
        assert_eq!(ollama_url("localhost"), "http://localhost:11434");
        assert_eq!(ollama_url("0.0.0.0:1234"), "http://0.0.0.0:1234");
        assert_eq!(
            ollama_url("https://ollama.example:8443/"),
            "https://ollama.example:8443"
        );
        let e = env(&[("OLLAMA_HOST", "127.0.0.1:5555")]);
        let mut c = load(None, &e, &Overrides::default()).unwrap();
        discover_providers(&mut c, &e);
        assert_eq!(
            c.providers["ollama"].effective_base_url().unwrap(),
            "http://127.0.0.1:5555/v1"
        );
    }

    #[test]
    fn configured_providers_disable_discovery() {
        let e = env(&[
            ("OPENAI_API_KEY", "sk"),
            ("DEJA__PROVIDERS__LOCAL__KIND", "\"ollama\""),
        ]);
        let mut c = load(None, &e, &Overrides::default()).unwrap();
        assert!(discover_providers(&mut c, &e).is_empty());
        assert_eq!(c.providers.keys().collect::<Vec<_>>(), vec!["local"]);
    }
}
