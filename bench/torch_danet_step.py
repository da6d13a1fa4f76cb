#!/usr/bin/python3
"""One DANet training step (forward + backward) with the PyTorch reference, for bench/bench_core.

Usage: torch_danet_step.py D L N B THREADS STEPS  -> prints "ms_per_step <float>"
The model is tests/reference/danet_reference.py in float32 with the same shapes as the C++ benchmark.
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
from danet_reference import DANetReference  # noqa: E402


def main():
    d, L, N, B, threads, steps = (int(a) for a in sys.argv[1:7])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = {"model_type": "danet", "vocab_size": 30522, "hidden_size": d, "num_hidden_layers": L,
              "num_attention_heads": 1, "intermediate_size": 4, "max_position_embeddings": N,
              "embedding_ln_type": "max_norm", "final_ln_type": "max_norm", "lm_head_ln_type": "standard_ln",
              "attention_complexity": "linear", "pooler_function": "first"}
    model = DANetReference(config)
    params = {name: (torch.randn(shape) * 0.02).requires_grad_(True) for name, shape in model.param_shapes().items()}
    ids = torch.randint(0, 30522, (B, N))
    labels = torch.full((B, N), -1, dtype=torch.long)
    mask = torch.rand(B, N) < 0.15
    labels[mask] = ids[mask]
    def step():
        for p in params.values():
            p.grad = None
        out = model.forward(params, ids, mlm_labels=labels)
        out["loss"].backward()
    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    print(f"ms_per_step {(time.perf_counter() - t0) * 1000.0 / steps:.3f}")


if __name__ == "__main__":
    main()
