//! Layered configuration: embedded defaults < TOML file < `DEJA__SECTION__KEY` env vars < CLI flags.
//!
//! Unknown keys are rejected with an error naming the source (file or env var), the
//! field path and what was expected. Secrets are written literally or as `env:NAME`.

mod discovery;
mod kind;
mod provider;
mod secret;
mod verifier;

pub use discovery::discover_providers;
pub use kind::ProviderKind;
pub use provider::{
    AnthropicConfig, AzureAuth, AzureConfig, BedrockConfig, KeyConfig, ProviderConfig,
    ProviderSettings, VertexConfig, AZURE_DEFAULT_API_VERSION, VERTEX_DEFAULT_LOCATION,
};
pub use secret::Secret;
pub use verifier::VerifierConfig;

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

const DEFAULTS: &str = include_str!("defaults.toml");
const ENV_PREFIX: &str = "DEJA__";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub routing: RoutingConfig,
    pub admin: AdminConfig,
    pub telemetry: TelemetryConfig,
    pub discovery: DiscoveryConfig,
    /// `/metrics` (`[metrics]`).
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// The semantic cache (`[cache]`, `[cache.hnsw]`).
    #[serde(default)]
    pub cache: crate::cache::CacheConfig,
    /// The local embedding model (`[embedder]`).
    #[serde(default)]
    pub embedder: crate::embed::EmbedderConfig,
    /// The false-hit verifier (`[verifier]`).
    #[serde(default)]
    pub verifier: VerifierConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub max_body_bytes: usize,
    /// A request body must arrive whole within this many seconds (else 408).
    pub body_timeout_secs: u64,
    /// Bytes held by all request bodies still being received; past it, 503.
    pub max_pending_body_bytes: usize,
    pub shutdown_timeout_secs: u64,
    pub workers: usize,
    /// Busy polling: a worker that served a request in the last this-many µs keeps
    /// polling its sockets instead of sleeping (0 = off). See `http::busy_poll`.
    pub busy_poll_us: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    pub default_provider: String,
    /// `alias = "provider/model"`.
    pub aliases: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub token: Option<Secret>,
}

/// Who may read `/metrics`, and where.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Require the admin bearer token on `/metrics`.
    pub require_token: bool,
    /// Serve `/metrics` on this separate `host:port` only (empty: on the main port).
    pub listen: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    pub log_level: String,
    pub log_prompts: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    pub from_env: bool,
    pub probe_ollama: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{source_name}: invalid TOML: {message}")]
    Syntax {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: invalid configuration at `{path}`: {message}")]
    Invalid {
        source_name: String,
        path: String,
        message: String,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

/// Command-line overrides, applied last.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub data_dir: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
}

/// Load the configuration: embedded defaults, then `file` (if any), then `DEJA__*`
/// variables (and the short forms `DEJA_PORT`, `DEJA_HOST`, `DEJA_DATA_DIR`,
/// `DEJA_ADMIN_TOKEN`) from `env`, then `overrides`. `env:NAME` secrets are resolved from `env`.
pub fn load(
    file: Option<&Path>,
    env: &HashMap<String, String>,
    overrides: &Overrides,
) -> Result<Config, ConfigError> {
    let mut merged: toml::Table = DEFAULTS.parse().expect("embedded defaults are valid TOML");
    let mut origins: Vec<(String, String)> = Vec::new();

    let file_name = file.map(|p| p.display().to_string());
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    source_name: path.display().to_string(),
                    message: e.to_string(),
                })?;
        merge(&mut merged, table);
    }

    let mut env_vars: Vec<(&String, &String)> = env.iter().collect();
    env_vars.sort();
    for (name, raw) in env_vars {
        let path: Vec<String> = if let Some(rest) = name.strip_prefix(ENV_PREFIX) {
            rest.split("__").map(|s| s.to_ascii_lowercase()).collect()
        } else {
            match name.as_str() {
                "DEJA_PORT" => vec!["server".into(), "port".into()],
                "DEJA_HOST" => vec!["server".into(), "host".into()],
                "DEJA_DATA_DIR" => vec!["server".into(), "data_dir".into()],
                "DEJA_ADMIN_TOKEN" => vec!["admin".into(), "token".into()],
                _ => continue,
            }
        };
        if path.iter().any(|s| s.is_empty()) {
            return Err(ConfigError::Env {
                var: name.clone(),
                message: "empty path segment (use DEJA__SECTION__KEY)".into(),
            });
        }
        set_path(&mut merged, &path, env_value(raw)).map_err(|message| ConfigError::Env {
            var: name.clone(),
            message,
        })?;
        origins.push((path.join("."), name.clone()));
    }

    if let Some(h) = &overrides.host {
        set_path(
            &mut merged,
            &["server".into(), "host".into()],
            toml::Value::String(h.clone()),
        )
        .expect("server is a table");
    }
    if let Some(p) = overrides.port {
        set_path(
            &mut merged,
            &["server".into(), "port".into()],
            toml::Value::Integer(p.into()),
        )
        .expect("server is a table");
    }
    if let Some(d) = &overrides.data_dir {
        let v = toml::Value::String(d.display().to_string());
        set_path(&mut merged, &["server".into(), "data_dir".into()], v).expect("server is a table");
    }
    if let Some(f) = overrides.log_format {
        let v = toml::Value::String(if f == LogFormat::Json { "json" } else { "text" }.into());
        set_path(&mut merged, &["telemetry".into(), "log_format".into()], v)
            .expect("telemetry is a table");
    }

    let source_for = |path: &str| -> String {
        origins
            .iter()
            .rev()
            .find(|(p, _)| path == p || path.starts_with(&format!("{p}.")) || p.starts_with(path))
            .map(|(_, var)| format!("environment variable {var}"))
            .or_else(|| file_name.clone())
            .unwrap_or_else(|| "built-in defaults".into())
    };

    let mut config: Config =
        serde_path_to_error::deserialize(toml::Value::Table(merged)).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            ConfigError::Invalid {
                source_name: source_for(&path),
                message: if is_secret_path(&path) {
                    without_values(&message)
                } else {
                    message
                },
                path,
            }
        })?;

    resolve_secrets(&mut config, env).map_err(|(path, message)| ConfigError::Invalid {
        source_name: source_for(&path),
        path,
        message,
    })?;
    validate(&config).map_err(|(path, message)| ConfigError::Invalid {
        source_name: source_for(&path),
        path,
        message,
    })?;
    Ok(config)
}

