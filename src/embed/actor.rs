//! The actor shell around [`Embedder`]: `EmbedWorker`s on a `SyncArbiter`
//! and a cloneable [`EmbedderHandle`] doing dynamic batching.
//!
//! Flow: `EmbedderHandle::embed` reserves room in the bounded queue (or fails
//! with `Overloaded`), sends a job to the batcher task and awaits its reply.
//! The batcher takes the first waiting job, waits for a free worker (at most
//! `threads` batches are in flight; while all workers are busy, jobs pile up
//! and form the next batch), then gathers more jobs until `batch_max` texts
//! or `batch_wait_us` after the first job arrived, and sends them as one
//! [`EmbedBatch`] to the workers.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

use super::{EmbedError, Embedder, EmbedderConfig};

type EmbedResult = Result<Vec<Vec<f32>>, EmbedError>;

/// Embed these texts as one batch; answers one vector per text, in order.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<Vec<f32>>, EmbedError>")]
pub struct EmbedBatch(pub Vec<String>);

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

/// Holds `n` texts' worth of the queue; gives them back when dropped.
struct Reserved {
    pending: Arc<AtomicUsize>,
    n: usize,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.pending.fetch_sub(self.n, Ordering::AcqRel);
    }
}

/// One caller's texts waiting for the batcher.
struct Job {
    texts: Vec<String>,
    reply: oneshot::Sender<EmbedResult>,
    _reserved: Reserved,
}

/// Counters of the batches sent to the workers (since start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmbedStats {
    /// Batches sent to the workers.
    pub batches: u64,
    /// Texts in those batches.
    pub texts: u64,
}

#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    texts: AtomicU64,
}

/// A cloneable handle to the embedder actors with dynamic batching.
#[derive(Clone)]
pub struct EmbedderHandle {
    tx: mpsc::UnboundedSender<Job>,
    pending: Arc<AtomicUsize>,
    counters: Arc<Counters>,
    queue_limit: usize,
    batch_max: usize,
    dimensions: usize,
}

impl std::fmt::Debug for EmbedderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbedderHandle")
            .field("pending", &self.pending())
            .field("queue_limit", &self.queue_limit)
            .field("batch_max", &self.batch_max)
            .field("dimensions", &self.dimensions)
            .finish()
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
        if System::try_current().is_none() || tokio::runtime::Handle::try_current().is_err() {
            return Err(EmbedError::Config(
                "EmbedderHandle::start must be called inside a running actix System".into(),
            ));
        }
        let loaded = (0..cfg.threads)
            .map(|_| Embedder::load(&cfg))
            .collect::<Result<Vec<_>, _>>()?;
        let pool = Mutex::new(loaded);
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

        let (tx, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let batcher = Batcher {
            rx,
            workers,
            counters: counters.clone(),
            in_flight: Arc::new(Semaphore::new(cfg.threads)),
            batch_max: cfg.batch_max,
            wait: Duration::from_micros(cfg.batch_wait_us),
        };
        actix_rt::spawn(batcher.run());
        Ok(Self {
            tx,
            pending: Arc::new(AtomicUsize::new(0)),
            counters,
            queue_limit: cfg.queue_limit,
            batch_max: cfg.batch_max,
            dimensions: cfg.dimensions,
        })
    }

    /// Length of the vectors.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// How many batches (and texts in them) were sent to the workers.
    pub fn stats(&self) -> EmbedStats {
        EmbedStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            texts: self.counters.texts.load(Ordering::Relaxed),
        }
    }

    /// Expected wait of a new interactive job (placeholder until the priority queue lands).
    pub fn estimated_wait(&self) -> Duration {
        Duration::ZERO
    }

    /// Texts currently waiting or being embedded.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Embeds one text, batched with concurrent calls.
    ///
    /// Fails at once with `Overloaded` when `queue_limit` texts are already
    /// waiting, and with `Unavailable` when the actors are gone.
    pub async fn embed(&self, text: String) -> Result<Vec<f32>, EmbedError> {
        self.reserve(1)?;
        let rx = self.submit(vec![text], 1)?;
        let mut v = rx.await.map_err(|_| EmbedError::Unavailable)??;
        v.pop().ok_or_else(|| {
            EmbedError::Inference("the embedder returned no vector for the text".into())
        })
    }

    /// Embeds several texts (split into jobs of at most `batch_max`, which the
    /// batcher may combine with other callers' texts); one vector per text, in
    /// order. All `texts.len()` count against `queue_limit` at once: more than
    /// `queue_limit` texts in one call are always `Overloaded`.
    pub async fn embed_many(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        self.reserve(texts.len())?;
        // Each job takes its share of the reservation as soon as it exists;
        // the rest is given back here if submitting fails half-way.
        let mut unclaimed = Reserved {
            pending: self.pending.clone(),
            n: texts.len(),
        };
        let mut receivers = Vec::new();
        let mut it = texts.into_iter().peekable();
        while it.peek().is_some() {
            let chunk: Vec<String> = it.by_ref().take(self.batch_max).collect();
            let n = chunk.len();
            unclaimed.n -= n;
            receivers.push(self.submit(chunk, n)?);
        }
        drop(unclaimed);
        let mut out = Vec::new();
        for rx in receivers {
            out.extend(rx.await.map_err(|_| EmbedError::Unavailable)??);
        }
        Ok(out)
    }

    /// Counts `n` more texts as waiting, unless that would pass `queue_limit`.
    fn reserve(&self, n: usize) -> Result<(), EmbedError> {
        self.pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                (cur + n <= self.queue_limit).then_some(cur + n)
            })
            .map(|_| ())
            .map_err(|_| EmbedError::Overloaded)
    }

    /// Sends a job holding `n` already reserved texts to the batcher.
    fn submit(
        &self,
        texts: Vec<String>,
        n: usize,
    ) -> Result<oneshot::Receiver<EmbedResult>, EmbedError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            texts,
            reply,
            _reserved: Reserved {
                pending: self.pending.clone(),
                n,
            },
        };
        // On failure the job (and its reservation) is dropped.
        self.tx.send(job).map_err(|_| EmbedError::Unavailable)?;
        Ok(rx)
    }
}

