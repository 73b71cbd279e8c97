//! The plain (actor-free) embedder: tokenizer + one ONNX Runtime session.

use std::borrow::Cow;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::{Session, SessionInputValue};
use ort::value::Tensor;
use tokenizers::Tokenizer;

use super::{EmbedError, EmbedderConfig, Pooling};

/// Texts longer than `max_tokens * PRETRIM_CHARS_PER_TOKEN` characters are cut
/// (keeping the first quarter and last three quarters of that many
/// characters, joined by a space) before tokenisation, so that tokenising a
/// huge prompt stays cheap. 32 characters per token is far above what real
/// text needs (about 4-5 in English), so the token-level truncation of
/// [`truncate_ids`] still sees more than `max_tokens` tokens for ordinary text.
pub const PRETRIM_CHARS_PER_TOKEN: usize = 32;

/// The process-wide ONNX Runtime environment (ORT may be loaded only once).
static ORT_ENV: OnceLock<(PathBuf, Environment)> = OnceLock::new();
/// Serialises the first initialisation.
static ORT_INIT: Mutex<()> = Mutex::new(());

/// Loads ONNX Runtime from `path` once per process and returns its environment.
/// Later calls return the first environment, whatever their path.
fn ort_environment(path: &Path) -> Result<Environment, EmbedError> {
    if let Some((_, env)) = ORT_ENV.get() {
        return Ok(env.clone());
    }
    let _guard = ORT_INIT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, env)) = ORT_ENV.get() {
        return Ok(env.clone());
    }
    let err = |reason: String| EmbedError::RuntimeLoad {
        path: path.to_path_buf(),
        reason,
    };
    if !path.is_file() {
        return Err(err("file not found".into()));
    }
    // ort resolves relative paths against the executable's directory first;
    // we mean the working directory, so make it absolute.
    let abs = std::fs::canonicalize(path).map_err(|e| err(e.to_string()))?;
    let env = ort::init_from(&abs)
        .map_err(|e| err(e.to_string()))?
        .with_name("deja")
        .build()
        .map_err(|e| err(e.to_string()))?;
    let _ = ORT_ENV.set((abs, env.clone()));
    fix_glibc_mmap_threshold();
    Ok(env)
}

/// ONNX Runtime allocates its tensors with glibc malloc (the binary's mimalloc
/// serves Rust only). glibc raises its mmap threshold to the size of each
/// mmapped block freed (up to 32 MB), after which a worker's 1-25 MB tensors
/// come from its thread arena and stay there when freed: 48 concurrent
/// 4 KB-prompt chats left RSS at 1.04 GB instead of 230 MB. A fixed 1 MiB
/// threshold (which also turns the adjustment off) gives every large tensor
/// back to the OS when it is freed. Same effect as `MALLOC_MMAP_THRESHOLD_=1048576`.
fn fix_glibc_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a malloc tunable; called once, at load.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Token-level output of [`Embedder::embed_tokens`].
#[derive(Debug, Clone, PartialEq)]
pub struct TokenEmbeddings {
    /// Token strings (e.g. `[CLS]`, `hello`, `##ing`, `[SEP]`).
    pub tokens: Vec<String>,
    /// Token ids.
    pub ids: Vec<u32>,
    /// Byte offsets of each token in the original text (`(0, 0)` for special tokens).
    pub offsets: Vec<(usize, usize)>,
    /// Whether each token is a special token (`[CLS]`, `[SEP]`, ...).
    pub special: Vec<bool>,
    /// The model's `last_hidden_state` row for each token (not normalised).
    pub vectors: Vec<Vec<f32>>,
}

/// Where a pretrimmed text came from: `text[..head_end] + " " + text[tail_start..]`.
#[derive(Debug, Clone, Copy)]
struct Cut {
    head_end: usize,
    tail_start: usize,
}

