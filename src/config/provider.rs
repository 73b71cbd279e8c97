//! `[providers.NAME]`: one upstream provider. The table key is the provider id used in
//! `NAME/model` addressing.
//!
//! The file format is flat (every key directly under `[providers.NAME]`, `kind` naming
//! the provider kind); in memory a [`ProviderConfig`] is the settings every kind has plus
//! [`ProviderSettings`], an enum tagged by `kind` holding what only that kind has
//! ([`AnthropicConfig`], [`BedrockConfig`], [`AzureConfig`], [`VertexConfig`]). The file
//! is read through one flat `deny_unknown_fields` struct rather than a serde
//! internally-tagged enum: serde buffers an internally-tagged enum's fields before
//! choosing the variant, which loses the `providers.x.field` path of errors and the
//! "expected one of" list of an unknown key. A key of another kind (`region` on an
//! `openai` provider) is accepted and ignored, as before.

use super::{ProviderKind, Secret};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// The `api-version` deja sends to Azure OpenAI unless `api_version` says otherwise
/// (a GA data-plane inference version).
pub const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";
/// The region deja uses for Vertex AI unless `location` says otherwise.
pub const VERTEX_DEFAULT_LOCATION: &str = "us-central1";

/// One upstream provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "RawProviderConfig")]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// Defaults to the kind's public endpoint; required for `openai-compatible`.
    pub base_url: Option<String>,
    /// Shorthand for a single key of weight 1.
    pub api_key: Option<Secret>,
    /// Several keys, chosen per request by weighted random.
    pub keys: Vec<KeyConfig>,
    /// Models this provider serves (bare names). Merged with the provider's own list
    /// when `discover_models` is on.
    pub models: Vec<String>,
    /// Ask the provider's `GET /models` at start-up.
    pub discover_models: bool,
    /// Whole-request timeout (non-streaming) / time to response headers (streaming).
    pub timeout_secs: f64,
    pub connect_timeout_secs: f64,
    /// Extra headers sent with every request to this provider.
    pub headers: BTreeMap<String, String>,
    /// What only this provider's kind has; the variant follows `kind`.
    pub settings: ProviderSettings,
}

/// The settings of one provider kind, tagged by `kind`.
#[derive(Debug, Clone)]
pub enum ProviderSettings {
    /// Kinds with no settings of their own (the OpenAI-compatible kinds, Cohere, Gemini).
    Plain,
    Anthropic(AnthropicConfig),
    Bedrock(BedrockConfig),
    Azure(AzureConfig),
    Vertex(VertexConfig),
}

impl ProviderSettings {
    /// The defaults of `kind`.
    pub fn for_kind(kind: ProviderKind) -> Self {
        match kind {
            ProviderKind::Anthropic => ProviderSettings::Anthropic(AnthropicConfig::default()),
            ProviderKind::Bedrock => ProviderSettings::Bedrock(BedrockConfig::default()),
            ProviderKind::Azure => ProviderSettings::Azure(AzureConfig::default()),
            ProviderKind::Vertex => ProviderSettings::Vertex(VertexConfig::default()),
            _ => ProviderSettings::Plain,
        }
    }
}

/// Anthropic (`kind = "anthropic"`).
#[derive(Debug, Clone, Default)]
pub struct AnthropicConfig {
    /// The `anthropic-version` header (default 2023-06-01).
    pub anthropic_version: Option<String>,
    /// `max_tokens` sent when the request sets none; Anthropic requires one (default 4096).
    pub default_max_tokens: Option<u64>,
}

/// AWS Bedrock (`kind = "bedrock"`); unset values fall back to AWS_REGION /
/// AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN.
#[derive(Debug, Clone, Default)]
pub struct BedrockConfig {
    /// AWS region: signs requests and picks `https://bedrock-runtime.{region}.amazonaws.com`.
    pub region: Option<String>,
    pub aws_access_key_id: Option<Secret>,
    pub aws_secret_access_key: Option<Secret>,
    pub aws_session_token: Option<Secret>,
}

impl BedrockConfig {
    /// `https://bedrock-runtime.{region}.amazonaws.com`, when there is a region.
    pub fn regional_base_url(&self) -> Option<String> {
        self.region
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(|r| format!("https://bedrock-runtime.{r}.amazonaws.com"))
    }

