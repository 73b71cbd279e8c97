//! The actor shell around [`Embedder`]: `EmbedWorker`s on a `SyncArbiter`
//! and a cloneable [`EmbedderHandle`] doing prioritised dynamic batching.
//!
//! Two queues feed the workers:
//! - **interactive** ([`EmbedderHandle::embed`]: cache lookups and stores):
//!   one text per job, gathered into batches of at most `batch_max` texts and
//!   `max_batch_tokens` tokens;
//! - **bulk** ([`EmbedderHandle::embed_many`]: `/v1/embeddings`, admin
//!   inserts): each call is cut into slices of at most `bulk_slice_tokens`
//!   tokens, one slice per worker run.
//!
//! Texts are tokenised before they are queued (interactive ones on the
//! caller's thread, bulk ones on the blocking pool), so every job knows its
//! token count. The batcher task waits for a free worker (at most `threads`
//! runs are in flight), then takes interactive work if any waits, else the
//! next bulk slice: a lookup arriving during a bulk request waits for at most
//! the slice(s) already running. Each finished run updates an EWMA of a
//! worker's throughput (tokens/s), which [`EmbedderHandle::estimated_wait`]
//! divides the queued work by.
//!
//! A caller that drops its future removes its jobs from the queue (freeing
//! their room at once); a job already running is finished and its result
//! dropped.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use parking_lot::Mutex;
use tokenizers::Tokenizer;
use tokio::sync::{oneshot, Notify, Semaphore};
use tokio::time::Instant;

use super::embedder::token_ids;
use super::{EmbedError, Embedder, EmbedderConfig};

type EmbedResult = Result<Vec<Vec<f32>>, EmbedError>;

/// A worker's throughput assumed until the first batch is measured (tokens/s):
/// about a third of what all-MiniLM-L6-v2 does on one core of the development
/// machine, so that early estimates err long.
const PRIOR_TOKENS_PER_SEC: f64 = 2_000.0;
/// Weight of the newest batch in the throughput EWMA.
const EWMA_ALPHA: f64 = 0.2;

/// Embed these texts as one batch; answers one vector per text, in order.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<Vec<f32>>, EmbedError>")]
pub struct EmbedBatch(pub Vec<String>);

/// Embed these token sequences (as [`Embedder::token_ids`] makes them) as one
/// unit of work; answers one vector per sequence, in order.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<Vec<f32>>, EmbedError>")]
pub struct EmbedTokenIds(pub Vec<Vec<u32>>);

/// A synchronous actor owning one [`Embedder`] (one ONNX Runtime session).
/// Run `threads` of them on a `SyncArbiter`.
#[derive(Debug)]
pub struct EmbedWorker {
    embedder: Embedder,
}

impl EmbedWorker {
    /// Wraps a loaded embedder.
    pub fn new(embedder: Embedder) -> Self {
        Self { embedder }
    }
}

impl Actor for EmbedWorker {
    type Context = SyncContext<Self>;
}

impl Handler<EmbedBatch> for EmbedWorker {
    type Result = Result<Vec<Vec<f32>>, EmbedError>;

    fn handle(&mut self, msg: EmbedBatch, _: &mut Self::Context) -> Self::Result {
        let texts: Vec<&str> = msg.0.iter().map(String::as_str).collect();
        self.embedder.embed_batch(&texts)
    }
}

impl Handler<EmbedTokenIds> for EmbedWorker {
    type Result = Result<Vec<Vec<f32>>, EmbedError>;

    fn handle(&mut self, msg: EmbedTokenIds, _: &mut Self::Context) -> Self::Result {
        self.embedder.embed_token_ids(msg.0)
    }
}

/// Counters of the batches sent to the workers (since start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmbedStats {
    /// Batches (interactive batches and bulk slices) sent to the workers.
    pub batches: u64,
    /// Texts in those batches.
    pub texts: u64,
}

/// Which queue a job waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Interactive = 0,
    Bulk = 1,
}