fn pretrim(text: &str, max_tokens: usize) -> (Cow<'_, str>, Option<Cut>) {
    let limit = max_tokens.saturating_mul(PRETRIM_CHARS_PER_TOKEN);
    if text.len() <= limit {
        return (Cow::Borrowed(text), None);
    }
    let nchars = text.chars().count();
    if nchars <= limit {
        return (Cow::Borrowed(text), None);
    }
    let head_chars = limit / 4;
    let tail_chars = limit - head_chars;
    let head_end = text
        .char_indices()
        .nth(head_chars)
        .map_or(text.len(), |(i, _)| i);
    let tail_start = text
        .char_indices()
        .nth(nchars - tail_chars)
        .map_or(text.len(), |(i, _)| i);
    let mut s = String::with_capacity(head_end + 1 + text.len() - tail_start);
    s.push_str(&text[..head_end]);
    s.push(' ');
    s.push_str(&text[tail_start..]);
    (
        Cow::Owned(s),
        Some(Cut {
            head_end,
            tail_start,
        }),
    )
}

/// The character-level cut applied before tokenising very long texts: a text
/// of more than `L = max_tokens * PRETRIM_CHARS_PER_TOKEN` characters (Unicode
/// scalar values) becomes its first `L / 4` characters, a space, and its last
/// `L - L / 4` characters. Shorter texts are returned unchanged.
pub fn pretrim_text(text: &str, max_tokens: usize) -> Cow<'_, str> {
    pretrim(text, max_tokens).0
}

/// The token positions kept by [`truncate_ids`].
fn kept_ranges(special_mask: &[u32], max_tokens: usize) -> [Range<usize>; 2] {
    let n = special_mask.len();
    if n <= max_tokens {
        return [0..n, n..n];
    }
    let prefix = special_mask.iter().take_while(|&&m| m != 0).count();
    let suffix = special_mask[prefix..]
        .iter()
        .rev()
        .take_while(|&&m| m != 0)
        .count();
    if prefix + suffix >= max_tokens {
        return [0..max_tokens, n..n];
    }
    let budget = max_tokens - prefix - suffix;
    let head = budget / 4;
    let tail = budget - head;
    [0..prefix + head, n - suffix - tail..n]
}

/// Head-and-tail truncation of one encoded text to at most `max_tokens`
/// tokens: keep the leading special tokens (e.g. `[CLS]`), the first
/// `budget / 4` content tokens, the last `budget - budget / 4` content tokens
/// and the trailing special tokens (e.g. `[SEP]`), where `budget` is
/// `max_tokens` minus the special tokens kept. `special_mask` marks special
/// tokens with 1 (as `tokenizers::Encoding::get_special_tokens_mask`).
/// Sequences of at most `max_tokens` are returned whole.
pub fn truncate_ids<T: Clone>(ids: &[T], special_mask: &[u32], max_tokens: usize) -> Vec<T> {
    assert_eq!(
        ids.len(),
        special_mask.len(),
        "ids and mask differ in length"
    );
    let [a, b] = kept_ranges(special_mask, max_tokens);
    let mut out = Vec::with_capacity(a.len() + b.len());
    out.extend_from_slice(&ids[a]);
    out.extend_from_slice(&ids[b]);
    out
}

/// Token ids of `text` as the model sees them: pretrimmed ([`pretrim_text`]),
/// encoded with special tokens, then head+tail truncated ([`truncate_ids`]).
pub(crate) fn token_ids(
    tokenizer: &Tokenizer,
    text: &str,
    max_tokens: usize,
) -> Result<Vec<u32>, EmbedError> {
    let (trimmed, _) = pretrim(text, max_tokens);
    let enc = tokenizer
        .encode_fast(trimmed.as_ref(), true)
        .map_err(|e| EmbedError::Tokenize(e.to_string()))?;
    Ok(truncate_ids(
        enc.get_ids(),
        enc.get_special_tokens_mask(),
        max_tokens,
    ))
}

