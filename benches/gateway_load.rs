//! Load benchmark: the same load against the mock provider directly and through deja, in
//! one run, for non-streaming and streaming chat completions.
//!
//! - open loop at a fixed rate (default 2,000 req/s): latency measured from each request's
//!   send (tokio's 1 ms timer granularity rules out measuring from the scheduled time at
//!   this scale); deja's added latency = through - direct;
//! - closed loop: N concurrent connections as fast as they go: maximum throughput.
//!
//! Both servers run as real processes (`deja serve` with its default logging to a file,
//! `deja-mock --no-record`, the mock provider binary of crates/deja-mock, found next to
//! the `deja` binary or at `DEJA_MOCK_BIN`); the load generator is a single-threaded tokio
//! runtime in this process. Run:
//! `cargo build --release -p deja-mock && cargo bench --bench gateway_load -- --seconds 10 --rate 2000 --concurrency 64`
//! (`--busy-poll-us N` starts deja with `server.busy_poll_us = N`; `--no-semantic` skips
//! the semantic-hit phase, `--only-semantic` runs only it; `DEJA_BENCH_EXE=path` runs
//! another `deja` binary, e.g. an older build: on this VM run-to-run variation is large,
//! so compare two builds by alternating several runs of each; `--nginx [PATH]` adds the
//! same load through nginx as a reverse proxy to the same mock, a reference for what one
//! proxy hop costs on the machine; see `start_nginx`).

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    seconds: f64,
    rate: f64,
    concurrency: usize,
    deja_workers: usize,
    busy_poll_us: u64,
    semantic: bool,
    only_semantic: bool,
    nginx: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        seconds: 10.0,
        rate: 2000.0,
        concurrency: 64,
        deja_workers: 0,
        busy_poll_us: 0,
        semantic: true,
        only_semantic: false,
        nginx: None,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--seconds" => a.seconds = v.parse().expect("--seconds N"),
            "--rate" => a.rate = v.parse().expect("--rate N"),
            "--concurrency" => a.concurrency = v.parse().expect("--concurrency N"),
            "--deja-workers" => a.deja_workers = v.parse().expect("--deja-workers N"),
            "--busy-poll-us" => a.busy_poll_us = v.parse().expect("--busy-poll-us N"),
            "--nginx" => {
                // Optional path; a following flag means "nginx from PATH".
                if v.is_empty() || v.starts_with("--") {
                    a.nginx = Some("nginx".into());
                    i += 1;
                    continue;
                }
                a.nginx = Some(v);
            }
            "--no-semantic" | "--only-semantic" => {
                a.semantic = argv[i] == "--only-semantic";
                a.only_semantic = a.semantic;
                i += 1;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

struct Proc(Child);
impl Drop for Proc {
    /// SIGTERM, then SIGKILL if it is still there after 5 s: a killed nginx master
    /// would leave its workers running (and holding the bench's output open).
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_up(port: u16, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server on {port} did not come up");
}

/// CPU time (user + system) a process has used so far, in microseconds
/// (`/proc/<pid>/stat`; `None` elsewhere).
fn cpu_time_us(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks * 1_000_000 / hz as u64)
}

/// CPU time of `pid` and its child processes (nginx's workers), in microseconds.
fn cpu_time_tree_us(pid: u32) -> Option<u64> {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .try_fold(cpu_time_us(pid)?, |sum, c| Some(sum + cpu_time_us(c)?))
}

/// CPU microseconds `pid` (with its children) spent per request while `phase` ran.
async fn cpu_per_request<F: std::future::Future<Output = Sample>>(
    pid: u32,
    phase: F,
) -> (Sample, Option<f64>) {
    let before = cpu_time_tree_us(pid);
    let s = phase.await;
    let n = s.latencies_us.len() + s.errors;
    let per = match (before, cpu_time_tree_us(pid)) {
        (Some(a), Some(b)) if n > 0 => Some((b - a) as f64 / n as f64),
        _ => None,
    };
    (s, per)
}

#[derive(Default)]
struct Sample {
    latencies_us: Vec<u64>,
    overhead_us: Vec<u64>,
    errors: usize,
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

async fn one(client: &reqwest::Client, url: &str, body: &Arc<Vec<u8>>) -> Result<Option<u64>, ()> {
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.as_ref().clone())
        .send()
        .await
        .map_err(|_| ())?;
    if !r.status().is_success() {
        return Err(());
    }
    let overhead = r
        .headers()
        .get("x-deja-overhead-us")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    r.bytes().await.map_err(|_| ())?;
    Ok(overhead)
}

async fn open_loop(
    client: &reqwest::Client,
    url: &str,
    body: Arc<Vec<u8>>,
    rate: f64,
    seconds: f64,
) -> Sample {
    let n = (rate * seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let scheduled = start + interval * i as u32;
        tokio::time::sleep_until(scheduled).await;
        let (c, u, b) = (client.clone(), url.to_owned(), body.clone());
        handles.push(tokio::spawn(async move {
            // Latency from the actual send: tokio's timer wakes up to 1 ms after the
            // scheduled time, which would otherwise dominate sub-millisecond numbers.
            let sent = tokio::time::Instant::now();
            let r = one(&c, &u, &b).await;
            (r, sent.elapsed().as_micros() as u64)
        }));
    }
    let mut s = Sample::default();
    for h in handles {
        match h.await.unwrap() {
            (Ok(o), lat) => {
                s.latencies_us.push(lat);
                s.overhead_us.extend(o);
            }
            (Err(()), _) => s.errors += 1,
        }
    }
    s.latencies_us.sort_unstable();
    s.overhead_us.sort_unstable();
    s
}

async fn closed_loop(
    client: &reqwest::Client,
    url: &str,
    body: Arc<Vec<u8>>,
    conc: usize,
    seconds: f64,
) -> (f64, usize) {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..conc {
        let (c, u, b) = (client.clone(), url.to_owned(), body.clone());
        handles.push(tokio::spawn(async move {
            let (mut ok, mut err) = (0usize, 0usize);
            while Instant::now() < deadline {
                match one(&c, &u, &b).await {
                    Ok(_) => ok += 1,
                    Err(()) => err += 1,
                }
            }
            (ok, err)
        }));
    }
    let (mut ok, mut err) = (0, 0);
    for h in handles {
        let (o, e) = h.await.unwrap();
        ok += o;
        err += e;
    }
    (ok as f64 / started.elapsed().as_secs_f64(), err)
}

fn main() {
    let args = parse_args();
    let exe = std::env::var("DEJA_BENCH_EXE").unwrap_or_else(|_| env!("CARGO_BIN_EXE_deja").into());
    let exe = exe.as_str();
    // A workspace member's binary: `cargo bench` of deja does not build it.
    let mock_exe = std::env::var("DEJA_MOCK_BIN").map_or_else(
        |_| std::path::Path::new(env!("CARGO_BIN_EXE_deja")).with_file_name("deja-mock"),
        std::path::PathBuf::from,
    );
    assert!(
        mock_exe.exists(),
        "{} not found: build it first (`cargo build --release -p deja-mock`) or set DEJA_MOCK_BIN",
        mock_exe.display()
    );
    let mock_port = free_port();
    let mock = Proc(
        Command::new(&mock_exe)
            .args([&mock_port.to_string(), "--no-record", "--workers", "1"])
            .stderr(Stdio::null())
            .spawn()
            .expect("start mock"),
    );
    wait_up(mock_port, "/v1/models");
    let data = std::env::temp_dir().join(format!("deja-bench-{}", std::process::id()));
    let spawn_deja = |cache: bool, log_name: &str| {
        let port = free_port();
        let log = std::fs::File::create(std::env::temp_dir().join(log_name)).unwrap();
        let p = Proc(
            Command::new(exe)
                .args(["serve", "--port", &port.to_string()])
                .env("OPENAI_API_KEY", "sk-bench")
                .env(
                    "OPENAI_BASE_URL",
                    format!("http://127.0.0.1:{mock_port}/v1"),
                )
                .env("DEJA_DATA_DIR", data.join(log_name))
                .env("DEJA__SERVER__WORKERS", args.deja_workers.to_string())
                .env("DEJA__SERVER__BUSY_POLL_US", args.busy_poll_us.to_string())
                .env("DEJA__CACHE__ENABLED", cache.to_string())
                .env("DEJA__DISCOVERY__PROBE_OLLAMA", "false")
                .env("DEJA_ADMIN_TOKEN", "bench-admin")
                .stderr(Stdio::from(log))
                .spawn()
                .expect("start deja"),
        );
        wait_up(port, "/ready");
        (p, port)
    };
    // The proxy path (cache off) and the exact-hit path (cache on, one repeated question).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .tcp_nodelay(true)
        .build()
        .unwrap();
    println!(
        "machine: {} cores; {} s per phase; open loop {} req/s; closed loop {} connections; deja busy_poll_us {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.seconds,
        args.rate,
        args.concurrency,
        args.busy_poll_us
    );
    if !args.only_semantic {
        let (deja_proc, deja_port) = spawn_deja(false, "deja-bench-proxy.log");
        let direct = format!("http://127.0.0.1:{mock_port}/v1/chat/completions");
        let through = format!("http://127.0.0.1:{deja_port}/v1/chat/completions");
        println!();
        println!(
            "| mode | target | p50 µs | p90 µs | p99 µs | max µs | errors | closed-loop req/s |"
        );
        println!("|---|---|---:|---:|---:|---:|---:|---:|");
        let mut proxies = vec![Proxy {
            name: "deja",
            url: through,
            pid: deja_proc.0.id(),
        }];
        let nginx = args.nginx.as_deref().map(|bin| {
            let (p, port) = start_nginx(bin, mock_port, args.deja_workers, &data);
            proxies.push(Proxy {
                name: "nginx (reference)",
                url: format!("http://127.0.0.1:{port}/v1/chat/completions"),
                pid: p.0.id(),
            });
            p
        });
        for stream in [false, true] {
            rt.block_on(proxy_rows(
                &client,
                &direct,
                mock.0.id(),
                &proxies,
                stream,
                &args,
            ));
        }
        drop(nginx);
        drop(deja_proc);
    }
    let (_cached, cached_port) = spawn_deja(true, "deja-bench-cached.log");
    if !args.only_semantic {
        let url = format!("http://127.0.0.1:{cached_port}/v1/chat/completions");
        rt.block_on(exact_hit_row(&client, &url, &args));
    }
    if args.semantic {
        rt.block_on(semantic_hits(&client, cached_port));
    }
    let _ = std::fs::remove_dir_all(&data);
}

/// One table row: latency percentiles of an open-loop sample, errors of both loops, and
/// the closed-loop throughput.
fn latency_row(mode: &str, target: &str, s: &Sample, closed_errors: usize, rps: f64) {
    let l = &s.latencies_us;
    println!(
        "| {mode} | {target} | {} | {} | {} | {} | {} | {rps:.0} |",
        pct(l, 0.5),
        pct(l, 0.9),
        pct(l, 0.99),
        l.last().copied().unwrap_or(0),
        s.errors + closed_errors,
    );
}

/// A proxy in front of the mock: deja, or the nginx reference.
struct Proxy {
    name: &'static str,
    url: String,
    pid: u32,
}

/// nginx as a reverse proxy to the mock, configured like deja on the proxy path:
/// keep-alive connections upstream, TCP_NODELAY, responses passed on as they arrive
/// (`proxy_buffering off`, for streaming), one access-log line per request (deja's
/// request log), as many workers as deja's. What it adds over the mock is the price of
/// one proxy hop on this machine, paid by a proxy that does no more than forward bytes.
fn start_nginx(bin: &str, mock_port: u16, workers: usize, data: &std::path::Path) -> (Proc, u16) {
    let dir = data.join("nginx");
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let workers = match workers {
        0 => "auto".to_owned(),
        n => n.to_string(),
    };
    let d = dir.display();
    let conf = format!(
        "daemon off;\nworker_processes {workers};\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 8192; }}\n\
         http {{\n  access_log {d}/access.log;\n\
         client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
         upstream mock {{ server 127.0.0.1:{mock_port}; keepalive 256; }}\n\
         server {{\n    listen 127.0.0.1:{port} backlog=4096;\n    tcp_nodelay on;\n\
         keepalive_requests 1000000;\n    location / {{\n      proxy_pass http://mock;\n\
         proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n\
         proxy_buffering off;\n    }}\n  }}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let p = Proc(
        Command::new(bin)
            .arg("-c")
            .arg(&path)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("--nginx: cannot start {bin}: {e}")),
    );
    wait_up(port, "/v1/models");
    (p, port)
}

/// The same chat completion against the mock directly and through each proxy (deja with
/// the cache off, and nginx if asked): open loop, then closed loop, then what each proxy
/// adds, deja's self-measured overhead and the CPU time each server process (with its
/// children) spent per open-loop request.
async fn proxy_rows(
    client: &reqwest::Client,
    direct: &str,
    mock_pid: u32,
    proxies: &[Proxy],
    stream: bool,
    args: &Args,
) {
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "What are your opening hours on weekends?"}],
        "stream": stream,
    });
    let body = Arc::new(serde_json::to_vec(&body).unwrap());
    let mode = if stream { "streaming" } else { "non-streaming" };
    // Warm every path (connections, caches).
    open_loop(client, direct, body.clone(), args.rate, 1.0).await;
    for p in proxies {
        open_loop(client, &p.url, body.clone(), args.rate, 1.0).await;
    }
    let open = |url, pid| {
        cpu_per_request(
            pid,
            open_loop(client, url, body.clone(), args.rate, args.seconds),
        )
    };
    let (d, mock_cpu) = open(direct, mock_pid).await;
    let mut through = Vec::new();
    for p in proxies {
        through.push(open(&p.url, p.pid).await);
    }
    let closed = |url| closed_loop(client, url, body.clone(), args.concurrency, args.seconds);
    let (d_rps, d_err) = closed(direct).await;
    latency_row(mode, "mock direct", &d, d_err, d_rps);
    for (p, (t, _)) in proxies.iter().zip(&through) {
        let (t_rps, t_err) = closed(&p.url).await;
        latency_row(mode, &format!("through {}", p.name), t, t_err, t_rps);
    }
    for (p, (t, _)) in proxies.iter().zip(&through) {
        let added = |q: f64| pct(&t.latencies_us, q) as i64 - pct(&d.latencies_us, q) as i64;
        println!(
            "| {mode} | **added by {}** | {} | {} | {} | | | |",
            p.name,
            added(0.5),
            added(0.9),
            added(0.99)
        );
    }
    let (t, _) = &through[0];
    println!(
        "| {mode} | deja self-measured (x-deja-overhead-us) | {} | {} | {} | {} | | |",
        pct(&t.overhead_us, 0.5),
        pct(&t.overhead_us, 0.9),
        pct(&t.overhead_us, 0.99),
        t.overhead_us.last().copied().unwrap_or(0)
    );
    let show = |c: Option<f64>| c.map_or("n/a".to_owned(), |c| format!("{c:.0}"));
    let cpu: Vec<String> = proxies
        .iter()
        .zip(&through)
        .map(|(p, (_, c))| format!("{} {}", p.name, show(*c)))
        .collect();
    println!(
        "| {mode} | CPU µs per request (user+sys): mock {} alone, {} | | | | | | |",
        show(mock_cpu),
        cpu.join(", ")
    );
}

