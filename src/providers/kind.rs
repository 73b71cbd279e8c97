//! Which wire format serves each provider kind.

use crate::config::ProviderKind;

/// Which wire format an adapter speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// OpenAI's Chat Completions / Completions / Embeddings / Models API.
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
    /// AWS Bedrock Converse / ConverseStream (SigV4-signed, binary event stream).
    Bedrock,
    /// Cohere's v2 Chat and Embed API.
    Cohere,
    /// Azure OpenAI: the OpenAI body at per-deployment URLs with `api-version` and `api-key`.
    Azure,
    /// Google's `generateContent` format (Gemini API and Vertex AI).
    Gemini,
}

/// The wire format a provider of `kind` speaks.
pub fn wire_format(kind: ProviderKind) -> WireFormat {
    match kind {
        ProviderKind::OpenAi
        | ProviderKind::Groq
        | ProviderKind::Mistral
        | ProviderKind::Together
        | ProviderKind::DeepSeek
        | ProviderKind::Xai
        | ProviderKind::Fireworks
        | ProviderKind::OpenRouter
        | ProviderKind::Perplexity
        | ProviderKind::Cerebras
        | ProviderKind::Ollama
        | ProviderKind::Vllm
        | ProviderKind::LmStudio
        | ProviderKind::OpenAiCompatible => WireFormat::OpenAi,
        ProviderKind::Anthropic => WireFormat::Anthropic,
        ProviderKind::Bedrock => WireFormat::Bedrock,
        ProviderKind::Cohere => WireFormat::Cohere,
        ProviderKind::Azure => WireFormat::Azure,
        ProviderKind::Gemini | ProviderKind::Vertex => WireFormat::Gemini,
    }
}
