//! The OpenAI wire format: OpenAI itself and every OpenAI-compatible server (Groq,
//! Mistral, Together, DeepSeek, xAI, Fireworks, OpenRouter, Perplexity, Cerebras, Ollama,
//! vLLM, LM Studio, custom). Requests and responses pass through unchanged but for `model`.

use super::{
    passthrough_stream, ChunkStream, Lease, ProviderAdapter, ProviderError, ProviderRequest,
};
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAiAdapter;

impl ProviderAdapter for OpenAiAdapter {
    async fn build_request(
        &self,
        lease: &Lease,
        req: &ProviderRequest,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let body = serde_json::to_vec(&req.body).map_err(|e| ProviderError::InvalidResponse {
            provider: lease.provider.clone(),
            message: format!("cannot encode request: {e}"),
        })?;
        let b = match lease.endpoint_url(req.endpoint) {
            Some(url) => lease.client.post(url),
            None => lease
                .client
                .post(format!("{}{}", lease.base_url, req.endpoint.path())),
        };
        let mut b = b
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if req.stream {
            b = b.header(reqwest::header::ACCEPT, "text/event-stream");
        }
        Ok(lease.authorize(b))
    }

    fn translate_response(
        &self,
        _provider: &Arc<str>,
        _req: &ProviderRequest,
        body: Bytes,
    ) -> Result<Bytes, ProviderError> {
        Ok(body)
    }

    fn translate_stream(
        &self,
        provider: &Arc<str>,
        _req: &ProviderRequest,
        resp: reqwest::Response,
    ) -> ChunkStream {
        passthrough_stream(provider, resp)
    }

    fn translate_error(&self, provider: &Arc<str>, status: u16, body: Bytes) -> ProviderError {
        ProviderError::Upstream {
            provider: provider.clone(),
            status,
            body: openai_error_body(provider, status, body),
        }
    }

    async fn list_models(&self, lease: &Lease) -> Result<Vec<String>, ProviderError> {
        let url = format!("{}/models", lease.base_url);
        let v =
            super::fetch_model_list(self, lease, lease.authorize(lease.client.get(url))).await?;
        Ok(super::names_in(&v, "data", "id"))
    }
}

/// Keep an OpenAI-shaped error body as it is; wrap anything else in that shape with the
/// provider's text, so the client always sees `{"error": {...}}`.
pub(crate) fn openai_error_body(provider: &str, status: u16, body: Bytes) -> Bytes {
    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
        if v.get("error").is_some_and(Value::is_object) {
            return body;
        }
    }
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    let snippet: String = text.chars().take(500).collect();
    let message = if snippet.is_empty() {
        format!("provider `{provider}` answered HTTP {status}")
    } else {
        format!("provider `{provider}` answered HTTP {status}: {snippet}")
    };
    let kind = super::native_common::error_type_for_status(status);
    Bytes::from(
        json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_shaped_errors_pass_unchanged() {
        let body = Bytes::from_static(br#"{"error":{"message":"bad key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#);
        assert_eq!(openai_error_body("p", 401, body.clone()), body);
    }

    #[test]
    fn other_errors_are_wrapped_with_the_text() {
        let out = openai_error_body(
            "p",
            503,
            Bytes::from_static(b"<html>Service Unavailable</html>"),
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("503") && msg.contains("Service Unavailable"),
            "{msg}"
        );
        assert_eq!(v["error"]["type"], "upstream_error");
    }

    #[test]
    fn plain_text_errors_are_typed_by_status() {
        for (status, kind) in [
            (429, "rate_limit_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (400, "invalid_request_error"),
            (502, "upstream_error"),
        ] {
            let out = openai_error_body("p", status, Bytes::from_static(b"slow down"));
            let v: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v["error"]["type"], kind, "{status}");
        }
    }
}
