//! Measuring the cache's answers on labelled data, through the code the gateway serves
//! with, below the HTTP layer: an in-process [`Gateway`] with a fresh cache, entries
//! stored by [`admin::insert`] (what `POST /admin/cache/entries` calls), each question
//! keyed as a chat request is ([`request_key`]) and looked up as the serving path reads
//! the cache (exact key, then the first candidate the verifier accepts; no provider is
//! ever called, so none is needed), and candidates inspected by [`admin::search`].
//!
//! One lookup per question at a floor threshold gives the answer for every threshold at
//! or above it: the served entry is the first candidate the verifier accepts, whatever the
//! threshold, so "served at t" is "served with similarity >= t".

use crate::cache::ExactKey;
use crate::config::{self, Overrides};
use crate::gateway::cached::request_key;
use crate::gateway::{admin, parse_request, CacheControls, Gateway};
use crate::providers::Endpoint;
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One labelled question pair; `group` keeps the file's other columns.
#[derive(Debug, Clone)]
pub struct Pair {
    pub q1: String,
    pub q2: String,
    pub duplicate: bool,
    pub group: String,
}

/// Read a TSV with columns `q1`, `q2`, `duplicate` (others become the group).
pub fn read_pairs(path: &Path) -> anyhow::Result<Vec<Pair>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().context("empty file")?.split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(i1), Some(i2), Some(id)) = (col("q1"), col("q2"), col("duplicate")) else {
        bail!("{}: expected columns q1, q2, duplicate", path.display());
    };
    let others: Vec<usize> = (0..header.len())
        .filter(|i| ![i1, i2, id].contains(i))
        .collect();
    let mut out = Vec::new();
    for (n, line) in lines.enumerate() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != header.len() {
            bail!(
                "{} line {}: expected {} columns, found {}",
                path.display(),
                n + 2,
                header.len(),
                f.len()
            );
        }
        let duplicate = match f[id].trim() {
            "1" | "true" => true,
            "0" | "false" => false,
            other => bail!(
                "{} line {}: duplicate must be 0 or 1, got `{other}`",
                path.display(),
                n + 2
            ),
        };
        out.push(Pair {
            q1: f[i1].to_owned(),
            q2: f[i2].to_owned(),
            duplicate,
            group: others.iter().map(|&i| f[i]).collect::<Vec<_>>().join(" / "),
        });
    }
    Ok(out)
}

/// Options shared by the evaluations.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// `off`, `balanced` or `strict` (the `[verifier]` strictness).
    pub strictness: Option<String>,
    /// Thresholds to report (the lowest is the floor sent with each lookup).
    pub thresholds: Vec<f32>,
    /// Concurrent lookups (they share embedder batches).
    pub concurrency: usize,
}

/// What one lookup was served.
#[derive(Debug, Clone, Copy, Default)]
pub struct Served {
    pub entry: Option<u64>,
    pub similarity: f32,
}

impl Served {
    pub fn at(&self, t: f32) -> Option<u64> {
        self.entry.filter(|_| self.similarity >= t)
    }
}

/// The model the evaluation's entries and questions name: routed to a provider that is
/// configured but never called (the evaluation only reads the cache).
const MODEL: &str = "eval/model";

