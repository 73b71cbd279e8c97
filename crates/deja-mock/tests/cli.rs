//! The `deja-mock` binary: starts on the port asked for and serves its control endpoints.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn the_binary_serves_the_openai_mock_and_its_control_endpoints() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_deja-mock"))
        .args(["--port", "0", "--models", "m1,m2"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // "mock provider on http://127.0.0.1:PORT/v1"
    let base = line.trim().rsplit(' ').next().unwrap().to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(async {
        let c = reqwest::Client::new();
        let models: serde_json::Value =
            c.get(format!("{base}/models")).send().await?.json().await?;
        let root = base.trim_end_matches("/v1");
        let put = c
            .put(format!("{root}/_mock/behaviour"))
            .json(&serde_json::json!({"mode": "stall", "ms": 1}))
            .send()
            .await?
            .status();
        let stats: serde_json::Value = c
            .get(format!("{root}/_mock/stats"))
            .send()
            .await?
            .json()
            .await?;
        let requests = c
            .get(format!("{root}/_mock/requests"))
            .send()
            .await?
            .status();
        anyhow::Ok((models, put, stats, requests))
    });
    let _ = child.kill();
    let _ = child.wait();
    let (models, put, stats, requests) = result.unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["m1", "m2"]);
    assert!(put.is_success(), "{put}");
    assert_eq!(stats["calls"], 0);
    assert!(requests.is_success());
}
