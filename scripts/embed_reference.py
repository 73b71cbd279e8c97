#!/usr/bin/env python3
"""Reference sentence embeddings computed with the Python onnxruntime.

Used by tests/embed_equivalence.rs to check deja's Rust embedder. It computes
what sentence-transformers computes for all-MiniLM-L6-v2 (mean pooling over
the attention mask, then L2 normalisation), from the same model.onnx and
tokenizer.json, applying deja's documented truncation of long texts
(src/embed/embedder.rs: pretrim_text, truncate_ids) so both sides see the same
tokens.

Each text is run on its own (batch of one, no padding), so the comparison also
checks that deja's padding and masking do not change the vectors.

Input (stdin, JSON):
  {"model": path, "tokenizer": path, "max_tokens": 256,
   "pooling": "mean" | "cls", "normalize": true, "texts": [str, ...]}
Output (stdout, JSON):
  {"vectors": [[float, ...], ...], "token_counts": [int, ...]}
"""

import json
import sys

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

PRETRIM_CHARS_PER_TOKEN = 32  # src/embed/embedder.rs: PRETRIM_CHARS_PER_TOKEN


def pretrim(text: str, max_tokens: int) -> str:
    limit = max_tokens * PRETRIM_CHARS_PER_TOKEN
    if len(text) <= limit:
        return text
    head = limit // 4
    tail = limit - head
    return text[:head] + " " + text[len(text) - tail :]


def truncate(ids, special_mask, max_tokens):
    n = len(ids)
    if n <= max_tokens:
        return list(ids)
    prefix = 0
    while prefix < n and special_mask[prefix]:
        prefix += 1
    suffix = 0
    while suffix < n - prefix and special_mask[n - 1 - suffix]:
        suffix += 1
    if prefix + suffix >= max_tokens:
        return list(ids[:max_tokens])
    budget = max_tokens - prefix - suffix
    head = budget // 4
    tail = budget - head
    return list(ids[: prefix + head]) + list(ids[n - suffix - tail :])


def main() -> None:
    req = json.load(sys.stdin)
    max_tokens = int(req.get("max_tokens", 256))
    pooling = req.get("pooling", "mean")
    normalize = bool(req.get("normalize", True))

    tok = Tokenizer.from_file(req["tokenizer"])
    tok.no_truncation()
    tok.no_padding()

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(req["model"], opts, providers=["CPUExecutionProvider"])
    input_names = {i.name for i in sess.get_inputs()}
    output_name = sess.get_outputs()[0].name

    vectors, counts = [], []
    for text in req["texts"]:
        enc = tok.encode(pretrim(text, max_tokens), add_special_tokens=True)
        ids = truncate(enc.ids, enc.special_tokens_mask, max_tokens)
        counts.append(len(ids))
        input_ids = np.array([ids], dtype=np.int64)
        mask = np.ones_like(input_ids)
        feeds = {"input_ids": input_ids}
        if "attention_mask" in input_names:
            feeds["attention_mask"] = mask
        if "token_type_ids" in input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        hidden = sess.run([output_name], feeds)[0].astype(np.float64)  # [1, seq, d]
        if pooling == "cls":
            v = hidden[0, 0]
        else:
            m = mask[..., None].astype(np.float64)
            v = ((hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None))[0]
        if normalize:
            v = v / max(float(np.linalg.norm(v)), 1e-12)
        vectors.append([float(x) for x in v])

    json.dump({"vectors": vectors, "token_counts": counts}, sys.stdout)


if __name__ == "__main__":
    main()