/// An in-process gateway (no HTTP server) with a fresh cache.
pub struct Bench {
    gw: Arc<Gateway>,
    /// The actix System the gateway's actors run in, on `thread`.
    system: actix_rt::System,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Bench {
    pub fn start(opts: &EvalOptions) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        // No graph dumps: the cache lives in a temporary directory that is removed as soon
        // as the run ends. The provider is there for routing only: nothing listens on
        // port 9 (discard) and nothing is sent to it. An eval measures the cache's
        // decisions, not its overload policy: every lookup waits for its embedding.
        let mut toml_text = String::from(
            "[providers.eval]\nkind = \"openai-compatible\"\nbase_url = \"http://127.0.0.1:9/v1\"\ndiscover_models = false\n[cache]\nindex_dump = false\nmax_embed_wait_ms = 600000\n",
        );
        if let Some(s) = &opts.strictness {
            toml_text.push_str(&format!("[verifier]\nstrictness = \"{s}\"\n"));
        }
        let file = dir.path().join("eval.toml");
        std::fs::write(&file, toml_text)?;
        let env: HashMap<String, String> = std::env::vars()
            // the model and cache settings measured (`DEJA__CACHE__RESPELL=false`, ...)
            .filter(|(k, _)| {
                k.starts_with("DEJA__EMBEDDER")
                    || k.starts_with("DEJA__CACHE__")
                    || k == "ORT_DYLIB_PATH"
            })
            .chain([("DEJA__TELEMETRY__LOG_LEVEL".to_owned(), "warn".to_owned())])
            .collect();
        let overrides = Overrides {
            data_dir: Some(dir.path().join("data")),
            ..Default::default()
        };
        let cfg = config::load(Some(&file), &env, &overrides)?;
        if !cfg.cache.enabled {
            bail!("the evaluation measures the cache: cache.enabled must not be false");
        }
        // The gateway's actors (cache writer, embedder, provider pool) run in an actix
        // System of their own; the evaluation talks to them from the caller's runtime.
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let sys = actix_rt::System::new();
            match sys.block_on(async move { Gateway::start(cfg) }) {
                Ok(gw) => {
                    let _ = tx.send(Ok((gw, actix_rt::System::current())));
                    let _ = sys.run();
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        });
        let (gw, system) = rx
            .recv()
            .context("the gateway thread ended before starting")??;
        Ok(Bench {
            gw,
            system,
            thread: Some(thread),
            _dir: dir,
        })
    }

    /// Store `(namespace, question, answer)` entries; returns each one's entry id.
    pub async fn store(
        &self,
        rows: &[(String, String, String)],
    ) -> anyhow::Result<Vec<Option<u64>>> {
        let mut ids = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(256) {
            let entries: Vec<Value> = chunk
                .iter()
                .map(|(ns, q, a)| json!({"prompt": q, "response": a, "model": MODEL, "namespace": ns}))
                .collect();
            let v = admin::insert(&self.gw, admin::InsertRequest { entries })
                .await
                .map_err(|e| anyhow::anyhow!("storing entries failed: {e}"))?;
            for res in v["results"].as_array().context("results")? {
                ids.push(res["id"].as_str().and_then(|s| s.parse().ok()));
            }
        }
        Ok(ids)
    }

