//! The closed set of provider kinds deja knows (the `kind` key of `[providers.NAME]`),
//! with their defaults.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    #[serde(rename = "openai")]
    OpenAi,
    Groq,
    Mistral,
    Together,
    #[serde(rename = "deepseek")]
    DeepSeek,
    Xai,
    Fireworks,
    #[serde(rename = "openrouter")]
    OpenRouter,
    Perplexity,
    Cerebras,
    Ollama,
    Vllm,
    #[serde(rename = "lmstudio")]
    LmStudio,
    /// Any server speaking the OpenAI API at a configured `base_url`.
    #[serde(rename = "openai-compatible")]
    OpenAiCompatible,
    Anthropic,
    /// AWS Bedrock; the endpoint follows `region` (see [`ProviderKind::default_base_url`]).
    Bedrock,
    Cohere,
    /// Azure OpenAI (`https://{resource}.openai.azure.com`).
    Azure,
    /// Google Gemini API (API key).
    Gemini,
    /// Google Vertex AI (service-account credentials, regional endpoint).
    Vertex,
}

impl ProviderKind {
    pub const ALL: &'static [ProviderKind] = &[
        ProviderKind::OpenAi,
        ProviderKind::Groq,
        ProviderKind::Mistral,
        ProviderKind::Together,
        ProviderKind::DeepSeek,
        ProviderKind::Xai,
        ProviderKind::Fireworks,
        ProviderKind::OpenRouter,
        ProviderKind::Perplexity,
        ProviderKind::Cerebras,
        ProviderKind::Ollama,
        ProviderKind::Vllm,
        ProviderKind::LmStudio,
        ProviderKind::OpenAiCompatible,
        ProviderKind::Anthropic,
        ProviderKind::Bedrock,
        ProviderKind::Cohere,
        ProviderKind::Azure,
        ProviderKind::Gemini,
        ProviderKind::Vertex,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Groq => "groq",
            ProviderKind::Mistral => "mistral",
            ProviderKind::Together => "together",
            ProviderKind::DeepSeek => "deepseek",
            ProviderKind::Xai => "xai",
            ProviderKind::Fireworks => "fireworks",
            ProviderKind::OpenRouter => "openrouter",
            ProviderKind::Perplexity => "perplexity",
            ProviderKind::Cerebras => "cerebras",
            ProviderKind::Ollama => "ollama",
            ProviderKind::Vllm => "vllm",
            ProviderKind::LmStudio => "lmstudio",
            ProviderKind::OpenAiCompatible => "openai-compatible",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Bedrock => "bedrock",
            ProviderKind::Cohere => "cohere",
            ProviderKind::Azure => "azure",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Vertex => "vertex",
        }
    }

    /// The public endpoint (including the `/v1`-style prefix); `None` where it must be configured.
    pub fn default_base_url(self) -> Option<&'static str> {
        Some(match self {
            ProviderKind::OpenAi => "https://api.openai.com/v1",
            ProviderKind::Groq => "https://api.groq.com/openai/v1",
            ProviderKind::Mistral => "https://api.mistral.ai/v1",
            ProviderKind::Together => "https://api.together.xyz/v1",
            ProviderKind::DeepSeek => "https://api.deepseek.com/v1",
            ProviderKind::Xai => "https://api.x.ai/v1",
            ProviderKind::Fireworks => "https://api.fireworks.ai/inference/v1",
            ProviderKind::OpenRouter => "https://openrouter.ai/api/v1",
            ProviderKind::Perplexity => "https://api.perplexity.ai",
            ProviderKind::Cerebras => "https://api.cerebras.ai/v1",
            ProviderKind::Ollama => "http://127.0.0.1:11434/v1",
            ProviderKind::Vllm => "http://127.0.0.1:8000/v1",
            ProviderKind::LmStudio => "http://127.0.0.1:1234/v1",
            ProviderKind::Anthropic => "https://api.anthropic.com/v1",
            ProviderKind::Cohere => "https://api.cohere.com",
            // Regional: `https://bedrock-runtime.{region}.amazonaws.com`, built from the
            // provider's `region` by `ProviderConfig::effective_base_url`.
            ProviderKind::Gemini => "https://generativelanguage.googleapis.com/v1beta",
            // Built from `resource` (Azure) or `location` (Vertex AI) by the config.
            ProviderKind::OpenAiCompatible
            | ProviderKind::Bedrock
            | ProviderKind::Azure
            | ProviderKind::Vertex => return None,
        })
    }

    /// Environment variables the provider's own SDK reads its key from, first wins.
    pub fn key_env_vars(self) -> Option<&'static [&'static str]> {
        Some(match self {
            ProviderKind::OpenAi => &["OPENAI_API_KEY"],
            ProviderKind::Groq => &["GROQ_API_KEY"],
            ProviderKind::Mistral => &["MISTRAL_API_KEY"],
            ProviderKind::Together => &["TOGETHER_API_KEY"],
            ProviderKind::DeepSeek => &["DEEPSEEK_API_KEY"],
            ProviderKind::Xai => &["XAI_API_KEY"],
            ProviderKind::Fireworks => &["FIREWORKS_API_KEY"],
            ProviderKind::OpenRouter => &["OPENROUTER_API_KEY"],
            ProviderKind::Perplexity => &["PERPLEXITY_API_KEY", "PPLX_API_KEY"],
            ProviderKind::Cerebras => &["CEREBRAS_API_KEY"],
            ProviderKind::Anthropic => &["ANTHROPIC_API_KEY"],
            ProviderKind::Cohere => &["CO_API_KEY", "COHERE_API_KEY"],
            // Bedrock signs with AWS credentials (AWS_ACCESS_KEY_ID, ...), not an API key.
            ProviderKind::Azure => &["AZURE_OPENAI_API_KEY"],
            ProviderKind::Gemini => &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
            // Vertex AI authenticates with a service account, not a key.
            ProviderKind::Bedrock
            | ProviderKind::Vertex
            | ProviderKind::Ollama
            | ProviderKind::Vllm
            | ProviderKind::LmStudio
            | ProviderKind::OpenAiCompatible => return None,
        })
    }

    /// Environment variable overriding the base URL in zero-config mode.
    pub fn base_url_env_var(self) -> Option<&'static str> {
        match self {
            ProviderKind::OpenAi => Some("OPENAI_BASE_URL"),
            ProviderKind::Groq => Some("GROQ_BASE_URL"),
            ProviderKind::Mistral => Some("MISTRAL_BASE_URL"),
            ProviderKind::Cohere => Some("CO_API_URL"),
            ProviderKind::Azure => Some("AZURE_OPENAI_ENDPOINT"),
            _ => None,
        }
    }

    /// Hosted APIs refuse requests without a key; local servers do not need one.
    pub fn requires_key(self) -> bool {
        self.key_env_vars().is_some()
    }
}