/// Which model inputs the session declares.
#[derive(Debug, Clone, Copy)]
struct Inputs {
    attention_mask: bool,
    token_type_ids: bool,
}

/// The local embedder: a tokenizer and one ONNX Runtime session.
///
/// Not `Sync`-shared: each thread that embeds owns its own `Embedder`.
pub struct Embedder {
    cfg: EmbedderConfig,
    tokenizer: Tokenizer,
    session: Session,
    inputs: Inputs,
    output: String,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model_path", &self.cfg.model_path)
            .field("output", &self.output)
            .field("dimensions", &self.cfg.dimensions)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads ONNX Runtime (once per process), the tokenizer and the model,
    /// and checks with one tiny inference that the model's output has
    /// `cfg.dimensions` dimensions.
    pub fn load(cfg: &EmbedderConfig) -> Result<Self, EmbedError> {
        cfg.validate()?;
        let env = ort_environment(&cfg.resolved_ort_dylib_path())?;

        let tok_err = |reason: String| EmbedError::TokenizerLoad {
            path: cfg.tokenizer_path.clone(),
            reason,
        };
        if !cfg.tokenizer_path.is_file() {
            return Err(tok_err("file not found".into()));
        }
        let mut tokenizer =
            Tokenizer::from_file(&cfg.tokenizer_path).map_err(|e| tok_err(e.to_string()))?;
        // Truncation and padding are ours (head+tail truncation, pad to the
        // longest of the batch); the file's fixed settings would change vectors.
        tokenizer
            .with_truncation(None)
            .map_err(|e| tok_err(e.to_string()))?;
        tokenizer.with_padding(None);

        let model_err = |reason: String| EmbedError::ModelLoad {
            path: cfg.model_path.clone(),
            reason,
        };
        if !cfg.model_path.is_file() {
            return Err(model_err("file not found".into()));
        }
        // With the CPU arena on, ONNX Runtime keeps the largest working set it ever
        // needed (and memory patterns cache one plan per input shape): a burst of long
        // prompts left the process at its peak RSS for good. Off, each run's buffers go
        // back to malloc when the run ends (see docs/embedder.md for the measurements).
        let session = Session::builder(&env)
            .map_err(|e| model_err(e.to_string()))?
            .with_execution_providers([ort::ep::CPU::default()
                .with_arena_allocator(cfg.cpu_arena)
                .build()])
            .map_err(|e| model_err(e.to_string()))?
            .with_memory_pattern(cfg.cpu_arena)
            .map_err(|e| model_err(e.to_string()))?
            .with_intra_threads(cfg.intra_op_threads)
            .map_err(|e| model_err(e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| model_err(e.to_string()))?
            .commit_from_file(&cfg.model_path)
            .map_err(|e| model_err(e.to_string()))?;

        let mut inputs = Inputs {
            attention_mask: false,
            token_type_ids: false,
        };
        let mut has_ids = false;
        for input in session.inputs() {
            match input.name() {
                "input_ids" => has_ids = true,
                "attention_mask" => inputs.attention_mask = true,
                "token_type_ids" => inputs.token_type_ids = true,
                other => return Err(model_err(format!("unsupported model input `{other}`"))),
            }
        }
        if !has_ids {
            return Err(model_err("model has no `input_ids` input".into()));
        }
        let names: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        let output = [
            "last_hidden_state",
            "token_embeddings",
            "sentence_embedding",
        ]
        .into_iter()
        .find(|n| names.contains(n))
        .or(names.first().copied())
        .ok_or_else(|| model_err("model has no outputs".into()))?
        .to_string();

        let mut me = Self {
            cfg: cfg.clone(),
            tokenizer,
            session,
            inputs,
            output,
        };
        // Warm-up, and check the output shape against the configuration.
        let v = me
            .embed_batch(&["warm-up"])
            .map_err(|e| model_err(e.to_string()))?;
        debug_assert_eq!(v[0].len(), cfg.dimensions);
        Ok(me)
    }

    /// The configuration this embedder was loaded with.
    pub fn config(&self) -> &EmbedderConfig {
        &self.cfg
    }

    /// Length of the output vectors.
    pub fn dimensions(&self) -> usize {
        self.cfg.dimensions
    }

    /// The tokenizer (with the file's truncation and padding disabled), for
    /// modules that need token ids or offsets.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Token ids of `text` exactly as the model sees them: special tokens
    /// added, pretrimmed and head+tail truncated to `max_tokens`.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        token_ids(&self.tokenizer, text, self.cfg.max_tokens)
    }

