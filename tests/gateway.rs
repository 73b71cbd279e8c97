//! The gateway core through real HTTP: pass-through, streaming, routing, key weighting,
//! every error path and client disconnects, against the mock provider.

mod common;

use common::{chat, config_from, sse_data, Harness};

const NO_CACHE: &[(&str, &str)] = &[("DEJA__CACHE__ENABLED", "false")];
use deja_mock::{Behaviour, MockProvider, MockSettings};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn non_streaming_fields_pass_through_both_ways() {
    let h = Harness::start("");
    let sent = json!({
        "model": "mock/gpt-4o-mini",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "What is Rust?", "name": "ann"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "logprobs": true,
        "top_logprobs": 2,
        "seed": 42,
        "user": "u-1",
        "metadata": {"k": "v"},
        "some_future_field": {"nested": [1, 2, {"x": null}]}
    });
    let resp = h
        .client
        .post(h.url("/v1/chat/completions"))
        .header("x-request-id", "req-abc-123")
        .json(&sent)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let hd = resp.headers().clone();
    assert_eq!(hd["x-request-id"], "req-abc-123");
    assert_eq!(hd["x-deja-provider"], "mock");
    assert_eq!(hd["x-deja-model"], "gpt-4o-mini");
    assert!(hd["x-deja-overhead-us"]
        .to_str()
        .unwrap()
        .parse::<u64>()
        .is_ok());
    let body: Value = resp.json().await.unwrap();
    // Provider fields reach the client unchanged, including ones deja does not know.
    assert_eq!(body["system_fingerprint"], "fp_mock");
    assert!(body["mock_extra"]["received_fields"]
        .as_array()
        .unwrap()
        .contains(&json!("some_future_field")));
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Mock answer to: What is Rust?"
    );

    let rec = h.mock.state.requests();
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].path, "/v1/chat/completions");
    assert_eq!(rec[0].authorization.as_deref(), Some("Bearer sk-mock"));
    let mut expected = sent.clone();
    expected["model"] = json!("gpt-4o-mini");
    assert_eq!(
        rec[0].body, expected,
        "every field but the model reaches the provider unchanged"
    );
}

#[tokio::test]
async fn request_id_is_generated_when_absent_or_insane() {
    let h = Harness::start("");
    let a = h.post("/v1/chat/completions", chat("mock/m", "hi")).await;
    let b = h
        .client
        .post(h.url("/v1/chat/completions"))
        .header("x-request-id", "has spaces and\ttabs")
        .json(&chat("mock/m", "hi"))
        .send()
        .await
        .unwrap();
    let ida = a.headers()["x-request-id"].to_str().unwrap().to_owned();
    let idb = b.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(ida.len(), 36);
    assert_ne!(ida, idb);
    assert_ne!(idb, "has spaces and\ttabs");
}

#[tokio::test]
async fn streaming_passes_chunks_as_they_arrive_and_honours_include_usage() {
    let h = Harness::start("");
    let mut req = chat("mock/m", "tell me a story");
    req["stream"] = json!(true);
    let resp = h.post("/v1/chat/completions", req.clone()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.unwrap();
    let data = sse_data(&text);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect();
    assert_eq!(content, "Mock answer to: tell me a story");
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "no usage unless asked"
    );

    req["stream_options"] = json!({"include_usage": true});
    let text = h
        .post("/v1/chat/completions", req)
        .await
        .text()
        .await
        .unwrap();
    let data = sse_data(&text);
    let usage_chunk: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    // The mock counts words: 4 in the question, 7 in its answer.
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 4);
    assert_eq!(usage_chunk["usage"]["total_tokens"], 11);
    assert_eq!(
        h.mock.state.requests()[1].body["stream_options"],
        json!({"include_usage": true})
    );
}

