//! Shared test harness: a real mock provider and the real gateway on free ports.
#![allow(dead_code)]

use deja::config::{self, Config, Overrides};
use deja::http::Spawned;
use deja_mock::{MockProvider, MockSettings};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A port nothing listens on right now (for a `deja serve` child process).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Build a config from TOML text exactly as `deja serve --config` would (port 0).
pub fn config_from(toml_text: &str, env: &[(&str, &str)]) -> Config {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(toml_text.as_bytes()).unwrap();
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let overrides = Overrides {
        port: Some(0),
        ..Default::default()
    };
    config::load(Some(f.path()), &env, &overrides).unwrap()
}

pub struct Harness {
    pub mock: MockProvider,
    pub gw: Option<Spawned>,
    pub client: reqwest::Client,
}

impl Harness {
    /// One mock provider named `mock` (openai-compatible) plus `extra` TOML; no cache.
    pub fn start(extra: &str) -> Self {
        Self::start_with(MockSettings::default(), extra, None)
    }

    /// The same with the semantic cache on (real model, real sled in `data_dir`).
    pub fn start_cached(extra: &str, data_dir: &Path) -> Self {
        Self::start_with(MockSettings::default(), extra, Some(data_dir))
    }

    pub fn start_with(settings: MockSettings, extra: &str, cache_dir: Option<&Path>) -> Self {
        let mock = MockProvider::start(settings).unwrap();
        let toml_text = format!(
            "[providers.mock]\nkind = \"openai-compatible\"\nbase_url = \"{}\"\napi_key = \"sk-mock\"\ntimeout_secs = 5\n{extra}",
            mock.base_url()
        );
        let gw = Self::gateway(&toml_text, cache_dir);
        Harness {
            mock,
            gw: Some(gw),
            client: reqwest::Client::new(),
        }
    }

    /// Start (or restart) a gateway on the given config text.
    pub fn gateway(toml_text: &str, cache_dir: Option<&Path>) -> Spawned {
        let dir = cache_dir.map(|d| d.display().to_string());
        let env: Vec<(&str, &str)> = match &dir {
            // Debug builds on a loaded 2-core machine embed far slower than a release
            // build: tests that do not set the lookup's embedding wait get a generous
            // one, so a slow embedding is not an overload bypass.
            Some(d) if !toml_text.contains("max_embed_wait_ms") => vec![
                ("DEJA_DATA_DIR", d.as_str()),
                ("DEJA_ADMIN_TOKEN", ADMIN_TOKEN),
                ("DEJA__CACHE__MAX_EMBED_WAIT_MS", "30000"),
            ],
            Some(d) => vec![
                ("DEJA_DATA_DIR", d.as_str()),
                ("DEJA_ADMIN_TOKEN", ADMIN_TOKEN),
            ],
            None => vec![
                ("DEJA__CACHE__ENABLED", "false"),
                ("DEJA_ADMIN_TOKEN", ADMIN_TOKEN),
            ],
        };
        let cfg = config_from(toml_text, &env);
        // After an in-process stop the previous gateway's arbiters may take a moment to
        // let go of the sled lock (a real process exit releases it at once).
        let mut tries = 0;
        loop {
            match deja::http::spawn(cfg.clone()) {
                Ok(s) => return s,
                Err(e) if tries < 100 && e.to_string().contains("could not acquire lock") => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("{e:#}"),
            }
        }
    }

    pub fn state(&self) -> &deja::http::AppState {
        &self.gw.as_ref().unwrap().state
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.gw.as_ref().unwrap().url(), path)
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// `GET /metrics` as text.
    pub async fn metrics(&self) -> String {
        let r = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(gw) = self.gw.take() {
            gw.stop();
        }
    }
}

/// The model objects `GET {base}/v1/models` lists. Servers started by these helpers
/// are ready before they return, and readiness includes every provider's model
/// discovery having ended, so one request sees the final list.
#[allow(dead_code)]
pub async fn models(client: &reqwest::Client, base: &str) -> Vec<serde_json::Value> {
    let mut v: serde_json::Value = client
        .get(format!("{base}/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    match v["data"].take() {
        serde_json::Value::Array(models) => models,
        other => panic!("/v1/models data is not an array: {other}"),
    }
}

/// The ids of [`models`].
#[allow(dead_code)]
pub async fn model_ids(client: &reqwest::Client, base: &str) -> Vec<String> {
    models(client, base)
        .await
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_owned))
        .collect()
}

pub fn chat(model: &str, content: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": content}]})
}

/// Parse an SSE body into its `data:` payloads.
pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(str::to_owned)
        .collect()
}
