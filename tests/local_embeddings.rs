//! `POST /v1/embeddings` with `model: "local/all-MiniLM-L6-v2"`: answered by deja's own
//! embedder through real HTTP, with no upstream call; vectors equal the embedder's.

mod common;

use base64::Engine;
use common::Harness;
use deja::embed::{Embedder, EmbedderConfig};
use serde_json::{json, Value};

const MODEL: &str = "local/all-MiniLM-L6-v2";

fn embedder() -> Embedder {
    Embedder::load(&EmbedderConfig::default()).expect("models/ (scripts/fetch-model)")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_and_usage_equal_the_embedders() {
    let h = Harness::start("");
    let texts = ["How do I reset my password?", "The cat sat on the mat."];
    let r = h
        .post("/v1/embeddings", json!({"model": MODEL, "input": texts}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-deja-provider"], "local");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], MODEL);
    let mut e = embedder();
    let expected = e.embed_batch(&texts).unwrap();
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(v["data"][i]["object"], "embedding");
        assert_eq!(v["data"][i]["index"], i);
        let got = floats(&v["data"][i]["embedding"]);
        assert_eq!(got.len(), 384);
        assert_eq!(&got, want, "vector {i} differs from the embedder's");
    }
    let tokens: usize = texts.iter().map(|t| e.token_ids(t).unwrap().len()).sum();
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": tokens, "total_tokens": tokens})
    );
    // Nothing went upstream.
    assert!(h.mock.state.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base64_encoding_and_dimensions() {
    let h = Harness::start("");
    let body = json!({"model": MODEL, "input": "hello world", "encoding_format": "base64", "dimensions": 384});
    let v: Value = h.post("/v1/embeddings", body).await.json().await.unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(v["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let got: Vec<f32> = raw
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(got, embedder().embed_batch(&["hello world"]).unwrap()[0]);

    for (body, param) in [
        (
            json!({"model": MODEL, "input": "x", "dimensions": 256}),
            "dimensions",
        ),
        (json!({"model": MODEL, "input": [[1, 2, 3]]}), "input[0]"),
        (json!({"model": MODEL, "input": ["ok", ""]}), "input[1]"),
        (
            json!({"model": MODEL, "input": "x", "encoding_format": "int8"}),
            "encoding_format",
        ),
    ] {
        let r = h.post("/v1/embeddings", body.clone()).await;
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["param"], param, "{v}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_in_models_and_not_served_on_chat() {
    let h = Harness::start("");
    let models = common::models(&h.client, &h.url("")).await;
    assert!(models
        .iter()
        .any(|m| m["id"] == MODEL && m["owned_by"] == "deja"));
    // Chat with the local model name is not intercepted: it is routed like any model.
    let r = h
        .post("/v1/chat/completions", common::chat(MODEL, "hi"))
        .await;
    assert_ne!(
        r.headers().get("x-deja-provider").map(|v| v.as_bytes()),
        Some(&b"local"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after() {
    let h = Harness::start("[embedder]\nqueue_limit = 4\n");
    let long: String = "the quick brown fox jumps over the lazy dog ".repeat(25);
    let mut saw_503 = false;
    for _round in 0..10 {
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let c = h.client.clone();
            let url = h.url("/v1/embeddings");
            let body = json!({"model": MODEL, "input": [long.clone(), long.clone(), long.clone(), long.clone()]});
            tasks.push(tokio::spawn(async move {
                let r = c.post(url).json(&body).send().await.unwrap();
                let status = r.status().as_u16();
                let retry = r
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned());
                let v: Value = r.json().await.unwrap();
                (status, retry, v)
            }));
        }
        for t in tasks {
            let (status, retry, v) = t.await.unwrap();
            match status {
                200 => assert_eq!(v["data"].as_array().unwrap().len(), 4),
                503 => {
                    saw_503 = true;
                    // The embedder's estimate of the work ahead, in whole seconds.
                    let secs: u64 = retry.as_deref().unwrap().parse().unwrap();
                    assert!(secs >= 1, "{retry:?}");
                    assert_eq!(v["error"]["type"], "overloaded_error");
                }
                other => panic!("unexpected {other}: {v}"),
            }
        }
        if saw_503 {
            break;
        }
    }
    assert!(
        saw_503,
        "12 concurrent requests of 4 texts never filled a queue of 4"
    );
    // More inputs than the queue holds can never be served: a 400, not an endless 503.
    let r = h
        .post(
            "/v1/embeddings",
            json!({"model": MODEL, "input": ["a", "b", "c", "d", "e"]}),
        )
        .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_cache_on_the_caches_embedder_serves() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start_cached("", dir.path());
    let cache = h.state().gateway.cache.as_ref().unwrap().clone();
    let before = cache.embedder.stats().texts;
    let r = h
        .post(
            "/v1/embeddings",
            json!({"model": MODEL, "input": ["one", "two", "three"]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(cache.embedder.stats().texts, before + 3);
}
