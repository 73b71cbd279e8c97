use anyhow::Context;
use clap::{Parser, Subcommand};
use deja::config::{self, LogFormat, Overrides};
use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;

/// mimalloc instead of glibc malloc (see Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "deja",
    version,
    about = "An LLM gateway whose edge is a semantic cache"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// TOML configuration file (also DEJA_CONFIG).
        #[arg(long, env = "DEJA_CONFIG")]
        config: Option<PathBuf>,
        /// Listen address (default 127.0.0.1).
        #[arg(long)]
        host: Option<String>,
        /// Listen port (default 8080; also DEJA_PORT).
        #[arg(long)]
        port: Option<u16>,
        /// Where deja keeps its state (also DEJA_DATA_DIR).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Log format.
        #[arg(long, value_enum)]
        log_format: Option<LogFormatArg>,
    },
    /// Measure the cache on labelled question pairs (TSV: q1, q2, duplicate; other
    /// columns are groups): store q1, look q2 up through the serving path.
    EvalPairs {
        file: PathBuf,
        /// All q1 in one cache instead of one cache per pair.
        #[arg(long)]
        shared: bool,
        /// Use every Nth pair (a sample).
        #[arg(long, default_value_t = 1)]
        every: usize,
        /// At most this many pairs (after --every).
        #[arg(long)]
        limit: Option<usize>,
        /// Write the non-duplicate pairs that were served (JSON lines, at the lowest
        /// threshold) to this file.
        #[arg(long)]
        wrong: Option<PathBuf>,
        #[command(flatten)]
        eval: EvalArgs,
    },
    /// Measure hit rates on an intent dataset folder (banking77: train/test CSV;
    /// clinc150: data_full.json; bitext: customer_support.csv, every fifth question
    /// asked): store training questions, ask test questions.
    EvalIntents {
        dir: PathBuf,
        /// At most this many test questions.
        #[arg(long)]
        limit: Option<usize>,
        /// Write the questions the verifier cost a same-intent hit (JSON lines) to this file.
        #[arg(long)]
        explain: Option<PathBuf>,
        /// Write the questions served another intent's entry at the lowest threshold
        /// (JSON lines, with the entry's question and intent) to this file.
        #[arg(long)]
        wrong: Option<PathBuf>,
        #[command(flatten)]
        eval: EvalArgs,
    },
    /// Fill the cache from a JSONL or CSV file of prompt/response pairs (resumable).
    Warmup(Box<deja::warmup::WarmupArgs>),
}

#[derive(clap::Args)]
struct EvalArgs {
    /// Verifier strictness (off = the similarity threshold alone).
    #[arg(long)]
    strictness: Option<String>,
    /// Thresholds to report, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.75,0.8,0.85,0.9,0.95")]
    thresholds: Vec<f32>,
    /// Concurrent lookups.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

fn eval_options(a: &EvalArgs) -> deja::eval::EvalOptions {
    deja::eval::EvalOptions {
        strictness: a.strictness.clone(),
        thresholds: a.thresholds.clone(),
        concurrency: a.concurrency,
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            host,
            port,
            data_dir,
            log_format,
        } => {
            let env: HashMap<String, String> = std::env::vars().collect();
            let overrides = Overrides {
                host,
                port,
                data_dir,
                log_format: log_format.map(|f| match f {
                    LogFormatArg::Text => LogFormat::Text,
                    LogFormatArg::Json => LogFormat::Json,
                }),
            };
            let mut cfg = config::load(config.as_deref(), &env, &overrides)?;
            let _log = deja::telemetry::init(&cfg.telemetry);
            let discovered = config::discover_providers(&mut cfg, &env);
            if !discovered.is_empty() {
                tracing::info!(providers = ?discovered, "providers discovered from the environment");
            }
            if cfg.providers.is_empty() {
                tracing::warn!("no provider configured: set OPENAI_API_KEY (and OPENAI_BASE_URL) or write a [providers] table");
            }
            for (id, p) in &cfg.providers {
                tracing::info!(provider = %id, kind = p.kind.as_str(), base_url = ?p.effective_base_url(), keys = p.all_keys().len(), "provider");
            }
            std::fs::create_dir_all(&cfg.server.data_dir).with_context(|| {
                format!("cannot create data dir {}", cfg.server.data_dir.display())
            })?;
            let listener = TcpListener::bind((cfg.server.host.as_str(), cfg.server.port))
                .with_context(|| {
                    format!("cannot listen on {}:{}", cfg.server.host, cfg.server.port)
                })?;
            let sys = actix_rt::System::new();
            let result = sys.block_on(async move {
                let running = deja::http::start(cfg, listener)?;
                deja::http::stop_on_signals(running.handle.clone())
                    .context("cannot install the SIGTERM/SIGINT handlers")?;
                tracing::info!(addr = %running.addr, "deja listening");
                running.server.await?;
                running.state.gateway.shutdown().await;
                tracing::info!("deja stopped");
                anyhow::Ok(())
            });
            actix_rt::System::current().stop();
            let _ = sys.run();
            result
        }
        Command::EvalPairs {
            file,
            shared,
            every,
            limit,
            wrong,
            eval,
        } => {
            let mut pairs = deja::eval::read_pairs(&file)?;
            pairs = pairs.into_iter().step_by(every.max(1)).collect();
            if let Some(n) = limit {
                pairs.truncate(n);
            }
            let opts = eval_options(&eval);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let reports = rt.block_on(deja::eval::eval_pairs(
                &pairs,
                shared,
                &opts,
                wrong.as_deref(),
            ))?;
            if eval.json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                println!(
                    "{} pairs from {} ({}), strictness {}\n",
                    pairs.len(),
                    file.display(),
                    if shared {
                        "shared cache"
                    } else {
                        "one cache per pair"
                    },
                    opts.strictness.as_deref().unwrap_or("default")
                );
                for r in &reports {
                    println!("{}", deja::eval::pairs_table(r));
                }
            }
            Ok(())
        }
        Command::EvalIntents {
            dir,
            limit,
            explain,
            wrong,
            eval,
        } => {
            let opts = eval_options(&eval);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let stats = rt.block_on(deja::eval::eval_intents(
                &dir,
                limit,
                &opts,
                explain.as_deref(),
                wrong.as_deref(),
            ))?;
            if eval.json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                println!(
                    "{}, strictness {}\n",
                    dir.display(),
                    opts.strictness.as_deref().unwrap_or("default")
                );
                println!("| threshold | questions | correct hits | wrong-intent hits | out-of-scope served |\n|---:|---:|---:|---:|---:|");
                for s in &stats {
                    let pct = |a: usize, b: usize| {
                        if b == 0 {
                            0.0
                        } else {
                            100.0 * a as f64 / b as f64
                        }
                    };
                    println!(
                        "| {:.2} | {} | {:.1}% | {:.1}% | {:.1}% |",
                        s.threshold,
                        s.questions,
                        pct(s.correct, s.questions),
                        pct(s.wrong_intent, s.questions),
                        pct(s.oos_served, s.oos_questions)
                    );
                }
            }
            Ok(())
        }
        Command::Warmup(args) => deja::warmup::run(*args),
    }
}