    /// Look each `(namespace, question)` up as the serving path would; what was served.
    pub async fn lookup(
        &self,
        rows: &[(String, String)],
        floor: f32,
        concurrency: usize,
    ) -> anyhow::Result<Vec<Served>> {
        use futures_util::StreamExt;
        // Each lookup is a task of its own: the verifier's work spreads over the runtime's
        // threads as it did over the HTTP workers, while the embedder batches the queries.
        let tasks = rows.iter().cloned().enumerate().map(|(i, (ns, q))| {
            let gw = self.gw.clone();
            async move {
                let served = tokio::spawn(async move { served(&gw, ns, &q, floor).await })
                    .await
                    .context("a lookup task failed")??;
                anyhow::Ok((i, served))
            }
        });
        let results = futures_util::stream::iter(tasks)
            .buffer_unordered(concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        let mut out = vec![Served::default(); rows.len()];
        for r in results {
            let (i, s) = r?;
            out[i] = s;
        }
        Ok(out)
    }

    /// The inspection search for `question` (candidates with verdicts and reasons).
    pub async fn search(&self, question: &str, threshold: f32, k: usize) -> anyhow::Result<Value> {
        let req: admin::SearchRequest = serde_json::from_value(
            json!({"prompt": question, "model": MODEL, "threshold": threshold, "k": k}),
        )?;
        admin::search(&self.gw, req)
            .await
            .map_err(|e| anyhow::anyhow!("search failed: {e}"))
    }
}

/// What the serving path (`gateway::cached::serve` with `x-deja-cache: read-only` and
/// `x-deja-cache-threshold: floor`) would answer `question` with in namespace `ns`: the
/// exact key's entry, else the first candidate at or above `floor` the verifier accepts.
async fn served(gw: &Gateway, ns: String, question: &str, floor: f32) -> anyhow::Result<Served> {
    let cache = gw.cache.as_ref().context("the cache is off")?;
    let controls = CacheControls {
        read: true,
        write: false,
        threshold: Some(floor),
        namespace: ns,
        ..Default::default()
    };
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": question}]});
    let fail = |e: crate::gateway::GatewayError| anyhow::anyhow!("lookup failed: {e}");
    let req =
        parse_request(Endpoint::ChatCompletions, &serde_json::to_vec(&body)?).map_err(fail)?;
    let route = gw
        .router()
        .resolve(&req.model)
        .map_err(|e| fail(e.into()))?;
    let Some(key) = request_key(&route, &controls, &req) else {
        return Ok(Served::default());
    };
    if let Some(entry) = cache.handle.get_exact_cached(&ExactKey(key.exact))? {
        return Ok(Served {
            entry: Some(entry.id),
            similarity: 1.0,
        });
    }
    let lookup = cache
        .candidates(&key, floor, cache.config.top_k, true)
        .await
        .map_err(fail)?;
    Ok(lookup
        .judged
        .iter()
        .find(|j| j.accepted)
        .map(|j| Served {
            entry: Some(j.entry.id),
            similarity: j.similarity,
        })
        .unwrap_or_default())
}

impl Drop for Bench {
    fn drop(&mut self) {
        // Stops every arbiter of the System (and drops the actors); the cache directory
        // is removed right after, so nothing is persisted.
        self.system.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Counts for one group at one threshold.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PairStats {
    pub pairs: usize,
    pub duplicates: usize,
    pub non_duplicates: usize,
    /// Pairs where q2 was answered with q1's entry.
    pub served: usize,
    pub served_duplicates: usize,
    /// duplicate=0 pairs answered with q1's entry: wrong answers.
    pub wrong: usize,
}

impl PairStats {
    pub fn precision(&self) -> f64 {
        ratio(self.served_duplicates, self.served)
    }
    pub fn recall(&self) -> f64 {
        ratio(self.served_duplicates, self.duplicates)
    }
    pub fn wrong_rate(&self) -> f64 {
        ratio(self.wrong, self.non_duplicates)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Per-threshold, per-group results of [`eval_pairs`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct PairReport {
    pub threshold: f32,
    pub overall: PairStats,
    pub groups: BTreeMap<String, PairStats>,
}

/// For each pair store q1 and look q2 up: isolated per pair (a namespace each), or with
/// `shared`, every q1 in one cache. `wrong`: write each non-duplicate pair served at the
/// lowest threshold as a JSON line (q1, q2, group, similarity).
pub async fn eval_pairs(
    pairs: &[Pair],
    shared: bool,
    opts: &EvalOptions,
    wrong: Option<&Path>,
) -> anyhow::Result<Vec<PairReport>> {
    let bench = Bench::start(opts)?;
    let ns = |i: usize| {
        if shared {
            String::new()
        } else {
            format!("pair-{i}")
        }
    };
    let stored = bench
        .store(
            &pairs
                .iter()
                .enumerate()
                .map(|(i, p)| (ns(i), p.q1.clone(), format!("answer to: {}", p.q1)))
                .collect::<Vec<_>>(),
        )
        .await?;
    // In a shared cache a repeated q1 is stored once: find its id by text.
    let mut by_text: HashMap<&str, u64> = HashMap::new();
    for (p, id) in pairs.iter().zip(&stored) {
        if let Some(id) = id {
            by_text.insert(&p.q1, *id);
        }
    }
    let floor = opts.thresholds.iter().copied().fold(1.0f32, f32::min);
    let served = bench
        .lookup(
            &pairs
                .iter()
                .enumerate()
                .map(|(i, p)| (ns(i), p.q2.clone()))
                .collect::<Vec<_>>(),
            floor,
            opts.concurrency,
        )
        .await?;
    // Isolated: each pair's own entry. Shared: the entry stored for q1's text.
    let q1_ids: Vec<Option<u64>> = pairs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if shared {
                by_text.get(p.q1.as_str()).copied()
            } else {
                stored[i]
            }
        })
        .collect();
    let served_q1 = |i: usize, t: f32| q1_ids[i].is_some() && served[i].at(t) == q1_ids[i];
    if let Some(path) = wrong {
        let lines = pairs
            .iter()
            .enumerate()
            .filter(|&(i, p)| !p.duplicate && served_q1(i, floor));
        write_json_lines(
            path,
            lines.map(|(i, p)| {
                json!({"q1": p.q1, "q2": p.q2, "group": p.group,
                       "similarity": served[i].similarity})
            }),
        )?;
    }
    let mut reports = Vec::new();
    for &t in &opts.thresholds {
        let mut overall = PairStats::default();
        let mut groups: BTreeMap<String, PairStats> = BTreeMap::new();
        for (i, p) in pairs.iter().enumerate() {
            let hit = served_q1(i, t);
            for st in [&mut overall, groups.entry(p.group.clone()).or_default()] {
                st.pairs += 1;
                if p.duplicate {
                    st.duplicates += 1;
                } else {
                    st.non_duplicates += 1;
                }
                if hit {
                    st.served += 1;
                    if p.duplicate {
                        st.served_duplicates += 1;
                    } else {
                        st.wrong += 1;
                    }
                }
            }
        }
        reports.push(PairReport {
            threshold: t,
            overall,
            groups,
        });
    }
    Ok(reports)
}

/// Intent data: store every training question (answer = its intent), ask every test
/// question; a hit is correct when the served entry has the question's intent.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IntentStats {
    pub threshold: f32,
    pub questions: usize,
    pub correct: usize,
    pub wrong_intent: usize,
    /// Out-of-scope questions (clinc150 `oos_*`) that were served anything.
    pub oos_questions: usize,
    pub oos_served: usize,
}

/// An intent dataset: `(text, intent)` rows to store and to ask, plus out-of-scope questions.
pub struct IntentData {
    pub train: Vec<(String, String)>,
    pub test: Vec<(String, String)>,
    pub oos: Vec<String>,
}

/// Read an intent dataset folder: banking77 (train/test CSV) or clinc150 (data_full.json).
pub fn read_intents(dir: &Path) -> anyhow::Result<IntentData> {
    // bitext: one file of questions (`instruction`) with their intent and no split of its
    // own; every fifth question is asked, the rest stored
    let bitext = dir.join("customer_support.csv");
    if bitext.exists() {
        let mut r = csv::Reader::from_path(&bitext)
            .with_context(|| format!("cannot read {}", bitext.display()))?;
        let header = r.headers()?.clone();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .with_context(|| format!("{}: no column `{name}`", bitext.display()))
        };
        let (q, intent) = (col("instruction")?, col("intent")?);
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for (i, rec) in r.records().enumerate() {
            let rec = rec?;
            let row = (rec[q].to_owned(), rec[intent].to_owned());
            if i % 5 == 4 {
                test.push(row);
            } else {
                train.push(row);
            }
        }
        return Ok(IntentData {
            train,
            test,
            oos: Vec::new(),
        });
    }
    let clinc = dir.join("data_full.json");
    if clinc.exists() {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&clinc)?)?;
        let rows = |k: &str| -> Vec<(String, String)> {
            v[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|r| {
                            Some((r[0].as_str()?.to_owned(), r[1].as_str()?.to_owned()))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let oos = rows("oos_test").into_iter().map(|(t, _)| t).collect();
        return Ok(IntentData {
            train: rows("train"),
            test: rows("test"),
            oos,
        });
    }
    let csv = |name: &str| -> anyhow::Result<Vec<(String, String)>> {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Ok(text
            .lines()
            .skip(1)
            .filter_map(|line| {
                if let Some(rest) = line.strip_prefix('"') {
                    let (q, intent) = rest.rsplit_once("\",")?;
                    Some((q.replace("\"\"", "\""), intent.to_owned()))
                } else {
                    let (q, intent) = line.rsplit_once(',')?;
                    Some((q.to_owned(), intent.to_owned()))
                }
            })
            .collect())
    };
    Ok(IntentData {
        train: csv("train.csv")?,
        test: csv("test.csv")?,
        oos: Vec::new(),
    })
}

/// `explain`: write one JSON line per test question that missed although a candidate of
/// its own intent was above the lowest threshold (the verifier refused it), with that
/// candidate's reason: what the verifier costs in hit rate, to read and to fix.
/// `wrong`: write one JSON line per test question served another intent's entry at the
/// lowest threshold, with that entry's question: the wrong answers, to read.
pub async fn eval_intents(
    dir: &Path,
    limit: Option<usize>,
    opts: &EvalOptions,
    explain: Option<&Path>,
    wrong: Option<&Path>,
) -> anyhow::Result<Vec<IntentStats>> {
    let IntentData {
        train,
        mut test,
        mut oos,
    } = read_intents(dir)?;
    if let Some(n) = limit {
        // evenly spaced: the files are grouped by intent, a prefix would cover few intents
        test = spread(test, n);
        oos = spread(oos, n / 4);
    }
    let bench = Bench::start(opts)?;
    let ids = bench
        .store(
            &train
                .iter()
                .map(|(q, i)| (String::new(), q.clone(), i.clone()))
                .collect::<Vec<_>>(),
        )
        .await?;
    // entry id -> its (question, intent)
    let mut stored_as: HashMap<u64, (&str, &str)> = HashMap::new();
    for ((q, intent), id) in train.iter().zip(&ids) {
        if let Some(id) = id {
            stored_as.insert(*id, (q, intent));
        }
    }
    let intent_of = |id: &u64| stored_as.get(id).map(|&(_, intent)| intent);
    // A repeated training question keeps its first entry's id (duplicates are skipped).
    let floor = opts.thresholds.iter().copied().fold(1.0f32, f32::min);
    let asked: Vec<(String, String)> = test
        .iter()
        .map(|(q, _)| (String::new(), q.clone()))
        .chain(oos.iter().map(|q| (String::new(), q.clone())))
        .collect();
    let served = bench.lookup(&asked, floor, opts.concurrency).await?;
    if let Some(path) = explain {
        let mut lines = Vec::new();
        for ((q, intent), s) in test.iter().zip(&served) {
            if s.entry.is_some() {
                continue;
            }
            let found = bench.search(q, floor, 5).await?;
            let lost: Vec<Value> = found["candidates"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| {
                    c["verdict"] == "refused"
                        && c["above_threshold"] == true
                        && c["id"]
                            .as_str()
                            .and_then(|id| id.parse::<u64>().ok())
                            .and_then(|id| intent_of(&id))
                            == Some(intent.as_str())
                })
                .map(|c| json!({"candidate": c["prompt_text"], "similarity": c["similarity"], "reason": c["reason"], "detail": c["detail"]}))
                .collect();
            if !lost.is_empty() {
                lines.push(json!({"question": q, "intent": intent, "refused": lost}));
            }
        }
        write_json_lines(path, lines)?;
    }
    if let Some(path) = wrong {
        let lines = test.iter().zip(&served).filter_map(|((q, intent), s)| {
            let (served_q, served_intent) = *stored_as.get(&s.entry?)?;
            (served_intent != intent).then(|| {
                json!({
                    "question": q,
                    "intent": intent,
                    "served": served_q,
                    "served_intent": served_intent,
                    "similarity": s.similarity,
                })
            })
        });
        write_json_lines(path, lines)?;
    }
    Ok(opts
        .thresholds
        .iter()
        .map(|&t| {
            let mut st = IntentStats {
                threshold: t,
                questions: test.len(),
                oos_questions: oos.len(),
                ..Default::default()
            };
            for (i, s) in served.iter().enumerate() {
                let Some(id) = s.at(t) else { continue };
                if i >= test.len() {
                    st.oos_served += 1;
                } else if intent_of(&id) == Some(test[i].1.as_str()) {
                    st.correct += 1;
                } else {
                    st.wrong_intent += 1;
                }
            }
            st
        })
        .collect())
}

/// Write `lines` to `path`, one JSON value per line.
fn write_json_lines(path: &Path, lines: impl IntoIterator<Item = Value>) -> anyhow::Result<()> {
    let mut out = String::new();
    for line in lines {
        out.push_str(&line.to_string());
        out.push('\n');
    }
    std::fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))
}

/// At most `n` items of `v`, evenly spaced over it.
fn spread<T>(v: Vec<T>, n: usize) -> Vec<T> {
    let len = v.len();
    if n >= len {
        return v;
    }
    let mut next = 0usize;
    v.into_iter()
        .enumerate()
        .filter(|&(i, _)| {
            let take = next < n && i == next * len / n;
            next += usize::from(take);
            take
        })
        .map(|(_, x)| x)
        .collect()
}

/// Markdown table of a pairs evaluation at one threshold.
pub fn pairs_table(r: &PairReport) -> String {
    let mut s = format!(
        "threshold {:.2}\n\n| group | pairs | served | precision | recall (dup=1 served) | wrong-answer rate (dup=0 served) |\n|---|---:|---:|---:|---:|---:|\n",
        r.threshold
    );
    let row = |name: &str, st: &PairStats| {
        format!(
            "| {name} | {} | {} | {:.3} | {:.3} | {:.3} |\n",
            st.pairs,
            st.served,
            st.precision(),
            st.recall(),
            st.wrong_rate()
        )
    };
    for (g, st) in &r.groups {
        s.push_str(&row(g, st));
    }
    s.push_str(&row("**overall**", &r.overall));
    s
}

/// Where the default dataset folders live (`../shared/data` next to the repo).
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
}