/// The task gathering jobs into batches.
struct Batcher {
    rx: mpsc::UnboundedReceiver<Job>,
    workers: Addr<EmbedWorker>,
    counters: Arc<Counters>,
    /// One permit per worker thread: at most that many batches in flight.
    in_flight: Arc<Semaphore>,
    batch_max: usize,
    wait: Duration,
}

impl Batcher {
    async fn run(mut self) {
        // A job that did not fit in the previous batch.
        let mut carry: Option<Job> = None;
        loop {
            let first = match carry.take() {
                Some(job) => job,
                None => match self.rx.recv().await {
                    Some(job) => job,
                    None => return, // every handle dropped
                },
            };
            let deadline = Instant::now() + self.wait;
            let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
                return;
            };
            let mut n = first.texts.len();
            let mut jobs = vec![first];
            while n < self.batch_max {
                let next = match self.rx.try_recv() {
                    Ok(job) => Some(job),
                    Err(mpsc::error::TryRecvError::Empty)
                        if !self.wait.is_zero() && Instant::now() < deadline =>
                    {
                        tokio::time::timeout_at(deadline, self.rx.recv())
                            .await
                            .ok()
                            .flatten()
                    }
                    Err(_) => None,
                };
                let Some(job) = next else { break };
                if n + job.texts.len() > self.batch_max {
                    carry = Some(job);
                    break;
                }
                n += job.texts.len();
                jobs.push(job);
            }
            // Callers that went away need no work.
            jobs.retain(|j| !j.reply.is_closed());
            if jobs.is_empty() {
                continue;
            }
            let mut texts = Vec::with_capacity(n);
            let mut sizes = Vec::with_capacity(jobs.len());
            for job in &mut jobs {
                sizes.push(job.texts.len());
                texts.append(&mut job.texts);
            }
            self.counters.batches.fetch_add(1, Ordering::Relaxed);
            self.counters
                .texts
                .fetch_add(texts.len() as u64, Ordering::Relaxed);
            let request = self.workers.send(EmbedBatch(texts));
            actix_rt::spawn(async move {
                let result = request.await;
                drop(permit);
                match result {
                    Ok(Ok(vectors)) if vectors.len() == sizes.iter().sum::<usize>() => {
                        let mut vectors = vectors.into_iter();
                        for (job, size) in jobs.into_iter().zip(sizes) {
                            let _ = job.reply.send(Ok(vectors.by_ref().take(size).collect()));
                        }
                    }
                    Ok(Ok(_)) => reply_all(
                        jobs,
                        EmbedError::Inference(
                            "the worker returned a wrong number of vectors".into(),
                        ),
                    ),
                    Ok(Err(e)) => reply_all(jobs, e),
                    Err(_) => reply_all(jobs, EmbedError::Unavailable),
                }
            });
        }
    }
}

fn reply_all(jobs: Vec<Job>, err: EmbedError) {
    for job in jobs {
        let _ = job.reply.send(Err(err.clone()));
    }
}
