//! The `deja` binary itself: zero-config start-up, config errors, JSON logs without
//! secrets, graceful shutdown on SIGTERM and SIGINT.

mod common;

use common::free_port;

use deja_mock::{Behaviour, MockProvider, MockSettings};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn deja() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_deja"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DEJA__DISCOVERY__PROBE_OLLAMA", "false");
    c
}

fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(r) = raw::blocking_get(&format!("http://127.0.0.1:{port}/ready")) {
            if r == 200 {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("deja did not become ready on port {port}");
}

mod raw {
    /// A tiny blocking GET over std, so this test needs no extra runtime.
    pub fn blocking_get(url: &str) -> std::io::Result<u16> {
        use std::io::{Read, Write};
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_once('/').unwrap();
        let mut s = std::net::TcpStream::connect(host)?;
        write!(
            s,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        Ok(buf
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0))
    }
}

fn post_chat(port: u16, content: &str) -> (u16, String) {
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]});
    post_body(port, &body.to_string())
}

/// POST a JSON chat body on a new connection; the status and the whole raw reply.
fn post_body(port: u16, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = String::new();
    std::io::Read::read_to_string(&mut s, &mut buf).unwrap();
    let code = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, buf)
}

/// `deja serve` with JSON logs, zero-config against `mock` as OpenAI with `key`; ready.
fn serve_json_logs(mock: &MockProvider, key: &str, data: &std::path::Path) -> (Kill, u16) {
    let port = free_port();
    let child = deja()
        .args(["serve", "--port", &port.to_string(), "--log-format", "json"])
        .env("OPENAI_API_KEY", key)
        .env("OPENAI_BASE_URL", mock.base_url())
        .env("DEJA_DATA_DIR", data)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let child = Kill(child);
    wait_ready(port);
    (child, port)
}

/// SIGTERM, wait, and everything the process logged.
fn stop_and_logs(child: &mut Kill) -> (std::process::ExitStatus, String) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status();
    let status = child.0.wait().unwrap();
    let mut logs = String::new();
    for line in BufReader::new(child.0.stderr.take().unwrap()).lines() {
        logs.push_str(&line.unwrap());
        logs.push('\n');
    }
    (status, logs)
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn zero_config_honours_openai_base_url_and_logs_json_without_secrets() {
    let mock = MockProvider::start(MockSettings::default()).unwrap();
    let data = tempfile::tempdir().unwrap();
    let (mut child, port) = serve_json_logs(&mock, "sk-secret-zero-config", data.path());
    let (code, body) = post_chat(port, "private question text");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("Mock answer to: private question text"));
    assert_eq!(
        mock.state.requests()[0].authorization.as_deref(),
        Some("Bearer sk-secret-zero-config")
    );

    let (status, logs) = stop_and_logs(&mut child);
    assert!(status.success(), "exit on SIGTERM: {status:?}");
    let request_line = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "request" && v["route"] == "/v1/chat/completions")
        .unwrap_or_else(|| panic!("no JSON request log line in:\n{logs}"));
    assert_eq!(request_line["status"], 200);
    assert_eq!(request_line["provider"], "openai");
    assert_eq!(request_line["model"], "gpt-4o-mini");
    assert!(request_line["request_id"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    assert!(request_line["latency_us"].as_u64().is_some());
    assert_eq!(request_line["completed"], true, "the whole body was sent");
    assert!(
        !logs.contains("sk-secret-zero-config"),
        "API key leaked into logs"
    );
    assert!(
        !logs.contains("private question text"),
        "prompt text leaked into logs"
    );
}

#[test]
fn sigterm_lets_in_flight_requests_finish() {
    signal_lets_in_flight_requests_finish("-TERM");
}

/// SIGINT (Ctrl-C) too: actix-server alone would stop at once, dropping the request.
#[test]
fn sigint_lets_in_flight_requests_finish() {
    signal_lets_in_flight_requests_finish("-INT");
}

fn signal_lets_in_flight_requests_finish(signal: &str) {
    let mock = MockProvider::start(MockSettings::default()).unwrap();
    mock.state.set_behaviour(Behaviour::Stall { ms: 1500 });
    let port = free_port();
    let child = deja()
        .args(["serve", "--port", &port.to_string()])
        .env("OPENAI_API_KEY", "sk-x")
        .env("OPENAI_BASE_URL", mock.base_url())
        .env("DEJA_DATA_DIR", tempfile::tempdir().unwrap().path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Kill(child);
    wait_ready(port);
    let inflight = std::thread::spawn(move || post_chat(port, "slow one"));
    // Wait until the request reached the provider, then ask deja to stop.
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.state.stats().calls == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(mock.state.stats().calls, 1);
    let _ = Command::new("kill")
        .args([signal, &child.0.id().to_string()])
        .status();
    let (code, body) = inflight.join().unwrap();
    assert_eq!(code, 200, "in-flight request finished: {body}");
    assert!(child.0.wait().unwrap().success());
    // And the listener is gone.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn unknown_config_key_fails_start_up_naming_file_and_field() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(b"[server]\nport = 1\n[providers.x]\nkind = \"openai-compatible\"\nbase_url = \"http://127.0.0.1:9/v1\"\nbase_ulr = \"typo\"\n").unwrap();
    let out = deja()
        .args(["serve", "--config"])
        .arg(f.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&f.path().display().to_string()), "{err}");
    assert!(
        err.contains("providers.x") && err.contains("base_ulr") && err.contains("expected one of"),
        "{err}"
    );
}

/// Issue 14, log amplification: a client's huge model name is clipped in the request log
/// line, and new cache partitions (one per `seed`) add no hnsw_rs lines at `info`.
#[test]
fn client_fields_are_clipped_in_logs_and_new_partitions_are_quiet() {
    let mock = MockProvider::start(MockSettings::default()).unwrap();
    let data = tempfile::tempdir().unwrap();
    let (mut child, port) = serve_json_logs(&mock, "sk-x", data.path());
    let huge = format!("openai/{}", "m".repeat(200_000));
    for _ in 0..3 {
        let body = json!({"model": huge, "messages": [{"role": "user", "content": "hi"}]});
        let (code, reply) = post_body(port, &body.to_string());
        assert_eq!(code, 200, "{}", &reply[..200]);
    }
    for seed in 0..5 {
        let body = json!({"model": "gpt-4o-mini", "seed": seed, "messages": [{"role": "user", "content": "What is the refund policy?"}]});
        assert_eq!(post_body(port, &body.to_string()).0, 200);
    }
    let (_, logs) = stop_and_logs(&mut child);
    // Three request lines with the huge model, each clipped to a few hundred bytes.
    assert!(logs.len() < 40_000, "{} bytes of log", logs.len());
    let clipped = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "request")
        .filter_map(|v| v["model"].as_str().map(str::to_owned))
        .filter(|m| m.ends_with("bytes]"))
        .count();
    assert_eq!(clipped, 3, "{logs}");
    assert!(
        !logs.to_ascii_lowercase().contains("hnsw"),
        "hnsw_rs chatter at info:\n{logs}"
    );
}