    /// Embeds `texts`; returns one pooled (and, if configured, L2-normalised)
    /// vector per text, in order. Tokenises with [`Embedder::token_ids`], then
    /// runs [`Embedder::embed_token_ids`].
    pub fn embed_batch(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let ids = texts
            .iter()
            .map(|t| self.token_ids(t))
            .collect::<Result<Vec<_>, _>>()?;
        self.embed_token_ids(ids)
    }

    /// Embeds already tokenised texts (as [`Embedder::token_ids`] makes them);
    /// one vector per sequence, in order.
    ///
    /// The sequences are sorted by length and run in sub-batches of similar
    /// length (a sub-batch takes sequences of at most `1.3 * shortest + 2`
    /// tokens), each padded to its longest: padding a short question to a
    /// long one's length would cost more than batching saves. A sub-batch
    /// also holds at most `max_batch_tokens` tokens with padding (rows times
    /// padded length, at least one row), which bounds the memory of one
    /// ONNX Runtime run: attention alone is rows x heads x length² floats.
    ///
    /// A sequence that is empty or longer than `max_tokens` is refused
    /// (`EmbedError::Tokenize`): it was not made by this embedder's tokenizer.
    pub fn embed_token_ids(&mut self, mut ids: Vec<Vec<u32>>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let max_tokens = self.cfg.max_tokens;
        if let Some(bad) = ids.iter().find(|s| s.is_empty() || s.len() > max_tokens) {
            return Err(EmbedError::Tokenize(format!(
                "a token sequence of {} tokens is outside 1..={max_tokens}",
                bad.len()
            )));
        }
        let n = ids.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| ids[i].len());
        let max_batch_tokens = self.cfg.max_batch_tokens;
        let mut out = vec![Vec::new(); n];
        let mut start = 0;
        while start < n {
            let shortest = ids[order[start]].len();
            let limit = shortest + shortest * 3 / 10 + 2;
            let mut end = start + 1;
            // Sorted by length: the padded length is the last row's.
            while end < n {
                let len = ids[order[end]].len();
                if len > limit || (end - start + 1) * len > max_batch_tokens {
                    break;
                }
                end += 1;
            }
            let group: Vec<Vec<u32>> = order[start..end]
                .iter()
                .map(|&i| std::mem::take(&mut ids[i]))
                .collect();
            let vectors = self.embed_ids(&group)?;
            for (&i, v) in order[start..end].iter().zip(vectors) {
                out[i] = v;
            }
            start = end;
        }
        Ok(out)
    }

    /// Runs one padded batch of token ids and pools it.
    fn embed_ids(&mut self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let lens: Vec<usize> = ids.iter().map(Vec::len).collect();
        let pooling = self.cfg.pooling;
        let normalize = self.cfg.normalize;
        self.infer(ids, |dims, data| {
            let mut out = Vec::with_capacity(lens.len());
            match *dims {
                [b, seq, d] => {
                    for (i, &len) in lens.iter().enumerate().take(b) {
                        let rows = &data[i * seq * d..(i + 1) * seq * d];
                        let v = match pooling {
                            Pooling::Cls => rows[..d].to_vec(),
                            Pooling::Mean => {
                                // Padding is at the end: the first `len` rows are the
                                // attention-masked ones.
                                let mut acc = vec![0f32; d];
                                for row in rows[..len * d].chunks_exact(d) {
                                    for (a, x) in acc.iter_mut().zip(row) {
                                        *a += *x;
                                    }
                                }
                                let n = (len as f32).max(1e-9);
                                acc.iter_mut().for_each(|a| *a /= n);
                                acc
                            }
                        };
                        out.push(v);
                    }
                }
                // Already pooled by the model.
                [b, d] => out.extend(data.chunks_exact(d).take(b).map(<[f32]>::to_vec)),
                _ => unreachable!("infer checks the rank"),
            }
            if normalize {
                out.iter_mut().for_each(|v| l2_normalize(v));
            }
            out
        })
    }

    /// Embeds one text and returns its token-level vectors (`last_hidden_state`
    /// rows) with the tokens' strings, ids and offsets; special tokens included,
    /// after the same truncation as [`Embedder::embed_batch`].
    pub fn embed_tokens(&mut self, text: &str) -> Result<TokenEmbeddings, EmbedError> {
        let (trimmed, cut) = pretrim(text, self.cfg.max_tokens);
        let enc = self
            .tokenizer
            .encode(trimmed.as_ref(), true)
            .map_err(|e| EmbedError::Tokenize(e.to_string()))?;
        let mask = enc.get_special_tokens_mask();
        let max = self.cfg.max_tokens;
        let ids = truncate_ids(enc.get_ids(), mask, max);
        let tokens = truncate_ids(enc.get_tokens(), mask, max);
        let special: Vec<bool> = truncate_ids(mask, mask, max)
            .into_iter()
            .map(|m| m != 0)
            .collect();
        let offsets: Vec<(usize, usize)> = truncate_ids(enc.get_offsets(), mask, max)
            .into_iter()
            .zip(&special)
            .map(|((s, e), &sp)| match cut {
                // Map offsets in the tail of a pretrimmed text back to the original.
                Some(c) if !sp && s > c.head_end => {
                    let shift = c.tail_start - (c.head_end + 1);
                    (s + shift, e + shift)
                }
                _ => (s, e),
            })
            .collect();
        let n = ids.len();
        let vectors = self.infer(std::slice::from_ref(&ids), |dims, data| match *dims {
            [_, seq, d] => Ok(data[..seq.min(n) * d]
                .chunks_exact(d)
                .map(<[f32]>::to_vec)
                .collect()),
            _ => Err(EmbedError::Inference(
                "the model's output is already pooled; token vectors are unavailable".into(),
            )),
        })??;
        Ok(TokenEmbeddings {
            tokens,
            ids,
            offsets,
            special,
            vectors,
        })
    }

    /// Runs the model on right-padded `ids` and hands the output's dims and
    /// data to `f` (rank 3 `[batch, seq, d]` or rank 2 `[batch, d]`, with
    /// `d == dimensions` checked).
    fn infer<R>(
        &mut self,
        ids: &[Vec<u32>],
        f: impl FnOnce(&[usize], &[f32]) -> R,
    ) -> Result<R, EmbedError> {
        let b = ids.len();
        let seq = ids.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut input_ids = vec![0i64; b * seq];
        let mut attention = vec![0i64; b * seq];
        for (i, row) in ids.iter().enumerate() {
            for (j, &id) in row.iter().enumerate() {
                input_ids[i * seq + j] = i64::from(id);
                attention[i * seq + j] = 1;
            }
        }
        let inf = |e: ort::Error| EmbedError::Inference(e.to_string());
        let shape = [b, seq];
        let mut inputs: Vec<(&str, SessionInputValue<'_>)> = Vec::with_capacity(3);
        inputs.push((
            "input_ids",
            Tensor::from_array((shape, input_ids)).map_err(inf)?.into(),
        ));
        if self.inputs.attention_mask {
            inputs.push((
                "attention_mask",
                Tensor::from_array((shape, attention)).map_err(inf)?.into(),
            ));
        }
        if self.inputs.token_type_ids {
            inputs.push((
                "token_type_ids",
                Tensor::from_array((shape, vec![0i64; b * seq]))
                    .map_err(inf)?
                    .into(),
            ));
        }
        let d_cfg = self.cfg.dimensions;
        let outputs = self.session.run(inputs).map_err(inf)?;
        let value = outputs
            .get(&self.output)
            .ok_or_else(|| EmbedError::Inference(format!("no output `{}`", self.output)))?;
        let (shape, data) = value.try_extract_tensor::<f32>().map_err(inf)?;
        let dims: Vec<usize> = shape.iter().map(|&x| x.max(0) as usize).collect();
        let ok = match dims[..] {
            [bb, ss, d] => bb == b && ss == seq && d == d_cfg,
            [bb, d] => bb == b && d == d_cfg,
            _ => false,
        };
        if !ok || data.len() != dims.iter().product::<usize>() {
            return Err(EmbedError::Inference(format!(
                "unexpected output shape {dims:?} for input [{b}, {seq}] (dimensions = {d_cfg})"
            )));
        }
        Ok(f(&dims, data))
    }
}