/// Token sequences waiting for a worker: one text of an `embed` call, or one
/// slice of an `embed_many` call.
struct Job {
    /// The submitting call; all slices of one `embed_many` share it.
    call: u64,
    ids: Vec<Vec<u32>>,
    tokens: usize,
    queued_at: Instant,
    reply: oneshot::Sender<EmbedResult>,
}

/// Texts and tokens of some jobs.
#[derive(Debug, Default, Clone, Copy)]
struct Load {
    texts: usize,
    tokens: usize,
}

impl Load {
    fn add(&mut self, texts: usize, tokens: usize) {
        self.texts += texts;
        self.tokens += tokens;
    }

    fn sub(&mut self, texts: usize, tokens: usize) {
        self.texts -= texts;
        self.tokens -= tokens;
    }
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// What `jobs` hold.
    queued: Load,
    /// What this queue's jobs hold that the workers are running.
    running: Load,
}

impl Queue {
    fn push(&mut self, job: Job) {
        self.queued.add(job.ids.len(), job.tokens);
        self.jobs.push_back(job);
    }

    /// The next job whose caller still waits (the others are dropped), moved
    /// to `running`.
    fn pop(&mut self) -> Option<Job> {
        while let Some(job) = self.jobs.pop_front() {
            self.queued.sub(job.ids.len(), job.tokens);
            if !job.reply.is_closed() {
                self.running.add(job.ids.len(), job.tokens);
                return Some(job);
            }
        }
        None
    }

    /// The first waiting job whose caller still waits, after dropping those
    /// before it whose callers went away.
    fn front(&mut self) -> Option<&Job> {
        while self.jobs.front().is_some_and(|j| j.reply.is_closed()) {
            if let Some(job) = self.jobs.pop_front() {
                self.queued.sub(job.ids.len(), job.tokens);
            }
        }
        self.jobs.front()
    }

    /// Removes the waiting jobs of `call` (its caller went away).
    fn remove_call(&mut self, call: u64) {
        let mut freed = Load::default();
        self.jobs.retain(|j| {
            let keep = j.call != call;
            if !keep {
                freed.add(j.ids.len(), j.tokens);
            }
            keep
        });
        self.queued.sub(freed.texts, freed.tokens);
    }

    /// Texts waiting or running.
    fn texts(&self) -> usize {
        self.queued.texts + self.running.texts
    }
}

#[derive(Default)]
struct State {
    queues: [Queue; 2],
    next_call: u64,
    /// Every handle is gone, or the batcher stopped: no new jobs.
    closed: bool,
}

impl State {
    fn queue(&mut self, class: Class) -> &mut Queue {
        &mut self.queues[class as usize]
    }

    fn running_tokens(&self) -> usize {
        self.queues.iter().map(|q| q.running.tokens).sum()
    }
}

/// What the handles and the batcher share.
struct Shared {
    state: Mutex<State>,
    /// Woken when a job is queued or the handles are gone.
    work: Notify,
    /// EWMA of one worker's throughput, tokens/s (`f64` bits).
    tokens_per_sec: AtomicU64,
    batches: AtomicU64,
    texts: AtomicU64,
}

impl Shared {
    fn tokens_per_sec(&self) -> f64 {
        f64::from_bits(self.tokens_per_sec.load(Ordering::Relaxed))
    }

    fn record_throughput(&self, tokens: usize, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if tokens == 0 || secs <= 0.0 {
            return;
        }
        let sample = tokens as f64 / secs;
        // Only the batcher's completions write; a lost update between two
        // concurrent completions would only drop one sample.
        let old = self.tokens_per_sec();
        let new = old + EWMA_ALPHA * (sample - old);
        self.tokens_per_sec.store(new.to_bits(), Ordering::Relaxed);
    }

    fn close(&self) {
        self.state.lock().closed = true;
        self.work.notify_one();
    }
}