#[tokio::test]
async fn stream_is_not_buffered_whole() {
    let h = Harness::start("");
    h.mock
        .state
        .set_behaviour(Behaviour::SlowStream { ms: 150 });
    let mut req = chat("mock/m", "one two three four five six");
    req["stream"] = json!(true);
    let resp = h.post("/v1/chat/completions", req).await;
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(std::str::from_utf8(&first).unwrap().starts_with("data: "));
    // The first chunk reached the client while the provider was still streaming.
    let st = h.mock.state.stats();
    assert_eq!((st.streams_started, st.streams_completed), (1, 0));
    while body.next().await.is_some() {}
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_stream() {
    let h = Harness::start("");
    h.mock
        .state
        .set_behaviour(Behaviour::SlowStream { ms: 100 });
    let mut req = chat("mock/m", "a long answer with many words in it please");
    req["stream"] = json!(true);
    let resp = h.post("/v1/chat/completions", req).await;
    let mut body = resp.bytes_stream();
    body.next().await.unwrap().unwrap();
    drop(body);
    let mut cancelled = 0;
    for _ in 0..100 {
        cancelled = h.mock.state.stats().streams_cancelled;
        if cancelled > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        cancelled, 1,
        "the upstream stream was dropped when the client went away"
    );
    assert_eq!(h.mock.state.stats().streams_completed, 0);
    // The gateway still serves others.
    assert_eq!(
        h.post("/v1/chat/completions", chat("mock/m", "hi"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn upstream_dropping_mid_stream_ends_with_an_error_event() {
    let h = Harness::start("");
    h.mock
        .state
        .set_behaviour(Behaviour::DropMidStream { after_chunks: 2 });
    let mut req = chat("mock/m", "one two three four five");
    req["stream"] = json!(true);
    let resp = h.post("/v1/chat/completions", req).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let data = sse_data(&text);
    assert_eq!(data.len(), 3, "{text}");
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted");
    assert!(!text.contains("[DONE]"));
}

#[tokio::test]
async fn legacy_completions_embeddings_models_health_ready() {
    let h =
        Harness::start("models = [\"listed-model\"]\n[routing.aliases]\nfast = \"mock/turbo\"\n");
    let r = h
        .post(
            "/v1/completions",
            json!({"model": "mock/davinci", "prompt": "say hi"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], "Mock answer to: say hi");

    let mut sreq = json!({"model": "mock/davinci", "prompt": "say hi", "stream": true});
    let text = h
        .post("/v1/completions", sreq.take())
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"object\":\"text_completion\"") && text.ends_with("data: [DONE]\n\n"));

    let r = h
        .post(
            "/v1/embeddings",
            json!({"model": "mock/emb", "input": ["a", "b"]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);

    let ids = common::model_ids(&h.client, &h.url("")).await;
    assert!(
        ["fast", "mock/listed-model", "mock/mock-model"]
            .iter()
            .all(|m| ids.iter().any(|i| i == m)),
        "aliases, configured models and those discovered from the provider's list: {ids:?}"
    );

    let r = h.client.get(h.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = h.client.get(h.url("/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ready");
}

#[tokio::test]
async fn model_addressing_alias_listed_default_and_unknown() {
    let a = MockProvider::start(MockSettings::default()).unwrap();
    let b = MockProvider::start(MockSettings::default()).unwrap();
    let cfg = config_from(
        &format!(
            "[providers.a]\nkind = \"openai-compatible\"\nbase_url = \"{}\"\nmodels = [\"only-on-a\"]\ndiscover_models = false\n\
             [providers.b]\nkind = \"openai-compatible\"\nbase_url = \"{}\"\nmodels = [\"only-on-b\"]\ndiscover_models = false\n\
             [routing.aliases]\nfast = \"b/llama-3.1-8b-instant\"\n",
            a.base_url(),
            b.base_url()
        ),
        NO_CACHE,
    );
    let gw = deja::http::spawn(cfg).unwrap();
    let client = reqwest::Client::new();
    let send = |model: &'static str| {
        let client = client.clone();
        let url = format!("{}/v1/chat/completions", gw.url());
        async move {
            client
                .post(url)
                .json(&chat(model, "q"))
                .send()
                .await
                .unwrap()
        }
    };
    let r = send("fast").await;
    assert_eq!(
        (
            r.headers()["x-deja-provider"].to_str().unwrap(),
            r.headers()["x-deja-model"].to_str().unwrap()
        ),
        ("b", "llama-3.1-8b-instant")
    );
    let r = send("only-on-a").await;
    assert_eq!(r.headers()["x-deja-provider"], "a");
    let r = send("only-on-b").await;
    assert_eq!(r.headers()["x-deja-provider"], "b");
    let r = send("a/anything").await;
    assert_eq!(r.headers()["x-deja-provider"], "a");
    // No default provider with two configured: unknown bare names are 404.
    let r = send("gpt-unknown").await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_not_found");
    assert_eq!(v["error"]["param"], "model");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("GET /v1/models"));
    assert_eq!(a.state.requests().len(), 2);
    assert_eq!(b.state.requests().len(), 2);
    assert_eq!(b.state.requests()[0].body["model"], "llama-3.1-8b-instant");
    gw.stop();
}

#[tokio::test]
async fn weighted_keys_share_traffic_within_tolerance() {
    // No model discovery: its request would count against a key too.
    let h = Harness::start(
        "discover_models = false\nkeys = [{ key = \"sk-light\", weight = 1 }, { key = \"sk-heavy\", weight = 3 }]\n",
    );
    let n = 800;
    let futs = (0..n).map(|i| h.post("/v1/chat/completions", chat("mock/m", &format!("q{i}"))));
    let results = futures_util::future::join_all(futs).await;
    assert!(results.iter().all(|r| r.status() == 200));
    let rec = h.mock.state.requests();
    let count = |k: &str| {
        rec.iter()
            .filter(|r| r.authorization.as_deref() == Some(k))
            .count() as f64
    };
    // api_key (weight 1) + light (1) + heavy (3): expected shares 0.2, 0.2, 0.6.
    let total = rec.len() as f64;
    assert_eq!(total, n as f64);
    for (key, share) in [
        ("Bearer sk-mock", 0.2),
        ("Bearer sk-light", 0.2),
        ("Bearer sk-heavy", 0.6),
    ] {
        let got = count(key) / total;
        // 4.5 standard deviations at n = 800.
        let tol = 4.5 * (share * (1.0 - share) / total).sqrt();
        assert!(
            (got - share).abs() < tol,
            "{key}: {got:.3} vs {share} ± {tol:.3}"
        );
    }
    // The pool's per-key counters (in /metrics) agree with what the provider saw.
    let metrics = h.metrics().await;
    for (i, key) in ["Bearer sk-mock", "Bearer sk-light", "Bearer sk-heavy"]
        .iter()
        .enumerate()
    {
        let line = format!(
            "deja_provider_key_requests_total{{provider=\"mock\",key=\"{i}\"}} {}",
            count(key)
        );
        assert!(metrics.contains(&line), "{line} not in:\n{metrics}");
    }
}

async fn error_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    for k in ["message", "type", "param", "code"] {
        assert!(
            v["error"].get(k).is_some(),
            "OpenAI error shape lacks {k}: {v}"
        );
    }
    (status, v)
}

#[tokio::test]
async fn client_errors_are_openai_shaped_400_404_413() {
    let h = Harness::start("[server]\nmax_body_bytes = 2048\n");
    let raw = |body: &'static str| {
        h.client
            .post(h.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let (s, v) = error_of(raw("{\"model\": ").await.unwrap()).await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{v}"
    );
    let (s, v) = error_of(raw("[1,2]").await.unwrap()).await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("JSON object"));
    let (s, v) = error_of(raw("{\"messages\": []}").await.unwrap()).await;
    assert_eq!((s, v["error"]["param"].as_str()), (400, Some("model")));
    let (s, v) = error_of(raw("{\"model\": \"mock/m\"}").await.unwrap()).await;
    assert_eq!((s, v["error"]["param"].as_str()), (400, Some("messages")));
    let (s, v) = error_of(
        raw("{\"model\": \"mock/m\", \"messages\": [{\"content\": \"x\"}]}")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, v["error"]["param"].as_str()),
        (400, Some("messages[0].role"))
    );
    let (s, v) = error_of(
        raw("{\"model\": \"mock/m\", \"messages\": [], \"stream\": \"yes\"}")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, v["error"]["param"].as_str()), (400, Some("stream")));
    let (s, _) = error_of(h.post("/v1/embeddings", json!({"model": "mock/e"})).await).await;
    assert_eq!(s, 400);
    let (s, v) = error_of(
        h.post("/v1/chat/completions", chat("mock/m", &"x".repeat(4000)))
            .await,
    )
    .await;
    assert_eq!(s, 413);
    assert!(v["error"]["message"].as_str().unwrap().contains("2048"));
    // A chunked body (no content-length) over the limit is refused too.
    let chunks =
        futures_util::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(vec![b' '; 512])));
    let r = h
        .client
        .post(h.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let (s, _) = error_of(h.client.get(h.url("/v2/nothing")).send().await.unwrap()).await;
    assert_eq!(s, 404);
    let (s, _) = error_of(h.client.delete(h.url("/v1/models")).send().await.unwrap()).await;
    assert_eq!(s, 405);
    assert!(
        h.mock.state.requests().is_empty(),
        "nothing invalid reached the provider"
    );
}

#[tokio::test]
async fn upstream_errors_pass_on_with_their_status_and_message() {
    let h = Harness::start("discover_models = false\n");
    let openai_err = r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
    h.mock.state.set_behaviour(Behaviour::Fail {
        status: 401,
        body: openai_err.into(),
    });
    let r = h.post("/v1/chat/completions", chat("mock/m", "hi")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.text().await.unwrap(), openai_err);

    h.mock.state.set_behaviour(Behaviour::Fail {
        status: 503,
        body: "upstream overloaded, try later".into(),
    });
    let (s, v) = error_of(h.post("/v1/chat/completions", chat("mock/m", "hi")).await).await;
    assert_eq!(s, 503);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upstream overloaded"),
        "{v}"
    );

    h.mock.state.set_behaviour(Behaviour::Fail { status: 429, body: "{\"error\":{\"message\":\"Rate limit\",\"type\":\"requests\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}".into() });
    let mut req = chat("mock/m", "hi");
    req["stream"] = json!(true);
    let (s, v) = error_of(h.post("/v1/chat/completions", req).await).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (429, Some("rate_limit_exceeded"))
    );
    // 401, 503 and 429 all count against the (only) key; a success does not.
    h.mock.state.set_behaviour(Behaviour::default());
    assert_eq!(
        h.post("/v1/chat/completions", chat("mock/m", "hi"))
            .await
            .status(),
        200
    );
    let metrics = h.metrics().await;
    for line in [
        "deja_provider_key_requests_total{provider=\"mock\",key=\"0\"} 4",
        "deja_provider_key_failures_total{provider=\"mock\",key=\"0\"} 3",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
}