/// One question repeated against a deja with the cache on: the first request misses and
/// stores, every later one is an exact hit.
async fn exact_hit_row(client: &reqwest::Client, url: &str, args: &Args) {
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "What are your opening hours on weekends?"}],
    });
    let body = Arc::new(serde_json::to_vec(&body).unwrap());
    open_loop(client, url, body.clone(), args.rate, 1.0).await;
    let hit = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.as_ref().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        hit.headers()["x-deja-cache"],
        "hit-exact",
        "the repeated question is an exact hit"
    );
    let t = open_loop(client, url, body.clone(), args.rate, args.seconds).await;
    let (rps, err) = closed_loop(client, url, body.clone(), args.concurrency, args.seconds).await;
    latency_row("exact cache hit", "through deja (cache on)", &t, err, rps);
}

/// Semantic hits against embedding alone, one request at a time on one connection:
/// banking77's training questions are stored (admin insert), its test questions asked;
/// the same test questions are embedded through `/v1/embeddings` with the local model.
/// Both paths pay HTTP + embedding; the difference is the cache's own cost (index search,
/// verification, reading and replaying the entry).
async fn semantic_hits(client: &reqwest::Client, port: u16) {
    // without the banking77 folder (env DEJA_BANKING77_DIR, by default ../shared/data/banking77)
    // the phase reports nothing rather than failing the bench
    let train = common::banking77("train.csv").unwrap_or_default();
    let test = common::banking77("test.csv").unwrap_or_default();
    if train.is_empty() || test.is_empty() {
        println!(
            "\n(semantic hits skipped: {} not found; set DEJA_BANKING77_DIR)",
            common::banking77_dir().display()
        );
        return;
    }
    for chunk in train.chunks(500) {
        let entries: Vec<serde_json::Value> = chunk
            .iter()
            .map(|q| serde_json::json!({"prompt": q, "response": "Stored answer.", "model": "gpt-4o-mini"}))
            .collect();
        let r = client
            .post(format!("http://127.0.0.1:{port}/admin/cache/entries"))
            .bearer_auth("bench-admin")
            .json(&serde_json::json!({ "entries": entries }))
            .send()
            .await
            .expect("insert");
        assert!(r.status().is_success(), "insert: {}", r.status());
    }
    let mut run = SemanticRun::default();
    for q in &test {
        run.ask(client, port, q).await;
    }
    run.report(train.len(), test.len());
}