/// Closes the queues when the last handle is dropped, which ends the batcher.
struct Closer(Arc<Shared>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Settings the handle needs.
#[derive(Debug, Clone, Copy)]
struct Limits {
    queue_limit: usize,
    batch_max: usize,
    max_batch_tokens: usize,
    bulk_slice_tokens: usize,
    max_tokens: usize,
    dimensions: usize,
    threads: usize,
}

/// A cloneable handle to the embedder actors with prioritised dynamic batching.
#[derive(Clone)]
pub struct EmbedderHandle {
    shared: Arc<Shared>,
    _closer: Arc<Closer>,
    tokenizer: Arc<Tokenizer>,
    limits: Limits,
}

impl std::fmt::Debug for EmbedderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbedderHandle")
            .field("pending", &self.pending())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Removes a caller's waiting jobs if its future is dropped before the answer.
struct Waiting<'a> {
    shared: &'a Shared,
    class: Class,
    call: u64,
    answered: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.shared
                .state
                .lock()
                .queue(self.class)
                .remove_call(self.call);
        }
    }
}

impl EmbedderHandle {
    /// Loads `cfg.threads` embedders (so that load errors surface here, on
    /// the calling thread), starts them as [`EmbedWorker`]s on a
    /// `SyncArbiter` and spawns the batcher task on the current arbiter.
    ///
    /// Must be called inside a running actix System (e.g. in `#[actix::main]`
    /// or `System::new().block_on`), otherwise returns `EmbedError::Config`.
    pub fn start(cfg: EmbedderConfig) -> Result<Self, EmbedError> {
        cfg.validate()?;
        Self::check_system()?;
        let loaded = (0..cfg.threads)
            .map(|_| Embedder::load(&cfg))
            .collect::<Result<Vec<_>, _>>()?;
        Self::start_loaded(cfg, loaded)
    }

