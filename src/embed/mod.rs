//! Local ONNX embedder (all-MiniLM-L6-v2 by default) and its actor.
