"""The model runtime shared by the causal-LM backends.

Loading and devices, injection-safe prompt tokenization, token-budget batching, cache split and
merge, the model runner (tensors in, logits and token ids out), the selection policy (threshold,
top-n eviction, what to decode), and the engine loop that owns a loaded model and serves every
caller's requests.
"""