    /// [`EmbedderHandle::start`] loading the models on the blocking thread
    /// pool, so that the calling thread (an HTTP worker starting the embedder
    /// on a first request) keeps serving meanwhile.
    pub async fn start_async(cfg: EmbedderConfig) -> Result<Self, EmbedError> {
        cfg.validate()?;
        Self::check_system()?;
        let c = cfg.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            (0..c.threads)
                .map(|_| Embedder::load(&c))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| EmbedError::Config(format!("loading the embedder failed: {e}")))??;
        Self::start_loaded(cfg, loaded)
    }

    fn check_system() -> Result<(), EmbedError> {
        if System::try_current().is_none() || tokio::runtime::Handle::try_current().is_err() {
            return Err(EmbedError::Config(
                "EmbedderHandle::start must be called inside a running actix System".into(),
            ));
        }
        Ok(())
    }

    /// Starts the workers on `loaded` (one per thread) and the batcher.
    fn start_loaded(cfg: EmbedderConfig, loaded: Vec<Embedder>) -> Result<Self, EmbedError> {
        if loaded.is_empty() {
            return Err(EmbedError::Config("threads must be >= 1".into()));
        }
        let tokenizer = Arc::new(loaded[0].tokenizer().clone());
        let pool = std::sync::Mutex::new(loaded);
        let worker_cfg = cfg.clone();
        let workers = SyncArbiter::start(cfg.threads, move || {
            let preloaded = pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
            // A worker restarted after a panic loads a fresh session; the
            // files loaded fine at start, so failing now is not recoverable.
            let embedder = preloaded.unwrap_or_else(|| {
                Embedder::load(&worker_cfg)
                    .unwrap_or_else(|e| panic!("reloading the embedder failed: {e}"))
            });
            EmbedWorker::new(embedder)
        });

        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Notify::new(),
            tokens_per_sec: AtomicU64::new(PRIOR_TOKENS_PER_SEC.to_bits()),
            batches: AtomicU64::new(0),
            texts: AtomicU64::new(0),
        });
        let limits = Limits {
            queue_limit: cfg.queue_limit,
            batch_max: cfg.batch_max,
            max_batch_tokens: cfg.max_batch_tokens,
            bulk_slice_tokens: cfg.bulk_slice_tokens,
            max_tokens: cfg.max_tokens,
            dimensions: cfg.dimensions,
            threads: cfg.threads,
        };
        let batcher = Batcher {
            shared: shared.clone(),
            workers,
            in_flight: Arc::new(Semaphore::new(cfg.threads)),
            limits,
            wait: Duration::from_micros(cfg.batch_wait_us),
        };
        actix_rt::spawn(batcher.run());
        Ok(Self {
            _closer: Arc::new(Closer(shared.clone())),
            shared,
            tokenizer,
            limits,
        })
    }

    /// Length of the vectors.
    pub fn dimensions(&self) -> usize {
        self.limits.dimensions
    }

    /// How many batches (and texts in them) were sent to the workers.
    pub fn stats(&self) -> EmbedStats {
        EmbedStats {
            batches: self.shared.batches.load(Ordering::Relaxed),
            texts: self.shared.texts.load(Ordering::Relaxed),
        }
    }

    /// Texts currently waiting or being embedded, both queues.
    pub fn pending(&self) -> usize {
        let st = self.shared.state.lock();
        st.queues.iter().map(Queue::texts).sum()
    }

    /// The expected wait of a new interactive job ([`EmbedderHandle::embed`])
    /// until its vector is ready: the tokens of the interactive jobs queued
    /// and of all runs in flight, divided by the measured throughput (an EWMA
    /// over recent runs, per worker, times `threads`). Queued bulk work is not
    /// counted: interactive jobs go first. Meant for `Retry-After` and for
    /// deciding to bypass the cache.
    pub fn estimated_wait(&self) -> Duration {
        let tokens = {
            let st = self.shared.state.lock();
            st.queues[Class::Interactive as usize].queued.tokens + st.running_tokens()
        };
        self.wait_for(tokens)
    }

    /// The expected wait of a new bulk job ([`EmbedderHandle::embed_many`])
    /// before its first slice runs: all queued and running work, as
    /// [`EmbedderHandle::estimated_wait`] counts it.
    pub fn estimated_bulk_wait(&self) -> Duration {
        let tokens = {
            let st = self.shared.state.lock();
            st.queues.iter().map(|q| q.queued.tokens).sum::<usize>() + st.running_tokens()
        };
        self.wait_for(tokens)
    }

    fn wait_for(&self, tokens: usize) -> Duration {
        let rate = self.shared.tokens_per_sec() * self.limits.threads as f64;
        Duration::try_from_secs_f64(tokens as f64 / rate).unwrap_or(Duration::MAX)
    }

    /// Token ids of `text` as the model sees them (see [`Embedder::token_ids`]).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        token_ids(&self.tokenizer, text, self.limits.max_tokens)
    }

    /// Embeds one text with priority over bulk work, batched with concurrent
    /// calls. The text is tokenised on the calling thread.
    ///
    /// Fails at once with `Overloaded` when `queue_limit` interactive texts
    /// are already waiting or running, and with `Unavailable` when the actors
    /// are gone. Dropping the future before the answer frees its room in the
    /// queue; if its batch had not started, no work is done for it.
    pub async fn embed(&self, text: String) -> Result<Vec<f32>, EmbedError> {
        let ids = self.token_ids(&text)?;
        drop(text);
        let tokens = ids.len();
        let (call, mut receivers) = self.enqueue(Class::Interactive, vec![(vec![ids], tokens)])?;
        let mut waiting = Waiting {
            shared: &self.shared,
            class: Class::Interactive,
            call,
            answered: false,
        };
        let rx = receivers.pop().ok_or(EmbedError::Unavailable)?;
        let result = rx.await;
        waiting.answered = true;
        let mut v = result.map_err(|_| EmbedError::Unavailable)??;
        v.pop().ok_or_else(|| {
            EmbedError::Inference("the embedder returned no vector for the text".into())
        })
    }

    /// Embeds several texts as bulk work: after every interactive job, cut
    /// into slices of at most `bulk_slice_tokens` tokens; one vector per text,
    /// in order. Tokenises on the blocking thread pool
    /// ([`EmbedderHandle::tokenize_many`]), then runs
    /// [`EmbedderHandle::embed_token_ids`].
    ///
    /// All `texts.len()` count against the bulk queue's `queue_limit` at
    /// once: more than `queue_limit` texts in one call are always
    /// `Overloaded`.
    pub async fn embed_many(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        // Refuse before tokenising what could not be queued anyway.
        self.bulk_room(texts.len())?;
        let ids = self.tokenize_many(texts, usize::MAX).await?;
        self.embed_token_ids(ids).await
    }

    /// Tokenises `texts` on the blocking thread pool, as
    /// [`EmbedderHandle::token_ids`] does; stops with
    /// `EmbedError::TooManyTokens` as soon as the texts hold more than
    /// `max_total_tokens` tokens together.
    pub async fn tokenize_many(
        &self,
        texts: Vec<String>,
        max_total_tokens: usize,
    ) -> Result<Vec<Vec<u32>>, EmbedError> {
        let tokenizer = self.tokenizer.clone();
        let max_tokens = self.limits.max_tokens;
        let work = move || {
            let mut total = 0usize;
            texts
                .iter()
                .map(|t| {
                    let ids = token_ids(&tokenizer, t, max_tokens)?;
                    total += ids.len();
                    if total > max_total_tokens {
                        return Err(EmbedError::TooManyTokens {
                            limit: max_total_tokens,
                        });
                    }
                    Ok(ids)
                })
                .collect()
        };
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| EmbedError::Unavailable)?
    }

    /// Embeds token sequences (from [`EmbedderHandle::token_ids`] or
    /// [`EmbedderHandle::tokenize_many`]) as bulk work: see
    /// [`EmbedderHandle::embed_many`]. Dropping the future removes its
    /// slices that have not started.
    pub async fn embed_token_ids(&self, ids: Vec<Vec<u32>>) -> EmbedResult {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let slices = slice_by_tokens(ids, self.limits.bulk_slice_tokens, self.limits.batch_max);
        let (call, receivers) = self.enqueue(Class::Bulk, slices)?;
        let mut waiting = Waiting {
            shared: &self.shared,
            class: Class::Bulk,
            call,
            answered: false,
        };
        let mut out = Vec::new();
        for rx in receivers {
            // An error ends the call; the guard removes the slices not started.
            out.extend(rx.await.map_err(|_| EmbedError::Unavailable)??);
        }
        waiting.answered = true;
        Ok(out)
    }

    /// Fails with `Overloaded` if `n` more bulk texts would pass `queue_limit`.
    fn bulk_room(&self, n: usize) -> Result<(), EmbedError> {
        let st = self.shared.state.lock();
        if st.queues[Class::Bulk as usize].texts() + n > self.limits.queue_limit {
            return Err(EmbedError::Overloaded);
        }
        Ok(())
    }

    /// Queues `jobs` (token sequences with their token count) as one call of
    /// `class`, unless that would pass `queue_limit` texts.
    fn enqueue(
        &self,
        class: Class,
        jobs: Vec<(Vec<Vec<u32>>, usize)>,
    ) -> Result<(u64, Vec<oneshot::Receiver<EmbedResult>>), EmbedError> {
        let n: usize = jobs.iter().map(|(ids, _)| ids.len()).sum();
        let mut st = self.shared.state.lock();
        if st.closed {
            return Err(EmbedError::Unavailable);
        }
        if st.queue(class).texts() + n > self.limits.queue_limit {
            return Err(EmbedError::Overloaded);
        }
        let call = st.next_call;
        st.next_call += 1;
        let queued_at = Instant::now();
        let mut receivers = Vec::with_capacity(jobs.len());
        for (ids, tokens) in jobs {
            let (reply, rx) = oneshot::channel();
            st.queue(class).push(Job {
                call,
                ids,
                tokens,
                queued_at,
                reply,
            });
            receivers.push(rx);
        }
        drop(st);
        self.shared.work.notify_one();
        Ok((call, receivers))
    }
}