/// Divides `v` by its L2 norm (clamped to 1e-12, as `torch.nn.functional.normalize`).
fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_sequences_are_kept_whole() {
        let ids = [101u32, 1, 2, 3, 102];
        assert_eq!(truncate_ids(&ids, &[1, 0, 0, 0, 1], 5), ids.to_vec());
        assert_eq!(truncate_ids(&ids, &[1, 0, 0, 0, 1], 10), ids.to_vec());
    }

    #[test]
    fn long_sequences_keep_special_head_and_tail() {
        // [CLS] 0..100 [SEP], max 10: budget 8 -> head 2, tail 6.
        let mut ids = vec![1000u32];
        ids.extend(0..100);
        ids.push(2000);
        let mut mask = vec![0u32; ids.len()];
        mask[0] = 1;
        *mask.last_mut().unwrap() = 1;
        let out = truncate_ids(&ids, &mask, 10);
        assert_eq!(out, vec![1000, 0, 1, 94, 95, 96, 97, 98, 99, 2000]);
    }

    #[test]
    fn degenerate_all_special_is_cut_to_max() {
        let ids = [1u32, 2, 3, 4];
        assert_eq!(truncate_ids(&ids, &[1, 1, 1, 1], 2), vec![1, 2]);
    }

    #[test]
    fn pretrim_keeps_short_text_and_cuts_long_text() {
        assert!(matches!(pretrim_text("hello", 8), Cow::Borrowed("hello")));
        // limit = 8 * 32 = 256 chars: head 64, tail 192.
        let text: String = (0..1000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let cut = pretrim_text(&text, 8);
        assert_eq!(cut.chars().count(), 64 + 1 + 192);
        assert_eq!(&cut[..64], &text[..64]);
        assert_eq!(&cut[64..65], " ");
        assert_eq!(&cut[65..], &text[1000 - 192..]);
    }

    #[test]
    fn pretrim_counts_chars_not_bytes() {
        // 200 two-byte chars: 400 bytes but only 200 chars, under 256.
        let text = "é".repeat(200);
        assert!(matches!(pretrim_text(&text, 8), Cow::Borrowed(_)));
        let text = "é".repeat(300);
        let cut = pretrim_text(&text, 8);
        assert_eq!(cut.chars().count(), 257);
    }

    #[test]
    fn l2_normalize_gives_unit_norm_and_keeps_zero() {
        let mut v = vec![3.0, 4.0];
        l2_normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        let mut z = vec![0.0, 0.0];
        l2_normalize(&mut z);
        assert_eq!(z, vec![0.0, 0.0]);
    }
}
