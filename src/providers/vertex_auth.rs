//! Vertex AI credentials: a Google service account's JSON key signs a JWT (RS256) that the
//! account's `token_uri` exchanges for an OAuth access token (the jwt-bearer grant,
//! <https://developers.google.com/identity/protocols/oauth2/service-account#httprest>).
//! The token is cached, shared by every request to the provider, and refreshed
//! [`REFRESH_MARGIN`] before it expires; concurrent requests that find it stale wait for
//! one refresh instead of each fetching their own.

use super::ProviderError;
use crate::config::Secret;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The OAuth scope Vertex AI needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Refresh a cached token this long before it expires.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Lifetime asked for in the assertion (Google's maximum).
const ASSERTION_LIFETIME_SECS: u64 = 3600;
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read the service-account file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the service-account file is not valid JSON: {0}")]
    Json(String),
    #[error("the service-account file is of type `{0}`; expected `service_account`")]
    NotServiceAccount(String),
    #[error("the service account's private key is not a usable RSA PEM key: {0}")]
    Key(String),
}

/// The fields of a service-account JSON key file deja uses.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    project_id: Option<String>,
    private_key_id: Option<String>,
    private_key: String,
    client_email: String,
    #[serde(default = "default_token_uri")]
    token_uri: String,
}

fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".into()
}

#[derive(Debug, serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

struct Cached {
    token: Secret,
    /// When deja stops using it (expiry minus [`REFRESH_MARGIN`]).
    refresh_at: Instant,
}

/// A service account and its cached access token.
pub struct TokenSource {
    client_email: String,
    private_key_id: Option<String>,
    token_uri: String,
    project_id: Option<String>,
    key: jsonwebtoken::EncodingKey,
    cached: tokio::sync::Mutex<Option<Cached>>,
    fetches: AtomicU64,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("key", &"*****")
            .finish()
    }
}

impl TokenSource {
    pub fn from_file(path: &Path) -> Result<Self, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text)
    }

    pub fn from_json(text: &str) -> Result<Self, CredentialsError> {
        let f: KeyFile =
            serde_json::from_str(text).map_err(|e| CredentialsError::Json(e.to_string()))?;
        if let Some(k) = f.kind.as_deref().filter(|k| *k != "service_account") {
            return Err(CredentialsError::NotServiceAccount(k.to_owned()));
        }
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(f.private_key.as_bytes())
            .map_err(|e| CredentialsError::Key(e.to_string()))?;
        Ok(TokenSource {
            client_email: f.client_email,
            private_key_id: f.private_key_id,
            token_uri: f.token_uri,
            project_id: f.project_id,
            key,
            cached: tokio::sync::Mutex::new(None),
            fetches: AtomicU64::new(0),
        })
    }

    /// The project the key file names (the default Vertex AI project).
    pub fn project_id(&self) -> Option<&str> {
        self.project_id.as_deref()
    }

    /// How many times a token was fetched from `token_uri`.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The signed assertion for issue time `now` (seconds since the epoch).
    pub fn assertion(&self, now: u64) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = self.private_key_id.clone();
        let claims = Claims {
            iss: &self.client_email,
            scope: SCOPE,
            aud: &self.token_uri,
            iat: now,
            exp: now + ASSERTION_LIFETIME_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
    }

    /// A valid access token: the cached one, or a fresh one from `token_uri`.
    pub async fn token(
        &self,
        client: &reqwest::Client,
        provider: &Arc<str>,
        timeout: Duration,
    ) -> Result<Secret, ProviderError> {
        // Holding the lock across the fetch makes concurrent callers wait for one refresh.
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let fresh = self.fetch(client, provider, timeout).await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    async fn fetch(
        &self,
        client: &reqwest::Client,
        provider: &Arc<str>,
        timeout: Duration,
    ) -> Result<Cached, ProviderError> {
        let fail = |status: u16, message: String| ProviderError::Upstream {
            provider: provider.clone(),
            status,
            body: bytes::Bytes::from(
                json!({"error": {
                    "message": format!("Vertex AI credentials: {message}"),
                    "type": "upstream_error",
                    "param": null,
                    "code": "token_exchange_failed",
                }})
                .to_string(),
            ),
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let assertion = self
            .assertion(now)
            .map_err(|e| fail(500, format!("cannot sign the assertion: {e}")))?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", JWT_BEARER)
            .append_pair("assertion", &assertion)
            .finish();
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let resp = client
            .post(&self.token_uri)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .timeout(timeout.min(Duration::from_secs(30)))
            .send()
            .await
            .map_err(|e| ProviderError::from_reqwest(provider, e, timeout))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap_or_default();
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            // {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            let code = v.get("error").and_then(Value::as_str).unwrap_or("error");
            let desc = v
                .get("error_description")
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(fail(
                502,
                format!("the token endpoint answered HTTP {status}: {code}: {desc}"),
            ));
        }
        let token = v
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| fail(502, "the token endpoint sent no access_token".into()))?;
        let expires_in = v.get("expires_in").and_then(Value::as_u64).unwrap_or(3600);
        let lifetime = Duration::from_secs(expires_in).saturating_sub(REFRESH_MARGIN);
        Ok(Cached {
            token: Secret::new(token),
            refresh_at: started + lifetime,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_FILE: &str = include_str!("../../tests/fixtures/vertex-test-service-account.json");
    const PUBLIC: &str = include_str!("../../tests/fixtures/vertex-test-service-account.pub.pem");

    #[test]
    fn assertion_is_rs256_signed_with_the_account_claims() {
        let ts = TokenSource::from_json(KEY_FILE).unwrap();
        let jwt = ts.assertion(1_700_000_000).unwrap();
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC.as_bytes()).unwrap();
        let mut val = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        val.validate_exp = false;
        val.set_audience(&["https://oauth2.googleapis.com/token"]);
        let data = jsonwebtoken::decode::<Value>(&jwt, &key, &val).unwrap();
        assert_eq!(
            data.header.kid.as_deref(),
            Some("0123456789abcdef-test-only")
        );
        assert_eq!(
            data.claims["iss"],
            "deja-test@deja-test-project.iam.gserviceaccount.com"
        );
        assert_eq!(data.claims["scope"], SCOPE);
        assert_eq!(data.claims["iat"], 1_700_000_000u64);
        assert_eq!(data.claims["exp"], 1_700_003_600u64);
        assert_eq!(ts.project_id(), Some("deja-test-project"));
    }

    #[test]
    fn a_tampered_assertion_fails_verification() {
        let ts = TokenSource::from_json(KEY_FILE).unwrap();
        let jwt = ts.assertion(1_700_000_000).unwrap();
        let mut parts: Vec<String> = jwt.split('.').map(str::to_owned).collect();
        parts[1] = parts[1].replacen('e', "f", 1);
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC.as_bytes()).unwrap();
        let mut val = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        val.validate_exp = false;
        val.validate_aud = false;
        assert!(jsonwebtoken::decode::<Value>(&parts.join("."), &key, &val).is_err());
    }

    #[test]
    fn bad_key_files_are_reported() {
        assert!(matches!(
            TokenSource::from_json("{"),
            Err(CredentialsError::Json(_))
        ));
        let user = r#"{"type":"authorized_user","private_key":"x","client_email":"a"}"#;
        assert!(matches!(
            TokenSource::from_json(user),
            Err(CredentialsError::NotServiceAccount(_))
        ));
        let bad = r#"{"type":"service_account","private_key":"not a pem","client_email":"a"}"#;
        assert!(matches!(
            TokenSource::from_json(bad),
            Err(CredentialsError::Key(_))
        ));
    }
}
