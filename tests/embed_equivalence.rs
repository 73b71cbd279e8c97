//! The local embedder against the Python onnxruntime, and its actor handle.
//!
//! Needs the model files (`scripts/fetch-model`) and a Python with
//! onnxruntime, tokenizers and numpy (env `DEJA_PYTHON`, default
//! `.venv/bin/python`). Missing either is a test failure, not a skip.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use deja::embed::{EmbedError, Embedder, EmbedderConfig, EmbedderHandle, Pooling};

const TOLERANCE: f32 = 1e-4;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The default configuration with absolute paths, after checking the files exist.
fn config() -> EmbedderConfig {
    let models = root().join("models");
    let cfg = EmbedderConfig {
        model_path: models.join("model.onnx"),
        tokenizer_path: models.join("tokenizer.json"),
        ort_dylib_path: Some(match std::env::var_os("ORT_DYLIB_PATH") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => models.join("libonnxruntime.so"),
        }),
        ..EmbedderConfig::default()
    };
    for p in [
        &cfg.model_path,
        &cfg.tokenizer_path,
        cfg.ort_dylib_path.as_ref().unwrap(),
    ] {
        assert!(
            p.is_file(),
            "embedder file missing: {} -- run scripts/fetch-model first",
            p.display()
        );
    }
    cfg
}

fn load() -> Embedder {
    Embedder::load(&config()).unwrap_or_else(|e| panic!("loading the embedder failed: {e}"))
}

fn python() -> PathBuf {
    let p = std::env::var_os("DEJA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python"));
    assert!(
        p.exists(),
        "python for the reference vectors not found at {} -- create the venv \
         (python3 -m venv .venv && .venv/bin/pip install onnxruntime==1.31.1 tokenizers numpy) \
         or set DEJA_PYTHON",
        p.display()
    );
    p
}

/// A long chat-like transcript: `turns` numbered turns.
fn transcript(turns: usize) -> String {
    (0..turns)
        .map(|i| {
            format!(
                "User turn {i}: my card payment number {i} was declined at the shop, \
                 can you tell me why this happened and what I should do next? "
            )
        })
        .collect()
}