/// Whether a config path names a secret-bearing field (or something inside one): its
/// value must never be echoed, whatever the error.
fn is_secret_path(path: &str) -> bool {
    const SECRET_WORDS: [&str; 6] = ["key", "token", "secret", "password", "credential", "auth"];
    path.split(['.', '[', ']'])
        .map(str::to_ascii_lowercase)
        .any(|seg| SECRET_WORDS.iter().any(|w| seg.contains(w)))
}

/// A deserialisation message with every quoted or literal value removed: serde writes
/// values as `string "..."`, `` `...` `` or after `invalid value: `; keep only the kind
/// of error and what was expected.
fn without_values(message: &str) -> String {
    let expected = message
        .find("expected")
        .map(|i| message[i..].lines().next().unwrap_or_default().trim_end());
    let kind = if message.starts_with("invalid type") {
        "invalid type (value hidden: secret field)"
    } else if message.starts_with("missing field") || message.starts_with("unknown field") {
        // Field names, not values: safe and useful.
        return message.to_owned();
    } else {
        "invalid value (value hidden: secret field)"
    };
    match expected {
        Some(e) if !e.contains('"') && !e.contains('`') => format!("{kind}, {e}"),
        _ => kind.to_owned(),
    }
}

/// An env var's value: a TOML scalar/array when it parses as one, else a plain string.
fn env_value(raw: &str) -> toml::Value {
    match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut cur = table;
    for seg in parents {
        let entry = cur
            .entry(seg.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(format!("`{seg}` is not a section")),
        };
    }
    cur.insert(last.clone(), value);
    Ok(())
}

fn resolve_secret(
    secret: &mut Secret,
    path: String,
    env: &HashMap<String, String>,
) -> Result<(), (String, String)> {
    if let Some(name) = secret.env_reference() {
        match env.get(name) {
            Some(v) if !v.is_empty() => *secret = Secret::new(v.as_str()),
            _ => return Err((path, format!("environment variable {name} is not set"))),
        }
    }
    Ok(())
}

fn resolve_secrets(
    config: &mut Config,
    env: &HashMap<String, String>,
) -> Result<(), (String, String)> {
    if let Some(t) = config.admin.token.as_mut() {
        resolve_secret(t, "admin.token".into(), env)?;
    }
    for (id, p) in config.providers.iter_mut() {
        if let Some(k) = p.api_key.as_mut() {
            resolve_secret(k, format!("providers.{id}.api_key"), env)?;
        }
        for (i, k) in p.keys.iter_mut().enumerate() {
            resolve_secret(&mut k.key, format!("providers.{id}.keys[{i}].key"), env)?;
        }
        // The kind's own secrets (Bedrock's AWS credentials), then what it takes from
        // the environment (AWS variables, GOOGLE_APPLICATION_CREDENTIALS).
        for (name, s) in p.settings_secrets_mut() {
            resolve_secret(s, format!("providers.{id}.{name}"), env)?;
        }
        p.apply_env(env);
    }
    Ok(())
}

