//! `deja-mock`: a mock LLM provider on a port, for deja's end-to-end tests, benchmarks and
//! demos. Steer it with `PUT /_mock/behaviour`, read what it received with
//! `GET /_mock/requests` and its counters with `GET /_mock/stats` (OpenAI format).

use anyhow::Context;
use clap::Parser;
use deja_mock::{anthropic, azure, bedrock, cohere, gemini, MockSettings, MockState};
use std::net::TcpListener;
use std::sync::Arc;

/// Run a mock provider (tests, benchmarks, demos).
#[derive(Parser)]
#[command(name = "deja-mock", version)]
struct Cli {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 9090)]
    port: u16,
    /// Do not keep request bodies (for benchmarks).
    #[arg(long)]
    no_record: bool,
    /// HTTP worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Models listed by GET /v1/models (default: mock-model; for anthropic, two Claude names).
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Wire format: openai, anthropic (Messages API), bedrock (checks SigV4 against
    /// AWS's example credentials AKIDEXAMPLE, region us-east-1), cohere (bearer key
    /// co-test-key), azure (deployments named as --models) or gemini.
    #[arg(long, default_value = "openai")]
    format: String,
    /// The only API key the mock accepts (anthropic: any key when unset; azure and
    /// gemini: default mock-key).
    #[arg(long)]
    api_key: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let Cli {
        host,
        port,
        no_record,
        workers,
        models,
        format,
        api_key,
    } = Cli::parse();
    let listener = TcpListener::bind((host.as_str(), port))
        .with_context(|| format!("cannot listen on {host}:{port}"))?;
    let addr = listener.local_addr()?;
    // The server is built inside the System: actix-web's `run` needs its runtime.
    fn serve(
        server: impl FnOnce() -> std::io::Result<actix_web::dev::Server>,
    ) -> anyhow::Result<()> {
        actix_rt::System::new().block_on(async move {
            server()?.await?;
            anyhow::Ok(())
        })
    }
    match format.as_str() {
        "openai" => {
            let models = if models.is_empty() {
                vec!["mock-model".to_owned()]
            } else {
                models
            };
            let settings = MockSettings {
                record: !no_record,
                models,
                workers,
            };
            let state = Arc::new(MockState::new(&settings));
            eprintln!("mock provider on http://{addr}/v1");
            serve(move || deja_mock::server(listener, state, settings.workers))
        }
        "anthropic" => {
            let models = if models.is_empty() {
                anthropic::DEFAULT_MODELS
                    .iter()
                    .map(|m| m.to_string())
                    .collect()
            } else {
                models
            };
            let state = Arc::new(anthropic::AnthropicMockState::new(api_key, models));
            eprintln!("anthropic mock provider on http://{addr}/v1");
            serve(move || anthropic::server(listener, state))
        }
        "bedrock" => {
            let state = Arc::new(bedrock::BedrockMockState::new(Default::default()));
            eprintln!("mock bedrock on http://{addr}");
            serve(move || bedrock::server(listener, state))
        }
        "cohere" => {
            let state = Arc::new(cohere::CohereMockState::new(Default::default()));
            eprintln!("mock cohere on http://{addr}");
            serve(move || cohere::server(listener, state))
        }
        "azure" => {
            let deployments: Vec<(&str, &str)> =
                models.iter().map(|m| (m.as_str(), m.as_str())).collect();
            let state = Arc::new(azure::AzureMockState::new(
                api_key.as_deref().unwrap_or("mock-key"),
                None,
                &deployments,
            ));
            eprintln!("mock Azure OpenAI on http://{addr}");
            serve(move || azure::server(listener, state))
        }
        "gemini" => {
            let state = Arc::new(gemini::GeminiMockState::new(
                api_key.as_deref().unwrap_or("mock-key"),
                None,
            ));
            eprintln!("mock Gemini API on http://{addr}/v1beta");
            serve(move || gemini::server(listener, state))
        }
        other => anyhow::bail!(
            "unknown --format `{other}` (openai, anthropic, bedrock, cohere, azure, gemini)"
        ),
    }
}