/// The `Retry-After` value for a wait: whole seconds, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// Cuts `ids` in order into slices of at most `max_tokens` tokens and
/// `max_texts` texts (a longer single text makes its own slice).
fn slice_by_tokens(
    ids: Vec<Vec<u32>>,
    max_tokens: usize,
    max_texts: usize,
) -> Vec<(Vec<Vec<u32>>, usize)> {
    let mut out = Vec::new();
    let mut cur: Vec<Vec<u32>> = Vec::new();
    let mut tokens = 0;
    for seq in ids {
        if !cur.is_empty() && (tokens + seq.len() > max_tokens || cur.len() == max_texts) {
            out.push((std::mem::take(&mut cur), tokens));
            tokens = 0;
        }
        tokens += seq.len();
        cur.push(seq);
    }
    if !cur.is_empty() {
        out.push((cur, tokens));
    }
    out
}

/// The task handing work to the workers.
struct Batcher {
    shared: Arc<Shared>,
    workers: Addr<EmbedWorker>,
    /// One permit per worker thread: at most that many runs in flight.
    in_flight: Arc<Semaphore>,
    limits: Limits,
    wait: Duration,
}

impl Drop for Batcher {
    /// Whether the handles are gone or the System is stopping: fail the
    /// callers still waiting (their senders are dropped) and refuse new jobs.
    fn drop(&mut self) {
        let mut st = self.shared.state.lock();
        st.closed = true;
        for q in &mut st.queues {
            q.jobs.clear();
            q.queued = Load::default();
        }
    }
}