    /// Fill an unset region and credentials from the standard AWS variables. Keys from
    /// the environment come as a pair (with their session token); a configured key is
    /// never mixed with an environment secret.
    pub fn apply_env(&mut self, env: &HashMap<String, String>) {
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty());
        if self.region.is_none() {
            self.region = get("AWS_REGION")
                .or_else(|| get("AWS_DEFAULT_REGION"))
                .cloned();
        }
        if self.aws_access_key_id.is_none() && self.aws_secret_access_key.is_none() {
            if let (Some(id), Some(secret)) =
                (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY"))
            {
                self.aws_access_key_id = Some(Secret::new(id.as_str()));
                self.aws_secret_access_key = Some(Secret::new(secret.as_str()));
                if self.aws_session_token.is_none() {
                    self.aws_session_token =
                        get("AWS_SESSION_TOKEN").map(|t| Secret::new(t.as_str()));
                }
            }
        }
    }

    /// `(field, message)` for the first thing a Bedrock provider misses.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.region.as_deref().is_none_or(str::is_empty) {
            return Err((
                "region".into(),
                "kind `bedrock` needs a region (region, AWS_REGION or AWS_DEFAULT_REGION)".into(),
            ));
        }
        if self.aws_access_key_id.is_none() || self.aws_secret_access_key.is_none() {
            return Err((
                "aws_access_key_id".into(),
                "kind `bedrock` needs AWS credentials (aws_access_key_id and \
                 aws_secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Azure OpenAI (`kind = "azure"`).
#[derive(Debug, Clone, Default)]
pub struct AzureConfig {
    /// The resource name; the base URL becomes `https://{resource}.openai.azure.com`.
    pub resource: Option<String>,
    /// The `api-version` query parameter (default [`AZURE_DEFAULT_API_VERSION`]).
    pub api_version: Option<String>,
    /// Send the key as `api-key` (default) or as `Authorization: Bearer` (an Entra token).
    pub auth: Option<AzureAuth>,
    /// Model name -> deployment name; unmapped models are used as deployment names.
    pub deployments: BTreeMap<String, String>,
}

/// How deja authenticates to Azure OpenAI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AzureAuth {
    /// `api-key: KEY`.
    #[default]
    ApiKey,
    /// `Authorization: Bearer TOKEN` (a Microsoft Entra ID access token).
    Bearer,
}

/// Google Vertex AI (`kind = "vertex"`).
#[derive(Debug, Clone, Default)]
pub struct VertexConfig {
    /// The Google Cloud project id (default: the service account's `project_id`).
    pub project: Option<String>,
    /// The region (default `us-central1`); the base URL becomes
    /// `https://{location}-aiplatform.googleapis.com/v1`.
    pub location: Option<String>,
    /// The service-account JSON key file (default: env `GOOGLE_APPLICATION_CREDENTIALS`).
    pub credentials_file: Option<PathBuf>,
}

impl VertexConfig {
    pub fn base_url(&self) -> String {
        match self.location.as_deref() {
            // The global endpoint has no region prefix.
            Some("global") => "https://aiplatform.googleapis.com/v1".to_owned(),
            loc => format!(
                "https://{}-aiplatform.googleapis.com/v1",
                loc.unwrap_or(VERTEX_DEFAULT_LOCATION)
            ),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub key: Secret,
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_true() -> bool {
    true
}
fn default_timeout_secs() -> f64 {
    600.0
}
fn default_connect_timeout_secs() -> f64 {
    10.0
}
fn default_weight() -> u32 {
    1
}

/// `[providers.NAME]` as written: every kind's keys side by side.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProviderConfig {
    kind: ProviderKind,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    api_key: Option<Secret>,
    #[serde(default)]
    keys: Vec<KeyConfig>,
    #[serde(default)]
    models: Vec<String>,
    #[serde(default = "default_true")]
    discover_models: bool,
    #[serde(default = "default_timeout_secs")]
    timeout_secs: f64,
    #[serde(default = "default_connect_timeout_secs")]
    connect_timeout_secs: f64,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    // Anthropic
    #[serde(default)]
    anthropic_version: Option<String>,
    #[serde(default)]
    default_max_tokens: Option<u64>,
    // Bedrock
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    aws_access_key_id: Option<Secret>,
    #[serde(default)]
    aws_secret_access_key: Option<Secret>,
    #[serde(default)]
    aws_session_token: Option<Secret>,
    // Azure
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    auth: Option<AzureAuth>,
    #[serde(default)]
    deployments: BTreeMap<String, String>,
    // Vertex AI
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    credentials_file: Option<PathBuf>,
}

impl From<RawProviderConfig> for ProviderConfig {
    fn from(r: RawProviderConfig) -> Self {
        let settings = match ProviderSettings::for_kind(r.kind) {
            ProviderSettings::Plain => ProviderSettings::Plain,
            ProviderSettings::Anthropic(_) => ProviderSettings::Anthropic(AnthropicConfig {
                anthropic_version: r.anthropic_version,
                default_max_tokens: r.default_max_tokens,
            }),
            ProviderSettings::Bedrock(_) => ProviderSettings::Bedrock(BedrockConfig {
                region: r.region,
                aws_access_key_id: r.aws_access_key_id,
                aws_secret_access_key: r.aws_secret_access_key,
                aws_session_token: r.aws_session_token,
            }),
            ProviderSettings::Azure(_) => ProviderSettings::Azure(AzureConfig {
                resource: r.resource,
                api_version: r.api_version,
                auth: r.auth,
                deployments: r.deployments,
            }),
            ProviderSettings::Vertex(_) => ProviderSettings::Vertex(VertexConfig {
                project: r.project,
                location: r.location,
                credentials_file: r.credentials_file,
            }),
        };
        ProviderConfig {
            kind: r.kind,
            base_url: r.base_url,
            api_key: r.api_key,
            keys: r.keys,
            models: r.models,
            discover_models: r.discover_models,
            timeout_secs: r.timeout_secs,
            connect_timeout_secs: r.connect_timeout_secs,
            headers: r.headers,
            settings,
        }
    }
}

impl ProviderConfig {
    /// A provider of `kind` with its defaults, as discovery creates them.
    pub fn new(kind: ProviderKind) -> Self {
        ProviderConfig {
            kind,
            base_url: None,
            api_key: None,
            keys: Vec::new(),
            models: Vec::new(),
            discover_models: true,
            timeout_secs: default_timeout_secs(),
            connect_timeout_secs: default_connect_timeout_secs(),
            headers: BTreeMap::new(),
            settings: ProviderSettings::for_kind(kind),
        }
    }

    /// The base URL in force: configured, else the kind's default.
    pub fn effective_base_url(&self) -> Option<String> {
        self.base_url
            .clone()
            .or_else(|| self.kind.default_base_url().map(str::to_owned))
            .or_else(|| match &self.settings {
                ProviderSettings::Bedrock(b) => b.regional_base_url(),
                ProviderSettings::Azure(a) => a
                    .resource
                    .as_ref()
                    .map(|r| format!("https://{r}.openai.azure.com")),
                ProviderSettings::Vertex(v) => Some(v.base_url()),
                ProviderSettings::Plain | ProviderSettings::Anthropic(_) => None,
            })
            .map(|u| u.trim_end_matches('/').to_owned())
    }

    /// Every key with its weight (`api_key` counts as weight 1).
    pub fn all_keys(&self) -> Vec<KeyConfig> {
        let mut keys = self.keys.clone();
        if let Some(k) = &self.api_key {
            keys.insert(
                0,
                KeyConfig {
                    key: k.clone(),
                    weight: 1,
                },
            );
        }
        keys
    }

    /// The kind's own secrets other than the API keys, by field name.
    pub fn settings_secrets_mut(&mut self) -> Vec<(&'static str, &mut Secret)> {
        match &mut self.settings {
            ProviderSettings::Bedrock(b) => [
                ("aws_access_key_id", b.aws_access_key_id.as_mut()),
                ("aws_secret_access_key", b.aws_secret_access_key.as_mut()),
                ("aws_session_token", b.aws_session_token.as_mut()),
            ]
            .into_iter()
            .filter_map(|(name, s)| s.map(|s| (name, s)))
            .collect(),
            _ => Vec::new(),
        }
    }

    /// Fill what the kind takes from the environment when unset: AWS region and
    /// credentials (Bedrock), `GOOGLE_APPLICATION_CREDENTIALS` (Vertex AI).
    pub fn apply_env(&mut self, env: &HashMap<String, String>) {
        match &mut self.settings {
            ProviderSettings::Bedrock(b) => b.apply_env(env),
            ProviderSettings::Vertex(v) if v.credentials_file.is_none() => {
                v.credentials_file = env
                    .get("GOOGLE_APPLICATION_CREDENTIALS")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from);
            }
            _ => {}
        }
    }

    /// `(field, message)` for the first thing the kind's own settings miss.
    pub fn validate_settings(&self) -> Result<(), (String, String)> {
        match &self.settings {
            ProviderSettings::Bedrock(b) => b.validate(),
            _ => Ok(()),
        }
    }

    pub fn anthropic(&self) -> Option<&AnthropicConfig> {
        match &self.settings {
            ProviderSettings::Anthropic(a) => Some(a),
            _ => None,
        }
    }

    pub fn bedrock(&self) -> Option<&BedrockConfig> {
        match &self.settings {
            ProviderSettings::Bedrock(b) => Some(b),
            _ => None,
        }
    }

    pub fn azure(&self) -> Option<&AzureConfig> {
        match &self.settings {
            ProviderSettings::Azure(a) => Some(a),
            _ => None,
        }
    }

    pub fn vertex(&self) -> Option<&VertexConfig> {
        match &self.settings {
            ProviderSettings::Vertex(v) => Some(v),
            _ => None,
        }
    }
}
