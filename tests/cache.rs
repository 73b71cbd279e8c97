//! The semantic cache through real HTTP with the real model and real sled on disk.

mod common;

use common::{chat, sse_data, Harness};
use deja_mock::Behaviour;
use futures_util::future::join_all;
use serde_json::{json, Value};
use std::time::Duration;

fn cached() -> (Harness, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (Harness::start_cached("", dir.path()), dir)
}

async fn ask(
    h: &Harness,
    body: Value,
    headers: &[(&str, &str)],
) -> (reqwest::header::HeaderMap, Value) {
    let mut rb = h.client.post(h.url("/v1/chat/completions")).json(&body);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let hd = r.headers().clone();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (hd, v)
}

fn cache_status(h: &reqwest::header::HeaderMap) -> &str {
    h.get("x-deja-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The `x-deja-cache-similarity` header.
fn similarity(h: &reqwest::header::HeaderMap) -> f32 {
    h["x-deja-cache-similarity"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Ask until the entry stored after a miss is visible (stores happen after the reply).
async fn stored(h: &Harness, n: u64) {
    let cache = h.state().gateway.cache.clone().unwrap();
    for _ in 0..200 {
        if cache
            .counters
            .stored
            .load(std::sync::atomic::Ordering::SeqCst)
            >= n
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("entry was not stored");
}

#[tokio::test]
async fn exact_repeat_and_paraphrase_hit_different_question_misses() {
    let (h, _d) = cached();
    let embed_us = |hd: &reqwest::header::HeaderMap| {
        hd.get("x-deja-embed-us")
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap())
    };
    let (hd, first) = ask(&h, chat("mock/m", "How do I reset my password?"), &[]).await;
    assert_eq!(cache_status(&hd), "miss");
    assert!(embed_us(&hd).is_some_and(|us| us > 0), "a miss embedded");
    stored(&h, 1).await;

    let (hd, again) = ask(&h, chat("mock/m", "how do I reset my password"), &[]).await;
    assert_eq!(cache_status(&hd), "hit-exact");
    assert_eq!(again, first);
    assert!(hd.get("x-deja-cache-entry").is_some());
    assert_eq!(embed_us(&hd), None, "an exact hit never embeds");

    let (hd, para) = ask(&h, chat("mock/m", "How can I reset my password?"), &[]).await;
    assert_eq!(cache_status(&hd), "hit-semantic");
    assert!(embed_us(&hd).is_some_and(|us| us > 0));
    let sim = similarity(&hd);
    assert!(sim > 0.8 && sim < 1.0, "{sim}");
    assert_eq!(
        para["choices"][0]["message"]["content"],
        "Mock answer to: How do I reset my password?"
    );

    let (hd, other) = ask(
        &h,
        chat("mock/m", "What is the exchange rate for euros today?"),
        &[],
    )
    .await;
    assert_eq!(cache_status(&hd), "miss");
    let nearest = similarity(&hd);
    assert!(
        nearest < 0.75,
        "a miss reports its nearest entry's similarity, below the threshold: {nearest}"
    );
    assert_eq!(
        other["choices"][0]["message"]["content"],
        "Mock answer to: What is the exchange rate for euros today?"
    );
    assert_eq!(
        h.mock.state.stats().calls,
        2,
        "only the two misses reached the provider"
    );
}

#[tokio::test]
async fn partitions_separate_params_namespace_model_and_system_prompt() {
    let (h, _d) = cached();
    let q = "How do I reset my password?";
    ask(&h, chat("mock/m", q), &[]).await;
    stored(&h, 1).await;
    let mut hot = chat("mock/m", q);
    hot["temperature"] = json!(1.3);
    let (hd, _) = ask(&h, hot, &[]).await;
    assert_eq!(
        cache_status(&hd),
        "miss",
        "temperature splits the partition"
    );
    let (hd, _) = ask(
        &h,
        chat("mock/m", q),
        &[("x-deja-cache-namespace", "tenant-b")],
    )
    .await;
    assert_eq!(cache_status(&hd), "miss", "namespace splits the partition");
    let (hd, _) = ask(&h, chat("mock/other-model", q), &[]).await;
    assert_eq!(cache_status(&hd), "miss", "model splits the partition");
    let sys = json!({"model": "mock/m", "messages": [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": q}]});
    let (hd, _) = ask(&h, sys, &[]).await;
    assert_eq!(
        cache_status(&hd),
        "miss",
        "system prompt splits the partition"
    );
    // `stream` and `user` do not.
    let mut same = chat("mock/m", q);
    same["user"] = json!("someone-else");
    let (hd, _) = ask(&h, same, &[]).await;
    assert_eq!(cache_status(&hd), "hit-exact");
}

#[tokio::test]
async fn stream_and_non_stream_replay_each_other() {
    let (h, _d) = cached();
    // Stored from a non-streamed reply, served as a stream with usage.
    let (_, first) = ask(&h, chat("mock/m", "Where can I see my card PIN?"), &[]).await;
    stored(&h, 1).await;
    let mut s = chat("mock/m", "Where can I see my card PIN?");
    s["stream"] = json!(true);
    s["stream_options"] = json!({"include_usage": true});
    let (hd, body) = ask(&h, s, &[]).await;
    assert_eq!(cache_status(&hd), "hit-exact");
    assert_eq!(hd["content-type"], "text/event-stream");
    let data = sse_data(body.as_str().unwrap());
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
    assert_eq!(
        content,
        first["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert_eq!(chunks.last().unwrap()["usage"], first["usage"]);

    // Stored from a stream, served as JSON.
    let mut s = chat("mock/m", "Can I change my delivery address after ordering?");
    s["stream"] = json!(true);
    let (hd, _) = ask(&h, s, &[]).await;
    assert_eq!(cache_status(&hd), "miss");
    stored(&h, 2).await;
    let (hd, v) = ask(
        &h,
        chat("mock/m", "Can I change my delivery address after ordering?"),
        &[],
    )
    .await;
    assert_eq!(cache_status(&hd), "hit-exact");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Mock answer to: Can I change my delivery address after ordering?"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(h.mock.state.stats().calls, 2);
}

#[tokio::test]
async fn request_controls() {
    let (h, _d) = cached();
    let q = chat("mock/m", "Do you ship to Canada?");
    let (hd, _) = ask(&h, q.clone(), &[("x-deja-cache", "off")]).await;
    assert_eq!(cache_status(&hd), "bypass");
    let (hd, _) = ask(&h, q.clone(), &[("x-deja-cache", "read-only")]).await;
    assert_eq!(cache_status(&hd), "miss");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (hd, _) = ask(&h, q.clone(), &[("cache-control", "no-store")]).await;
    assert_eq!(
        cache_status(&hd),
        "miss",
        "read-only and no-store stored nothing"
    );
    ask(&h, q.clone(), &[("x-deja-cache", "write-only")]).await;
    stored(&h, 1).await;
    let (hd, _) = ask(&h, q.clone(), &[("cache-control", "no-cache")]).await;
    assert_eq!(cache_status(&hd), "miss", "no-cache does not read");
    let (hd, _) = ask(&h, q.clone(), &[]).await;
    assert_eq!(cache_status(&hd), "hit-exact");
    // A threshold of 1 leaves only exact hits.
    let (hd, _) = ask(
        &h,
        chat("mock/m", "Do you deliver to Canada?"),
        &[("x-deja-cache-threshold", "1")],
    )
    .await;
    assert_eq!(cache_status(&hd), "miss");
    for (k, v) in [
        ("x-deja-cache-threshold", "1.5"),
        ("x-deja-cache", "sometimes"),
        ("x-deja-cache-ttl", "-3"),
    ] {
        let r = h
            .client
            .post(h.url("/v1/chat/completions"))
            .header(k, v)
            .json(&q)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{k}: {v}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["param"], k);
    }
}

#[tokio::test]
async fn errors_and_truncated_replies_are_not_stored() {
    let (h, _d) = cached();
    h.mock.state.set_behaviour(Behaviour::Fail {
        status: 500,
        body: "boom".into(),
    });
    let r = h
        .post(
            "/v1/chat/completions",
            chat("mock/m", "What are your opening hours?"),
        )
        .await;
    assert_eq!(r.status(), 500);
    h.mock.state.set_behaviour(Behaviour::Normal);
    let mut cut = chat("mock/m", "What are your opening hours?");
    cut["max_tokens"] = json!(2);
    let (_, v) = ask(&h, cut.clone(), &[]).await;
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (hd, _) = ask(&h, cut, &[]).await;
    assert_eq!(cache_status(&hd), "miss", "a reply cut short is not stored");
    // An interrupted stream is not stored either.
    h.mock
        .state
        .set_behaviour(Behaviour::DropMidStream { after_chunks: 2 });
    let mut s = chat("mock/m", "Is there parking nearby?");
    s["stream"] = json!(true);
    ask(&h, s.clone(), &[]).await;
    h.mock.state.set_behaviour(Behaviour::Normal);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Checked before the next request: that one completes and is stored.
    let cache = h.state().gateway.cache.clone().unwrap();
    assert_eq!(cache.handle.store.len(), 0);
    let (hd, _) = ask(&h, s, &[]).await;
    assert_eq!(cache_status(&hd), "miss");
}

#[tokio::test]
async fn concurrent_identical_misses_are_coalesced() {
    let (h, _d) = cached();
    h.mock.state.set_behaviour(Behaviour::Stall { ms: 400 });
    let q = chat("mock/m", "How long does a refund take?");
    let mut s = q.clone();
    s["stream"] = json!(true);
    let futs = (0..8).map(|i| ask(&h, if i % 2 == 0 { q.clone() } else { s.clone() }, &[]));
    let results = join_all(futs).await;
    assert_eq!(
        h.mock.state.stats().calls,
        1,
        "one upstream call for eight identical requests"
    );
    let coalesced = results
        .iter()
        .filter(|(hd, _)| hd.get("x-deja-cache-coalesced").is_some())
        .count();
    assert_eq!(coalesced, 7);
    for (i, (hd, body)) in results.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(
                body["choices"][0]["message"]["content"],
                "Mock answer to: How long does a refund take?"
            );
        } else {
            assert_eq!(hd["content-type"], "text/event-stream");
            assert!(body.as_str().unwrap().ends_with("data: [DONE]\n\n"));
        }
    }
}

#[tokio::test]
async fn entries_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start_cached("", dir.path());
    ask(&h, chat("mock/m", "Can I open a joint account?"), &[]).await;
    stored(&h, 1).await;
    let toml_text = format!(
        "[providers.mock]\nkind = \"openai-compatible\"\nbase_url = \"{}\"\n",
        h.mock.base_url()
    );
    h.gw.take().unwrap().stop();
    h.gw = Some(Harness::gateway(&toml_text, Some(dir.path())));
    let (hd, _) = ask(&h, chat("mock/m", "Can I open a joint account?"), &[]).await;
    assert_eq!(cache_status(&hd), "hit-exact");
    let (hd, _) = ask(
        &h,
        chat("mock/m", "Is it possible to open a joint account?"),
        &[],
    )
    .await;
    assert_eq!(cache_status(&hd), "hit-semantic");
    assert_eq!(h.mock.state.stats().calls, 1);
}

#[tokio::test]
async fn ttl_expires_entries() {
    let (h, _d) = cached();
    let q = chat("mock/m", "Is the branch open on Sunday?");
    ask(&h, q.clone(), &[("x-deja-cache-ttl", "1")]).await;
    stored(&h, 1).await;
    let (hd, _) = ask(&h, q.clone(), &[]).await;
    assert_eq!(cache_status(&hd), "hit-exact");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (hd, _) = ask(&h, q, &[]).await;
    assert_eq!(cache_status(&hd), "miss", "expired after its ttl");
}

#[tokio::test]
async fn refused_candidate_is_a_miss_with_its_reason_and_a_paraphrase_is_served() {
    let (h, _d) = cached();
    ask(
        &h,
        chat("mock/m", "Is it safe to smoke before surgery?"),
        &[],
    )
    .await;
    stored(&h, 1).await;
    // Close in embedding space, opposite in meaning: refused, goes upstream.
    let (hd, v) = ask(
        &h,
        chat("mock/m", "Is it safe to smoke after surgery?"),
        &[],
    )
    .await;
    assert_eq!(cache_status(&hd), "miss");
    assert_eq!(hd["x-deja-cache-refused"], "temporal_order");
    let sim = similarity(&hd);
    assert!(
        sim >= 0.75,
        "the refused candidate was above the threshold: {sim}"
    );
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Mock answer to: Is it safe to smoke after surgery?"
    );
    // A real paraphrase of the stored question is served.
    let (hd, v) = ask(&h, chat("mock/m", "Is smoking before surgery safe?"), &[]).await;
    assert_eq!(cache_status(&hd), "hit-semantic", "{hd:?}");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Mock answer to: Is it safe to smoke before surgery?"
    );
    // The refusal is counted by reason.
    let m = h
        .client
        .get(h.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("deja_cache_refusals_total{reason=\"temporal_order\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("deja_cache_lookups_total{result=\"hit_semantic\"} 1"),
        "{m}"
    );
}

/// Support questions and the same questions with typing slips.
const MISSPELT: &[(&str, &str)] = &[
    ("How do I reset my password?", "How do I reset my passwrod?"),
    ("How can I track my order?", "How can I tarck my order?"),
    ("What is your refund policy?", "What is your refnud policy?"),
    (
        "How do I cancel my subscription?",
        "How do I cancle my subscritpion?",
    ),
    (
        "Can I change my shipping address?",
        "Can I chnage my shipping adress?",
    ),
    (
        "How long does delivery take?",
        "How long does delviery take?",
    ),
    (
        "Do you ship internationally?",
        "Do you ship internationaly?",
    ),
    ("Where is my order?", "Where is my ordre?"),
    (
        "How do I update my payment method?",
        "How do I updaet my paymnet method?",
    ),
    ("Why was my card declined?", "Why was my crad declined?"),
    ("How do I delete my account?", "How do I deleet my acount?"),
    (
        "Can I return an item without a receipt?",
        "Can I retrun an item without a reciept?",
    ),
];

#[tokio::test]
async fn misspelt_questions_are_served_the_clean_questions_answer() {
    let mut served = Vec::new();
    for respell in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let h = Harness::start_cached(&format!("[cache]\nrespell = {respell}\n"), dir.path());
        for (n, (clean, _)) in MISSPELT.iter().enumerate() {
            ask(&h, chat("mock/m", clean), &[]).await;
            stored(&h, n as u64 + 1).await;
        }
        let mut hits = 0;
        for (clean, typo) in MISSPELT {
            let (hd, v) = ask(&h, chat("mock/m", typo), &[("x-deja-cache", "read-only")]).await;
            if cache_status(&hd) == "hit-semantic" {
                assert_eq!(
                    v["choices"][0]["message"]["content"],
                    format!("Mock answer to: {clean}"),
                    "{typo}"
                );
                hits += 1;
            }
        }
        served.push(hits);
    }
    // corrected before embedding, every slip finds its question; embedded as written,
    // most fall below the similarity threshold
    assert_eq!(served[0], MISSPELT.len(), "respell on: {served:?}");
    assert!(served[1] <= MISSPELT.len() / 2, "respell off: {served:?}");
}