impl Batcher {
    async fn run(self) {
        loop {
            // Decide what runs next only once a worker is free: jobs queued
            // meanwhile compete by priority, not by arrival.
            let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
                return;
            };
            let (class, mut jobs) = loop {
                if let Some(next) = self.take() {
                    break next;
                }
                if self.shared.state.lock().closed {
                    return;
                }
                // `notify_one` stores a permit when nobody waits: no lost wake-up.
                self.shared.work.notified().await;
            };
            if class == Class::Interactive && !self.wait.is_zero() {
                let deadline = jobs[0].queued_at + self.wait;
                if Instant::now() < deadline && self.room(&jobs).0 > 0 {
                    tokio::time::sleep_until(deadline).await;
                    self.take_more(&mut jobs);
                }
            }
            // Callers that went away need no work.
            let mut st = self.shared.state.lock();
            jobs.retain(|j| {
                let keep = !j.reply.is_closed();
                if !keep {
                    st.queue(class).running.sub(j.ids.len(), j.tokens);
                }
                keep
            });
            drop(st);
            if jobs.is_empty() {
                continue;
            }
            self.dispatch(class, jobs, permit);
        }
    }

    /// The next work: a batch of interactive jobs if any waits, else one bulk slice.
    fn take(&self) -> Option<(Class, Vec<Job>)> {
        let mut st = self.shared.state.lock();
        if let Some(first) = st.queue(Class::Interactive).pop() {
            let mut jobs = vec![first];
            self.fill(&mut st, &mut jobs);
            return Some((Class::Interactive, jobs));
        }
        st.queue(Class::Bulk)
            .pop()
            .map(|slice| (Class::Bulk, vec![slice]))
    }

    fn take_more(&self, jobs: &mut Vec<Job>) {
        let mut st = self.shared.state.lock();
        self.fill(&mut st, jobs);
    }

    /// Texts and tokens an interactive batch holding `jobs` may still take.
    fn room(&self, jobs: &[Job]) -> (usize, usize) {
        let texts: usize = jobs.iter().map(|j| j.ids.len()).sum();
        let tokens: usize = jobs.iter().map(|j| j.tokens).sum();
        (
            self.limits.batch_max.saturating_sub(texts),
            self.limits.max_batch_tokens.saturating_sub(tokens),
        )
    }

    /// Adds waiting interactive jobs to `jobs` while they fit.
    fn fill(&self, st: &mut State, jobs: &mut Vec<Job>) {
        let (mut texts, mut tokens) = self.room(jobs);
        let q = st.queue(Class::Interactive);
        while let Some(next) = q.front() {
            if next.ids.len() > texts || next.tokens > tokens {
                break;
            }
            let Some(job) = q.pop() else { break };
            texts -= job.ids.len();
            tokens -= job.tokens;
            jobs.push(job);
        }
    }

    fn dispatch(
        &self,
        class: Class,
        mut jobs: Vec<Job>,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let n: usize = jobs.iter().map(|j| j.ids.len()).sum();
        let tokens: usize = jobs.iter().map(|j| j.tokens).sum();
        let mut ids = Vec::with_capacity(n);
        let mut sizes = Vec::with_capacity(jobs.len());
        for job in &mut jobs {
            sizes.push(job.ids.len());
            ids.append(&mut job.ids);
        }
        self.shared.batches.fetch_add(1, Ordering::Relaxed);
        self.shared.texts.fetch_add(n as u64, Ordering::Relaxed);
        let shared = self.shared.clone();
        let started = Instant::now();
        let request = self.workers.send(EmbedTokenIds(ids));
        actix_rt::spawn(async move {
            let result = request.await;
            let elapsed = started.elapsed();
            shared.state.lock().queue(class).running.sub(n, tokens);
            drop(permit);
            match result {
                Ok(Ok(vectors)) if vectors.len() == n => {
                    shared.record_throughput(tokens, elapsed);
                    let mut vectors = vectors.into_iter();
                    for (job, size) in jobs.into_iter().zip(sizes) {
                        let _ = job.reply.send(Ok(vectors.by_ref().take(size).collect()));
                    }
                }
                Ok(Ok(_)) => reply_all(
                    jobs,
                    EmbedError::Inference("the worker returned a wrong number of vectors".into()),
                ),
                Ok(Err(e)) => reply_all(jobs, e),
                Err(_) => reply_all(jobs, EmbedError::Unavailable),
            }
        });
    }
}