fn validate(config: &Config) -> Result<(), (String, String)> {
    for (id, p) in &config.providers {
        if id.is_empty() || id.contains('/') {
            return Err((
                format!("providers.{id}"),
                "a provider id must be non-empty and contain no `/`".into(),
            ));
        }
        p.validate_settings()
            .map_err(|(field, message)| (format!("providers.{id}.{field}"), message))?;
        match p.effective_base_url() {
            None => {
                return Err((
                    format!("providers.{id}.base_url"),
                    format!("required for kind `{}`", p.kind.as_str()),
                ))
            }
            Some(u) => {
                let parsed = url::Url::parse(&u).map_err(|e| {
                    (
                        format!("providers.{id}.base_url"),
                        format!("invalid URL `{u}`: {e}"),
                    )
                })?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err((
                        format!("providers.{id}.base_url"),
                        "expected an http(s) URL".into(),
                    ));
                }
            }
        }
        for (i, k) in p.keys.iter().enumerate() {
            if k.weight == 0 {
                return Err((
                    format!("providers.{id}.keys[{i}].weight"),
                    "expected a weight >= 1".into(),
                ));
            }
        }
        if p.kind.requires_key() && p.all_keys().is_empty() {
            return Err((
                format!("providers.{id}.api_key"),
                format!(
                    "kind `{}` needs an API key (api_key or keys)",
                    p.kind.as_str()
                ),
            ));
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(p.timeout_secs) || !positive(p.connect_timeout_secs) {
            return Err((
                format!("providers.{id}.timeout_secs"),
                "expected a positive number of seconds".into(),
            ));
        }
    }
    let dp = &config.routing.default_provider;
    if !dp.is_empty() && !config.providers.contains_key(dp) {
        return Err((
            "routing.default_provider".into(),
            format!("no provider named `{dp}` is configured"),
        ));
    }
    for (alias, target) in &config.routing.aliases {
        match target.split_once('/') {
            Some((p, m)) if config.providers.contains_key(p) && !m.is_empty() => {}
            _ => {
                return Err((
                    format!("routing.aliases.{alias}"),
                    format!(
                    "expected \"provider/model\" naming a configured provider, got \"{target}\""
                ),
                ))
            }
        }
    }
    config
        .cache
        .validate()
        .map_err(|e| ("cache".to_owned(), e.to_string()))?;
    config
        .embedder
        .validate()
        .map_err(|e| ("embedder".to_owned(), e.to_string()))?;
    if config.server.max_body_bytes == 0 {
        return Err((
            "server.max_body_bytes".into(),
            "expected a positive size".into(),
        ));
    }
    if config.server.body_timeout_secs == 0 {
        return Err((
            "server.body_timeout_secs".into(),
            "expected a positive number of seconds".into(),
        ));
    }
    if config.server.max_pending_body_bytes < config.server.max_body_bytes {
        return Err((
            "server.max_pending_body_bytes".into(),
            "expected at least server.max_body_bytes (one whole body must fit)".into(),
        ));
    }
    if !config.metrics.listen.is_empty() {
        config
            .metrics
            .listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| {
                (
                    "metrics.listen".to_owned(),
                    format!("expected host:port (e.g. 127.0.0.1:9100): {e}"),
                )
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_load() {
        let c = load(None, &env(&[]), &Overrides::default()).unwrap();
        assert_eq!(c.server.port, 8080);
        assert_eq!(c.server.host, "127.0.0.1");
        assert_eq!(c.server.max_body_bytes, 4 * 1024 * 1024);
        assert!(c.providers.is_empty());
    }

    #[test]
    fn file_then_env_then_flags() {
        let f = file("[server]\nport = 9000\nmax_body_bytes = 10\n[providers.groq]\nkind = \"groq\"\napi_key = \"env:MY_GROQ\"\n");
        let e = env(&[
            ("DEJA__SERVER__MAX_BODY_BYTES", "20"),
            ("MY_GROQ", "gsk-1"),
            ("DEJA_PORT", "9100"),
        ]);
        let c = load(Some(f.path()), &e, &Overrides::default()).unwrap();
        assert_eq!(c.server.port, 9100);
        assert_eq!(c.server.max_body_bytes, 20);
        assert_eq!(
            c.providers["groq"].api_key.as_ref().unwrap().expose(),
            "gsk-1"
        );
        assert_eq!(
            c.providers["groq"].effective_base_url().unwrap(),
            "https://api.groq.com/openai/v1"
        );
        let o = Overrides {
            port: Some(1234),
            ..Default::default()
        };
        assert_eq!(load(Some(f.path()), &e, &o).unwrap().server.port, 1234);
    }

    #[test]
    fn unknown_key_names_file_path_and_expected() {
        let f = file("[server]\nprot = 9000\n");
        let err = load(Some(f.path()), &env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(&f.path().display().to_string()), "{err}");
        assert!(
            err.contains("server.prot") || err.contains("`prot`"),
            "{err}"
        );
        assert!(err.contains("expected one of"), "{err}");
    }

    #[test]
    fn unknown_env_key_names_the_variable() {
        let err = load(
            None,
            &env(&[("DEJA__SERVER__NOPE", "1")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("DEJA__SERVER__NOPE"), "{err}");
    }

    #[test]
    fn missing_secret_env_is_an_error_without_leaking() {
        let f = file("[providers.o]\nkind = \"openai\"\napi_key = \"env:NOT_SET_ANYWHERE\"\n");
        let err = load(Some(f.path()), &env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("providers.o.api_key") && err.contains("NOT_SET_ANYWHERE"),
            "{err}"
        );
    }

    #[test]
    fn config_errors_never_echo_a_secret_value() {
        let cases = [
            "[providers.o]\nkind = \"openai\"\nkeys = \"sk-live-SECRETVALUE\"\n",
            "[providers.o]\nkind = \"openai\"\napi_key = [\"sk-live-SECRETVALUE\"]\n",
            "[providers.o]\nkind = \"openai\"\napi_key = 12345678\n",
            "[providers.o]\nkind = \"openai\"\nkeys = [{ key = 12345678 }]\n",
            "[providers.o]\nkind = \"openai\"\nkeys = [{ key = \"sk-live-SECRETVALUE\", weight = \"sk-live-SECRETVALUE\" }]\n",
            "[admin]\ntoken = [\"sk-live-SECRETVALUE\"]\n",
            "[providers.b]\nkind = \"bedrock\"\naws_secret_access_key = { v = \"sk-live-SECRETVALUE\" }\n",
        ];
        for text in cases {
            let f = file(text);
            let err = load(Some(f.path()), &env(&[]), &Overrides::default())
                .expect_err(text)
                .to_string();
            assert!(!err.contains("SECRETVALUE"), "{text} -> {err}");
            assert!(!err.contains("12345678"), "{text} -> {err}");
            assert!(
                err.contains("providers.") || err.contains("admin."),
                "{err}"
            );
        }
        // The same from the environment.
        let err = load(
            None,
            &env(&[("DEJA__ADMIN__TOKEN", "[\"sk-live-SECRETVALUE\"]")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("SECRETVALUE"), "{err}");
        // A non-secret field still shows the value, which helps.
        let f = file("[server]\nport = \"eighty\"\n");
        let err = load(Some(f.path()), &env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("eighty"), "{err}");
    }

    #[test]
    fn secrets_never_appear_in_debug() {
        let f = file("[providers.o]\nkind = \"openai\"\napi_key = \"sk-abcdef\"\n");
        let c = load(
            Some(f.path()),
            &env(&[("DEJA_ADMIN_TOKEN", "tok-123")]),
            &Overrides::default(),
        )
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("sk-abcdef") && !dbg.contains("tok-123"),
            "{dbg}"
        );
    }

    #[test]
    fn invalid_values_are_rejected_with_their_path() {
        for (text, path) in [
            ("[server]\nport = \"x\"\n", "server.port"),
            (
                "[providers.c]\nkind = \"openai-compatible\"\n",
                "providers.c.base_url",
            ),
            ("[providers.c]\nkind = \"nosuch\"\n", "providers.c.kind"),
            (
                "[routing]\ndefault_provider = \"ghost\"\n",
                "routing.default_provider",
            ),
            (
                "[routing.aliases]\nfast = \"ghost/m\"\n",
                "routing.aliases.fast",
            ),
            (
                "[providers.o]\nkind = \"ollama\"\nkeys = [{ key = \"a\", weight = 0 }]\n",
                "providers.o.keys[0].weight",
            ),
        ] {
            let f = file(text);
            let err = load(Some(f.path()), &env(&[]), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(path), "{text:?} -> {err}");
        }
    }
}