fn sentences() -> Vec<String> {
    let mut v: Vec<String> = [
        "How do I locate my card?",
        "I still have not received my new card, I ordered over a week ago.",
        "What is the capital of France?",
        "Paris is the capital and most populous city of France.",
        "The quick brown fox jumps over the lazy dog.",
        "Can you summarise this article in three bullet points?",
        "Write a Python function that reverses a linked list.",
        "Translate 'good morning' into Spanish.",
        "Why is the sky blue?",
        "Explain quantum entanglement to a ten-year-old.",
        "My package arrived damaged; how do I request a refund?",
        "What's the weather like in Tokyo tomorrow?",
        "Give me a recipe for vegan chocolate chip cookies.",
        "How many tokens can this model handle at once?",
        "ERROR: connection refused (os error 111) at 127.0.0.1:8080",
        "fn main() { println!(\"hello, world\"); }",
        "SELECT name, COUNT(*) FROM users GROUP BY name HAVING COUNT(*) > 1;",
        "Ünïcödé façade naïve café — résumé, jalapeño, Straße.",
        "東京は日本の首都です。",
        "Привет, как дела?",
        "🙂👍 emoji-only reactions 🎉",
        "a",
        "?",
        "   leading and trailing spaces   ",
        "Line one.\nLine two.\tTabbed.",
        "I want to change my PIN but the app keeps crashing.",
        "Is there a fee for topping up by bank transfer?",
        "Cancel my subscription immediately!!!",
        "what is 2 + 2",
        "What is two plus two?",
        "supercalifragilisticexpialidocious antidisestablishmentarianism",
        "",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Long texts that hit the token limit: plain truncation, truncation after
    // the character pretrim, and CJK text (about one token per character).
    v.push(transcript(20));
    v.push(transcript(200));
    v.push("数据".repeat(400));
    v.push(format!(
        "{} The last question: how do I reset my password?",
        "word ".repeat(300)
    ));
    v
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "vector lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

/// Reference vectors and token counts from scripts/embed_reference.py.
fn python_reference(cfg: &EmbedderConfig, texts: &[String]) -> (Vec<Vec<f32>>, Vec<usize>) {
    let script = root().join("scripts/embed_reference.py");
    let request = serde_json::json!({
        "model": cfg.model_path,
        "tokenizer": cfg.tokenizer_path,
        "max_tokens": cfg.max_tokens,
        "pooling": "mean",
        "normalize": true,
        "texts": texts,
    });
    let mut child = Command::new(python())
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", script.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{} failed ({}): {}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("reference output is JSON");
    let vectors: Vec<Vec<f32>> = serde_json::from_value(v["vectors"].clone()).unwrap();
    let counts: Vec<usize> = serde_json::from_value(v["token_counts"].clone()).unwrap();
    (vectors, counts)
}

#[test]
fn matches_python_onnxruntime() {
    let cfg = config();
    let mut emb = load();
    let texts = sentences();
    let (reference, ref_counts) = python_reference(&cfg, &texts);
    assert_eq!(reference.len(), texts.len());

    // Same tokens on both sides, and the long texts really are truncated.
    for (i, t) in texts.iter().enumerate() {
        let ids = emb.token_ids(t).unwrap();
        assert_eq!(ids.len(), ref_counts[i], "token count differs for text {i}");
        assert!(ids.len() <= cfg.max_tokens);
    }
    let at_limit = ref_counts.iter().filter(|&&n| n == cfg.max_tokens).count();
    assert!(at_limit >= 4, "only {at_limit} texts reach max_tokens");

    // Batches of 8 with padding inside each batch.
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut ours = Vec::new();
    for chunk in refs.chunks(8) {
        ours.extend(emb.embed_batch(chunk).unwrap());
    }
    assert_eq!(ours.len(), texts.len());
    for (i, (a, b)) in ours.iter().zip(&reference).enumerate() {
        assert_eq!(a.len(), 384);
        let d = max_abs_diff(a, b);
        assert!(
            d <= TOLERANCE,
            "text {i} ({:?}...): max |deja - python| = {d}",
            texts[i].chars().take(40).collect::<String>()
        );
    }
    // Sanity: the vectors are not all alike (a broken model would pass the
    // comparison only if Python were broken the same way).
    let sim = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    assert!(sim(&ours[2], &ours[3]) > sim(&ours[2], &ours[14]) + 0.2);
}

#[test]
fn batch_equals_single() {
    let mut emb = load();
    let texts = sentences();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batch = emb.embed_batch(&refs).unwrap();
    for (i, t) in refs.iter().enumerate() {
        let single = emb.embed_batch(&[t]).unwrap().remove(0);
        let d = max_abs_diff(&single, &batch[i]);
        assert!(d <= 1e-5, "text {i}: batch vs single differ by {d}");
        assert!(
            (norm(&single) - 1.0).abs() < 1e-4,
            "text {i} is not unit length"
        );
    }
    assert!(emb.embed_batch(&[]).unwrap().is_empty());
}

#[test]
fn very_long_text_keeps_head_and_tail() {
    let mut emb = load();
    let max = emb.config().max_tokens;
    // ~1 MB: goes through the character pretrim and the token truncation.
    let filler = "The same sentence about a declined card payment is repeated here. ";
    let body = filler.repeat(16_000);
    let half = filler.repeat(8_000);
    let long_a = format!("Opening words. {body} Final question: how do I reset my password?");
    let long_b = format!("Opening words. {body} Final question: where is my nearest branch?");
    let long_c = format!(
        "Opening words. {half} middle changed {half} Final question: how do I reset my password?"
    );
    let ids = emb.token_ids(&long_a).unwrap();
    assert_eq!(ids.len(), max);
    let tok = emb.tokenizer();
    let cls = tok.token_to_id("[CLS]").unwrap();
    let sep = tok.token_to_id("[SEP]").unwrap();
    assert_eq!(ids[0], cls);
    assert_eq!(*ids.last().unwrap(), sep);
    // Head: the opening words follow [CLS]; tail: the final question precedes [SEP].
    let head = tok
        .encode("Opening words.", false)
        .unwrap()
        .get_ids()
        .to_vec();
    assert_eq!(&ids[1..1 + head.len()], &head[..]);
    let tail = tok
        .encode("Final question: how do I reset my password?", false)
        .unwrap()
        .get_ids()
        .to_vec();
    assert_eq!(&ids[max - 1 - tail.len()..max - 1], &tail[..]);

    let v = emb.embed_batch(&[&long_a, &long_b, &long_c]).unwrap();
    assert!(v
        .iter()
        .all(|x| x.len() == 384 && (norm(x) - 1.0).abs() < 1e-4));
    // The end of the text matters, a change deep in the middle does not.
    assert!(
        max_abs_diff(&v[0], &v[1]) > 1e-3,
        "different endings gave the same vector"
    );
    assert!(
        max_abs_diff(&v[0], &v[2]) < 1e-6,
        "a change in the dropped middle changed the vector"
    );
}

#[test]
fn empty_and_blank_strings() {
    let mut emb = load();
    let ids = emb.token_ids("").unwrap();
    assert_eq!(ids.len(), 2, "empty text should be [CLS] [SEP]");
    let v = emb.embed_batch(&["", "   ", "hello"]).unwrap();
    for x in &v {
        assert_eq!(x.len(), 384);
        assert!(x.iter().all(|f| f.is_finite()));
        assert!((norm(x) - 1.0).abs() < 1e-4);
    }
    // Whitespace tokenises to nothing, like the empty string.
    assert!(max_abs_diff(&v[0], &v[1]) < 1e-6);
    assert!(max_abs_diff(&v[0], &v[2]) > 1e-3);
}

#[test]
fn token_embeddings_pool_to_the_sentence_vector() {
    let mut emb = load();
    let text = "Where is my new card? It's been 10 days.";
    let t = emb.embed_tokens(text).unwrap();
    let n = t.ids.len();
    assert_eq!(t.ids, emb.token_ids(text).unwrap());
    assert!(t.tokens.len() == n && t.offsets.len() == n && t.special.len() == n);
    assert_eq!(t.vectors.len(), n);
    assert!(t.special[0] && t.special[n - 1] && !t.special[1]);
    assert_eq!(t.tokens[0], "[CLS]");
    // Offsets point at the tokens' text.
    assert_eq!(
        &text[t.offsets[1].0..t.offsets[1].1],
        "where".replace('w', "W")
    );
    let mut mean = vec![0f32; 384];
    for row in &t.vectors {
        assert_eq!(row.len(), 384);
        mean.iter_mut()
            .zip(row)
            .for_each(|(m, x)| *m += x / n as f32);
    }
    let l = norm(&mean);
    mean.iter_mut().for_each(|x| *x /= l);
    let pooled = emb.embed_batch(&[text]).unwrap().remove(0);
    assert!(max_abs_diff(&mean, &pooled) < 1e-5);

    // Offsets of a pretrimmed text still point into the original.
    let long = format!("{} tail words here", "x".repeat(20_000));
    let t = emb.embed_tokens(&long).unwrap();
    let n = t.ids.len();
    let (s, e) = t.offsets[n - 2];
    assert_eq!(&long[s..e], "here");
}

#[test]
fn cls_pooling_takes_the_first_token() {
    let cfg = EmbedderConfig {
        pooling: Pooling::Cls,
        normalize: false,
        ..config()
    };
    let mut emb = Embedder::load(&cfg).unwrap();
    let text = "Is there a fee for topping up?";
    let cls = emb.embed_batch(&[text]).unwrap().remove(0);
    let tokens = emb.embed_tokens(text).unwrap();
    assert!(max_abs_diff(&cls, &tokens.vectors[0]) < 1e-5);
}

#[test]
fn load_errors_name_the_path() {
    let missing = PathBuf::from("/nonexistent/model.onnx");
    let err = Embedder::load(&EmbedderConfig {
        model_path: missing.clone(),
        ..config()
    })
    .unwrap_err();
    assert!(
        matches!(&err, EmbedError::ModelLoad { path, .. } if path == &missing),
        "{err:?}"
    );
    assert!(err.to_string().contains("/nonexistent/model.onnx"));

    let err = Embedder::load(&EmbedderConfig {
        tokenizer_path: PathBuf::from("/nonexistent/tokenizer.json"),
        ..config()
    })
    .unwrap_err();
    assert!(matches!(err, EmbedError::TokenizerLoad { .. }), "{err:?}");

    // The tokenizer file is not an ONNX model.
    let cfg = config();
    let err = Embedder::load(&EmbedderConfig {
        model_path: cfg.tokenizer_path.clone(),
        ..cfg
    })
    .unwrap_err();
    assert!(matches!(err, EmbedError::ModelLoad { .. }), "{err:?}");

    // Wrong dimensions are caught at load.
    let err = Embedder::load(&EmbedderConfig {
        dimensions: 768,
        ..config()
    })
    .unwrap_err();
    assert!(err.to_string().contains("768"), "{err}");
}

#[test]
fn config_deserialises_with_defaults_and_rejects_unknown_keys() {
    let cfg: EmbedderConfig = toml::from_str("pooling = \"cls\"\nbatch_max = 8\n").unwrap();
    assert_eq!(cfg.pooling, Pooling::Cls);
    assert_eq!(cfg.batch_max, 8);
    assert_eq!(cfg.dimensions, 384);
    assert_eq!(cfg.model_path, Path::new("models/model.onnx"));
    assert!(toml::from_str::<EmbedderConfig>("bogus = 1").is_err());
    let again: EmbedderConfig = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(again, cfg);
}

#[test]
fn start_outside_a_system_is_an_error() {
    let err = EmbedderHandle::start(config()).unwrap_err();
    assert!(matches!(err, EmbedError::Config(_)), "{err:?}");
}

#[actix_rt::test]
async fn handle_batches_concurrent_requests() {
    let handle = EmbedderHandle::start(EmbedderConfig {
        batch_wait_us: 2_000,
        ..config()
    })
    .unwrap();
    assert_eq!(handle.dimensions(), 384);
    let texts: Vec<String> = (0..64)
        .map(|i| format!("question number {i}: how do I top up my account?"))
        .collect();
    let results =
        futures_util::future::join_all(texts.iter().map(|t| handle.embed(t.clone()))).await;
    let stats = handle.stats();
    assert_eq!(stats.texts, 64);
    assert!(
        stats.batches <= 8,
        "64 concurrent requests went out in {} batches",
        stats.batches
    );
    let mut emb = load();
    for (t, r) in texts.iter().zip(results) {
        let v = r.unwrap();
        let single = emb.embed_batch(&[t]).unwrap().remove(0);
        assert!(max_abs_diff(&v, &single) <= 1e-5);
    }
    // embed_many keeps the order, across several jobs.
    let many = handle.embed_many(texts.clone()).await.unwrap();
    assert_eq!(many.len(), 64);
    for (t, v) in texts.iter().zip(&many).step_by(7) {
        let single = emb.embed_batch(&[t]).unwrap().remove(0);
        assert!(max_abs_diff(v, &single) <= 1e-5);
    }
    assert!(handle.embed_many(Vec::new()).await.unwrap().is_empty());
    assert_eq!(handle.pending(), 0);
}

#[actix_rt::test]
async fn handle_refuses_beyond_queue_limit() {
    let handle = EmbedderHandle::start(EmbedderConfig {
        queue_limit: 2,
        ..config()
    })
    .unwrap();
    let results =
        futures_util::future::join_all((0..64).map(|i| handle.embed(format!("request {i}")))).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let overloaded = results
        .iter()
        .filter(|r| matches!(r, Err(EmbedError::Overloaded)))
        .count();
    assert_eq!((ok, overloaded), (2, 62));
    // The queue drains: new requests are served again.
    assert_eq!(handle.pending(), 0);
    assert!(handle.embed("again".into()).await.is_ok());
    assert!(matches!(
        handle
            .embed_many(vec!["a".into(), "b".into(), "c".into()])
            .await,
        Err(EmbedError::Overloaded)
    ));
}