#[tokio::test]
async fn unreachable_upstream_is_502_and_stalled_is_504() {
    // A port nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/v1", dead.local_addr().unwrap());
    drop(dead);
    let h = Harness::start(&format!(
        "[providers.dead]\nkind = \"openai-compatible\"\nbase_url = \"{dead_url}\"\ndiscover_models = false\n\
         [providers.slow]\nkind = \"openai-compatible\"\nbase_url = \"PLACEHOLDER\"\ntimeout_secs = 0.3\ndiscover_models = false\n"
    ).replace("PLACEHOLDER", "http://127.0.0.1:1/v1"));
    let (s, v) = error_of(h.post("/v1/chat/completions", chat("dead/m", "hi")).await).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (502, Some("upstream_unreachable"))
    );
    drop(h);

    let mock = MockProvider::start(MockSettings::default()).unwrap();
    mock.state.set_behaviour(Behaviour::Stall { ms: 3000 });
    let cfg = config_from(
        &format!("[providers.slow]\nkind = \"openai-compatible\"\nbase_url = \"{}\"\ntimeout_secs = 0.3\ndiscover_models = false\n", mock.base_url()),
        NO_CACHE,
    );
    let gw = deja::http::spawn(cfg).unwrap();
    let client = reqwest::Client::new();
    for stream in [false, true] {
        let mut req = chat("slow/m", "hi");
        req["stream"] = json!(stream);
        let r = client
            .post(format!("{}/v1/chat/completions", gw.url()))
            .json(&req)
            .send()
            .await
            .unwrap();
        let (s, v) = error_of(r).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (504, Some("upstream_timeout")),
            "stream={stream}"
        );
    }
    gw.stop();
}

