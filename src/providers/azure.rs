//! Azure OpenAI: the OpenAI request and response bodies, sent to per-deployment URLs
//! `{base}/openai/deployments/{deployment}/chat/completions?api-version=...` (also
//! `/completions` and `/embeddings`) with an `api-key` header, or `Authorization: Bearer`
//! with a Microsoft Entra ID token when the config says `auth = "bearer"`.
//!
//! Reference: <https://learn.microsoft.com/en-us/azure/ai-services/openai/reference>.
//! Azure adds `prompt_filter_results` / `content_filter_results` to the OpenAI shapes and
//! reports a filtered prompt as HTTP 400 with `error.code = "content_filter"`; both pass
//! through unchanged (an error object without `type` gets one, for OpenAI's SDKs).

use super::openai::openai_error_body;
use super::{
    passthrough_stream, ChunkStream, Endpoint, Lease, ProviderAdapter, ProviderError,
    ProviderRequest,
};
use crate::config::{AzureAuth, ProviderConfig, AZURE_DEFAULT_API_VERSION};
use bytes::Bytes;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct AzureAdapter {
    /// Model name -> deployment name.
    deployments: Arc<BTreeMap<String, String>>,
    api_version: Arc<str>,
    auth: AzureAuth,
}

impl AzureAdapter {
    pub fn new(cfg: &ProviderConfig) -> Self {
        let cfg = cfg.azure().cloned().unwrap_or_default();
        AzureAdapter {
            deployments: Arc::new(cfg.deployments),
            api_version: cfg
                .api_version
                .as_deref()
                .unwrap_or(AZURE_DEFAULT_API_VERSION)
                .into(),
            auth: cfg.auth.unwrap_or_default(),
        }
    }

    /// The deployment serving `model`: mapped in config, else the model name itself.
    pub fn deployment_for<'a>(&'a self, model: &'a str) -> &'a str {
        self.deployments
            .get(model)
            .map(String::as_str)
            .unwrap_or(model)
    }

    /// `{base}/openai/deployments/{deployment}{path}?api-version=...`, the deployment
    /// percent-encoded as one path segment.
    pub fn url(
        &self,
        base_url: &str,
        deployment: &str,
        endpoint: Endpoint,
    ) -> Result<url::Url, String> {
        let base = base_url.trim_end_matches('/');
        let base = base.strip_suffix("/openai").unwrap_or(base);
        let mut url =
            url::Url::parse(base).map_err(|e| format!("invalid base URL `{base}`: {e}"))?;
        {
            let mut segs = url
                .path_segments_mut()
                .map_err(|_| format!("base URL `{base}` cannot have a path"))?;
            segs.pop_if_empty().push("openai").push("deployments");
            segs.push(deployment);
            segs.extend(endpoint.path().trim_start_matches('/').split('/'));
        }
        url.query_pairs_mut()
            .append_pair("api-version", &self.api_version);
        Ok(url)
    }
}

impl ProviderAdapter for AzureAdapter {
    async fn build_request(
        &self,
        lease: &Lease,
        req: &ProviderRequest,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let deployment = self.deployment_for(&req.model);
        let url = self
            .url(&lease.base_url, deployment, req.endpoint)
            .map_err(|message| ProviderError::InvalidResponse {
                provider: lease.provider.clone(),
                message,
            })?;
        let body = serde_json::to_vec(&req.body).map_err(|e| ProviderError::InvalidResponse {
            provider: lease.provider.clone(),
            message: format!("cannot encode request: {e}"),
        })?;
        let mut b = lease
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if req.stream {
            b = b.header(reqwest::header::ACCEPT, "text/event-stream");
        }
        Ok(self.authorize(lease, b))
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
            body: azure_error_body(provider, status, body),
        }
    }

    /// Azure's data plane lists base models, not deployments: deja reports the models
    /// mapped in `deployments`.
    async fn list_models(&self, _lease: &Lease) -> Result<Vec<String>, ProviderError> {
        Ok(self.deployments.keys().cloned().collect())
    }
}

impl AzureAdapter {
    fn authorize(&self, lease: &Lease, b: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match (&lease.key, self.auth) {
            (Some(k), AzureAuth::ApiKey) => b.header("api-key", k.expose()),
            (Some(_), AzureAuth::Bearer) => lease.authorize(b),
            (None, _) => b,
        }
    }
}