/// Semantic-hit samples (µs).
#[derive(Default)]
struct SemanticRun {
    hit_us: Vec<u64>,
    embed_us: Vec<u64>,
    /// The same, minus the time each request waited for its embedding
    /// (x-deja-embed-us): both paths embed once, and on this VM one inference varies by
    /// milliseconds, which drowns a sub-millisecond difference between two medians of
    /// totals.
    hit_rest: Vec<u64>,
    embed_rest: Vec<u64>,
    other: usize,
}

fn embed_wait_us(r: &reqwest::Response) -> u64 {
    r.headers()
        .get("x-deja-embed-us")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("x-deja-embed-us")
}

impl SemanticRun {
    /// Ask `q` as a read-only chat completion, then embed it, on the server at `port`.
    async fn ask(&mut self, client: &reqwest::Client, port: u16, q: &str) {
        let base = format!("http://127.0.0.1:{port}");
        let body = serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": q}]});
        let t = Instant::now();
        let r = client
            .post(format!("{base}/v1/chat/completions"))
            .header("x-deja-cache", "read-only")
            .json(&body)
            .send()
            .await
            .expect("ask");
        let status = r
            .headers()
            .get("x-deja-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let wait = r
            .headers()
            .get("x-deja-embed-us")
            .map(|_| embed_wait_us(&r));
        r.bytes().await.expect("body");
        let us = t.elapsed().as_micros() as u64;
        if status == "hit-semantic" {
            self.hit_us.push(us);
            self.hit_rest
                .push(us.saturating_sub(wait.expect("a semantic hit embedded")));
        } else {
            self.other += 1;
        }
        let t = Instant::now();
        let r = client
            .post(format!("{base}/v1/embeddings"))
            .json(&serde_json::json!({"model": "local/all-MiniLM-L6-v2", "input": q}))
            .send()
            .await
            .expect("embed");
        assert!(r.status().is_success(), "embeddings: {}", r.status());
        let wait = embed_wait_us(&r);
        r.bytes().await.expect("body");
        let us = t.elapsed().as_micros() as u64;
        self.embed_us.push(us);
        self.embed_rest.push(us.saturating_sub(wait));
    }

    fn report(&mut self, stored: usize, asked: usize) {
        for v in [
            &mut self.hit_us,
            &mut self.embed_us,
            &mut self.hit_rest,
            &mut self.embed_rest,
        ] {
            v.sort_unstable();
        }
        println!(
            "\nsemantic hits: {stored} stored banking77 questions, {asked} test questions asked one at a time: {} hit-semantic, {} not",
            self.hit_us.len(),
            self.other
        );
        println!("\n| path | p50 µs | p90 µs | p99 µs |\n|---|---:|---:|---:|");
        let row = |name: &str, v: &[u64]| {
            println!(
                "| {name} | {} | {} | {} |",
                pct(v, 0.5),
                pct(v, 0.9),
                pct(v, 0.99)
            )
        };
        let diff = |name: &str, a: &[u64], b: &[u64]| {
            println!(
                "| **{name} (p50)** | {} | | |",
                pct(a, 0.5) as i64 - pct(b, 0.5) as i64
            )
        };
        row("semantic hit (chat completion)", &self.hit_us);
        row(
            "embedding alone (/v1/embeddings, local model)",
            &self.embed_us,
        );
        diff("semantic hit - embedding", &self.hit_us, &self.embed_us);
        row("semantic hit minus its own embedding wait", &self.hit_rest);
        row(
            "embedding request minus its own embedding wait",
            &self.embed_rest,
        );
        diff(
            "difference of those: the cache's own cost",
            &self.hit_rest,
            &self.embed_rest,
        );
    }
}
