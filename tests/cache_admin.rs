//! The cache inspection API and the warm-up insert path, with the real model and sled.

mod common;

use common::{chat, config_from, Harness, ADMIN_TOKEN};
use serde_json::{json, Value};

fn auth(rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    rb.bearer_auth(ADMIN_TOKEN)
}

async fn admin(
    h: &Harness,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rb = auth(h.client.request(method, h.url(path)));
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn admin_routes_need_the_token_and_are_closed_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start_cached("", dir.path());
    let r = h
        .client
        .get(h.url("/admin/cache/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = h
        .client
        .get(h.url("/admin/cache/stats"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");
    let (s, _) = admin(&h, reqwest::Method::GET, "/admin/cache/stats", None).await;
    assert_eq!(s, 200);

    // A gateway with no admin token configured refuses every admin route.
    let dir2 = tempfile::tempdir().unwrap();
    let d = dir2.path().display().to_string();
    let cfg = config_from(
        &format!(
            "[providers.mock]\nkind = \"openai-compatible\"\nbase_url = \"{}\"\n",
            h.mock.base_url()
        ),
        &[("DEJA_DATA_DIR", d.as_str())],
    );
    let gw = deja::http::spawn(cfg).unwrap();
    let r = reqwest::Client::new()
        .delete(format!("{}/admin/cache", gw.url()))
        .bearer_auth("")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("DEJA_ADMIN_TOKEN"));
    gw.stop();
}

#[tokio::test]
async fn insert_list_get_search_delete_export() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start_cached("", dir.path());
    let (s, v) = admin(
        &h,
        reqwest::Method::POST,
        "/admin/cache/entries",
        Some(json!({"entries": [
            {"prompt": "How do I activate my new card?", "response": "Open the app and tap Activate.", "model": "mock/m"},
            {"messages": [{"role": "user", "content": "What fees apply to transfers abroad?"}], "response": "Transfers abroad cost 1%.", "model": "mock/m", "namespace": "bank"},
            {"prompt": "how do I activate my new card", "response": "dup", "model": "mock/m"},
            {"prompt": "Where is my parcel?", "model": "mock/m"},
            {"prompt": "Where is my parcel?", "response": "", "model": "mock/m"},
            {"prompt": "Can I pay with PayPal?", "response": "Yes.", "model": "mock/m", "colour": "red"}
        ]})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (
            v["inserted"].as_u64(),
            v["skipped"].as_u64(),
            v["failed"].as_u64()
        ),
        (Some(2), Some(1), Some(3))
    );
    let statuses: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "inserted",
            "inserted",
            "duplicate",
            "failed",
            "failed",
            "failed"
        ]
    );
    assert!(v["results"][3]["error"]
        .as_str()
        .unwrap()
        .contains("response"));
    assert!(v["results"][5]["error"]
        .as_str()
        .unwrap()
        .contains("colour"));
    let card_id = v["results"][0]["id"].as_str().unwrap().to_owned();

    // A warmed entry answers real requests.
    let r = h
        .post(
            "/v1/chat/completions",
            chat("mock/m", "How can I activate my new card?"),
        )
        .await;
    assert_eq!(r.headers()["x-deja-cache"], "hit-semantic");
    assert_eq!(r.headers()["x-deja-cache-entry"].to_str().unwrap(), card_id);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Open the app and tap Activate."
    );
    assert_eq!(h.mock.state.stats().calls, 0);

    let (_, page) = admin(
        &h,
        reqwest::Method::GET,
        "/admin/cache/entries?text=transfers",
        None,
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["namespace"], "bank");
    let (_, page) = admin(
        &h,
        reqwest::Method::GET,
        "/admin/cache/entries?limit=1",
        None,
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let next = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, page2) = admin(
        &h,
        reqwest::Method::GET,
        &format!("/admin/cache/entries?limit=1&after={next}"),
        None,
    )
    .await;
    assert_ne!(page2["items"][0]["id"], page["items"][0]["id"]);
    let (s, _) = admin(
        &h,
        reqwest::Method::GET,
        "/admin/cache/entries?bogus=1",
        None,
    )
    .await;
    assert_eq!(s, 400);

    let (s, e) = admin(
        &h,
        reqwest::Method::GET,
        &format!("/admin/cache/entries/{card_id}"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(e["prompt_text"], "How do I activate my new card?");
    assert_eq!(e["hits"], 1);
    let (s, _) = admin(
        &h,
        reqwest::Method::GET,
        "/admin/cache/entries/999999",
        None,
    )
    .await;
    assert_eq!(s, 404);

    let (s, found) = admin(
        &h,
        reqwest::Method::POST,
        "/admin/cache/search",
        Some(json!({"prompt": "how to activate the card I just received", "model": "mock/m", "k": 3})),
    )
    .await;
    assert_eq!(s, 200, "{found}");
    let c = &found["candidates"][0];
    assert_eq!(c["id"].as_str().unwrap(), card_id);
    assert!(c["similarity"].as_f64().unwrap() > 0.5);
    assert_eq!(c["would_serve"], c["above_threshold"]);
    assert!(c["verdict"].is_string() && c["detail"].is_string());
    // The namespaced entry is in another partition: not a candidate here.
    assert!(found["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["namespace"] != "bank"));

    let export = auth(h.client.get(h.url("/admin/cache/export")))
        .send()
        .await
        .unwrap();
    assert_eq!(export.headers()["content-type"], "application/x-ndjson");
    let lines: Vec<Value> = export
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);

    let (s, _) = admin(
        &h,
        reqwest::Method::DELETE,
        &format!("/admin/cache/entries/{card_id}"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let r = h
        .post(
            "/v1/chat/completions",
            chat("mock/m", "How do I activate my new card?"),
        )
        .await;
    assert_eq!(
        r.headers()["x-deja-cache"],
        "miss",
        "a deleted entry is never served"
    );
    let (s, v) = admin(
        &h,
        reqwest::Method::DELETE,
        "/admin/cache?namespace=bank",
        None,
    )
    .await;
    assert_eq!((s, v["deleted"].as_u64()), (200, Some(1)));
    let (_, st) = admin(&h, reqwest::Method::GET, "/admin/cache/stats", None).await;
    assert_eq!(st["hits"]["semantic"], 1);
    assert!(st["misses"].as_u64().unwrap() >= 1);
    assert!(st["index"]["index_state"].is_string());
}

#[tokio::test]
async fn warmup_of_the_bitext_file_fills_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start_cached("", dir.path());
    let state = dir.path().join("warmup-state.json");
    let csv = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/bitext/customer_support.csv"
    );
    let url = h.gw.as_ref().unwrap().url();
    let args: Vec<String> = [
        "warmup",
        csv,
        "--url",
        &url,
        "--token",
        ADMIN_TOKEN,
        "--prompt-col",
        "instruction",
        "--response-col",
        "response",
        "--model",
        "mock/m",
        "--limit",
        "300",
        "--no-progress",
        "--json-summary",
        "--state-file",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([state.display().to_string()])
    .collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_deja"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["rows_read"], 300);
    let inserted = summary["inserted"].as_u64().unwrap();
    let dups = summary["duplicates"].as_u64().unwrap();
    assert_eq!(inserted + dups, 300, "{summary}");
    assert!(inserted > 250);
    let (_, st) = admin(&h, reqwest::Method::GET, "/admin/cache/stats", None).await;
    assert_eq!(st["entries"].as_u64(), Some(inserted));
    // The first bitext row, reworded, is answered from the warmed cache.
    let r = h
        .post(
            "/v1/chat/completions",
            chat("mock/m", "how could I cancel the purchase 113542617735902"),
        )
        .await;
    assert_eq!(r.headers()["x-deja-cache"], "hit-semantic");
    let v: Value = r.json().await.unwrap();
    assert!(v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("cancel"));
    assert_eq!(h.mock.state.stats().calls, 0);
}