fn reply_all(jobs: Vec<Job>, err: EmbedError) {
    for job in jobs {
        let _ = job.reply.send(Err(err.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(lens: &[usize]) -> Vec<Vec<u32>> {
        lens.iter().map(|&n| vec![7; n]).collect()
    }

    #[test]
    fn slices_keep_order_and_respect_token_and_text_caps() {
        let s = slice_by_tokens(seqs(&[100, 100, 100, 300, 10, 10, 10, 10]), 250, 3);
        let shape: Vec<(Vec<usize>, usize)> = s
            .iter()
            .map(|(ids, t)| (ids.iter().map(Vec::len).collect(), *t))
            .collect();
        assert_eq!(
            shape,
            vec![
                (vec![100, 100], 200),
                (vec![100], 100),
                (vec![300], 300), // one text over the cap makes its own slice
                (vec![10, 10, 10], 30),
                (vec![10], 10),
            ]
        );
    }

    #[test]
    fn removing_a_call_frees_its_room() {
        let mut q = Queue::default();
        let mut keep = Vec::new();
        for call in [1, 2, 1] {
            let (reply, rx) = oneshot::channel();
            keep.push(rx);
            q.push(Job {
                call,
                ids: seqs(&[5, 6]),
                tokens: 11,
                queued_at: Instant::now(),
                reply,
            });
        }
        assert_eq!((q.queued.texts, q.queued.tokens), (6, 33));
        q.remove_call(1);
        assert_eq!((q.queued.texts, q.queued.tokens), (2, 11));
        assert_eq!(q.jobs.len(), 1);
        // A job whose caller went away is skipped, and its room freed.
        drop(keep.remove(1));
        assert!(q.pop().is_none());
        assert_eq!((q.texts(), q.queued.tokens), (0, 0));
    }
}