#[cfg(test)]
mod tests {
    use super::{read_intents, spread};

    #[test]
    fn spread_takes_evenly_spaced_items() {
        assert_eq!(spread((0..10).collect(), 3), vec![0, 3, 6]);
        assert_eq!(spread((0..4).collect(), 4), vec![0, 1, 2, 3]);
        assert_eq!(spread((0..4).collect(), 9), vec![0, 1, 2, 3]);
        assert!(spread((0..4).collect::<Vec<i32>>(), 0).is_empty());
        assert_eq!(spread((0..4500).collect::<Vec<_>>(), 1500).len(), 1500);
    }

    #[test]
    fn bitext_questions_are_split_one_in_five_and_multiline_answers_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut csv = String::from("flags,instruction,category,intent,response\n");
        for i in 0..10 {
            csv.push_str(&format!(
                "B,\"question {i}, please\",ORDER,intent_{},\"line one\nline \"\"two\"\"\"\n",
                i % 2
            ));
        }
        std::fs::write(dir.path().join("customer_support.csv"), csv).unwrap();
        let d = read_intents(dir.path()).unwrap();
        assert_eq!(d.train.len(), 8);
        assert_eq!(
            d.test,
            vec![
                ("question 4, please".to_string(), "intent_0".to_string()),
                ("question 9, please".to_string(), "intent_1".to_string()),
            ]
        );
        assert!(d.oos.is_empty());
    }
}