#[tokio::test]
async fn malformed_input_never_disturbs_other_requests() {
    let h = Harness::start("[server]\nmax_body_bytes = 65536\n");
    let garbage: Vec<Vec<u8>> = vec![
        vec![0xff, 0xfe, 0x00, 0x01],
        b"{\"model\": \"mock/m\", \"messages\": [null, 1, \"x\"]}".to_vec(),
        b"{\"model\": {\"$ne\": 1}, \"messages\": 5}".to_vec(),
        "{\"model\": \"\u{1F600}\", \"messages\": [{\"role\": \"user\", \"content\": \"\u{0000}\"}]}".as_bytes().to_vec(),
        format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
        b"{\"model\": \"mock/m\", \"messages\": [{\"role\": \"user\", \"content\": \"ok\"}], \"stream\": null}".to_vec(),
    ];
    let mut futs = Vec::new();
    for i in 0..60 {
        let body = garbage[i % garbage.len()].clone();
        let c = h.client.clone();
        let url = h.url("/v1/chat/completions");
        futs.push(tokio::spawn(async move {
            c.post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
        let c = h.client.clone();
        let url = h.url("/v1/chat/completions");
        let good = chat("mock/m", &format!("good {i}"));
        futs.push(tokio::spawn(async move {
            c.post(url)
                .json(&good)
                .send()
                .await
                .map(|r| r.status().as_u16() + 1000)
        }));
    }
    let mut good_ok = 0;
    for f in futs {
        let status = f.await.unwrap().unwrap();
        if status >= 1000 {
            assert_eq!(status, 1200);
            good_ok += 1;
        } else {
            assert!(matches!(status, 200 | 400 | 404), "garbage got {status}");
        }
    }
    assert_eq!(good_ok, 60);
}