/// Azure's error bodies are OpenAI-shaped but for a missing `type` (and a string `code`
/// such as `"content_filter"` or `"429"`): add `type` from the status, keep the rest.
/// Bodies of another shape (the gateway's `{"statusCode": 401, "message": ...}`) are
/// wrapped as the OpenAI adapter does, keeping the message.
pub(crate) fn azure_error_body(provider: &str, status: u16, body: Bytes) -> Bytes {
    let Ok(mut v) = serde_json::from_slice::<Value>(&body) else {
        return openai_error_body(provider, status, body);
    };
    if let Some(err) = v.get_mut("error").and_then(Value::as_object_mut) {
        if !err.get("type").is_some_and(Value::is_string) {
            err.insert("type".into(), Value::String(error_type(status).into()));
        }
        err.entry("param").or_insert(Value::Null);
        err.entry("code").or_insert(Value::Null);
        return Bytes::from(v.to_string());
    }
    if let Some(msg) = v.get("message").and_then(Value::as_str) {
        let e = serde_json::json!({"error": {
            "message": msg,
            "type": error_type(status),
            "param": null,
            "code": v.get("statusCode").or_else(|| v.get("code")).map(|c| match c {
                Value::String(s) => Value::String(s.clone()),
                other => Value::String(other.to_string()),
            }),
        }});
        return Bytes::from(e.to_string());
    }
    openai_error_body(provider, status, body)
}

fn error_type(status: u16) -> &'static str {
    match status {
        400 | 404 | 409 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        _ => "api_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AzureConfig, ProviderSettings};

    fn adapter(deployments: &[(&str, &str)], version: Option<&str>) -> AzureAdapter {
        let mut cfg = ProviderConfig::new(crate::providers::ProviderKind::Azure);
        cfg.settings = ProviderSettings::Azure(AzureConfig {
            deployments: deployments
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            api_version: version.map(str::to_owned),
            ..Default::default()
        });
        AzureAdapter::new(&cfg)
    }

    #[test]
    fn deployment_urls_carry_the_api_version() {
        let a = adapter(&[("gpt-4o-mini", "my-4o-mini")], None);
        let d = a.deployment_for("gpt-4o-mini");
        assert_eq!(d, "my-4o-mini");
        assert_eq!(a.deployment_for("gpt-4o"), "gpt-4o");
        let u = a
            .url("https://res.openai.azure.com", d, Endpoint::ChatCompletions)
            .unwrap();
        assert_eq!(
            u.as_str(),
            "https://res.openai.azure.com/openai/deployments/my-4o-mini/chat/completions?api-version=2024-10-21"
        );
        let a = adapter(&[], Some("2025-01-01-preview"));
        let u = a
            .url(
                "https://res.openai.azure.com/openai/",
                "emb",
                Endpoint::Embeddings,
            )
            .unwrap();
        assert_eq!(
            u.as_str(),
            "https://res.openai.azure.com/openai/deployments/emb/embeddings?api-version=2025-01-01-preview"
        );
    }

    #[test]
    fn deployment_names_cannot_escape_their_segment() {
        let a = adapter(&[], None);
        let u = a
            .url("http://h:1", "../x?y", Endpoint::Completions)
            .unwrap();
        assert_eq!(
            u.as_str(),
            "http://h:1/openai/deployments/..%2Fx%3Fy/completions?api-version=2024-10-21"
        );
    }

    // Content-filter error, as documented at
    // https://learn.microsoft.com/en-us/azure/ai-services/openai/concepts/content-filter
    #[test]
    fn content_filter_errors_keep_code_and_gain_a_type() {
        let body = Bytes::from_static(br#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true,"severity":"high"}}}}}"#);
        let out: Value = serde_json::from_slice(&azure_error_body("az", 400, body)).unwrap();
        assert_eq!(out["error"]["code"], "content_filter");
        assert_eq!(out["error"]["type"], "invalid_request_error");
        assert_eq!(out["error"]["param"], "prompt");
        assert_eq!(
            out["error"]["innererror"]["code"],
            "ResponsibleAIPolicyViolation"
        );
    }

    #[test]
    fn gateway_shaped_errors_are_wrapped() {
        let body = Bytes::from_static(br#"{ "statusCode": 401, "message": "Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), or have expired." }"#);
        let out: Value = serde_json::from_slice(&azure_error_body("az", 401, body)).unwrap();
        assert_eq!(out["error"]["type"], "authentication_error");
        assert_eq!(out["error"]["code"], "401");
        assert!(out["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Unauthorized."));
    }
}
