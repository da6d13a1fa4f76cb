#!/usr/bin/env python3
"""PyTorch baselines for bench/bench_gpu.cpp, same shapes and FLOP formulas, on cuda:0 (issue #5).

Usage: torch_gpu_baselines.py [--csv FILE] [--steps 5] [--only gemm,train,infer,attention] [--layers L] (--help)
  gemm       torch.matmul bf16 and f32 (TF32 off) at 8192^3
  train      DANet-BERT-Large training step (forward + backward, bf16 autocast-free: bf16 parameters) at N 512
             under torch.compile, from tests/reference/danet_reference.py
  infer      the same model's encoder forward under torch.compile at N = 128, 1K, 16K, 128K, 128K tokens a batch
  attention  F.scaled_dot_product_attention forward + backward, bf16, H = 1024 / e, 16K tokens a batch
Prints one table per section and writes "section,key,value" rows to --csv (bench/gpu_report.py joins them with
dense_bench_gpu's). A section that fails prints its error and is left out; the others still run.
"""
import argparse
import json
import os
import sys
import time
import traceback

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
from danet_reference import DANetReference  # noqa: E402

DEV = "cuda"  # --device cpu runs the same code at toy sizes (a smoke check; torch < 2 has no torch.compile)


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def compile_(f):
    return torch.compile(f) if hasattr(torch, "compile") else f


def best_seconds(steps, f):
    f()
    sync()
    best = float("inf")
    for _ in range(steps):
        t0 = time.perf_counter()
        f()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def danet_config(N, complexity, layers):
    with open(os.path.join(HERE, "..", "configs", "models", "danet_bert_large_seq512.json")) as f:
        c = json.load(f)
    c["max_position_embeddings"] = N
    c["attention_complexity"] = complexity
    if layers:
        c["num_hidden_layers"] = layers
    return c


def forward_flops_per_token(c, N, linear, head):
    """bench_gpu.cpp's danet_forward_flops_per_token, term for term."""
    d, L, r = c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"]
    e = d // c["num_attention_heads"]
    vocab = (c["vocab_size"] + 7) // 8 * 8
    layer = 2 * d * d + 4 * d * (e if linear else N) + 4 * d * r * d
    return L * layer + ((2 * d * d + 0.15 * 2 * d * vocab) if head else 0.0)


def make_params(model, dtype, grad):
    g = torch.Generator(device=DEV).manual_seed(0)
    return {name: (torch.randn(shape, generator=g, device=DEV) * 0.02).to(dtype).requires_grad_(grad)
            for name, shape in model.param_shapes().items()}


def batch(B, N, vocab, labels):
    i = torch.arange(B * N, device=DEV)
    ids = ((i * 7919) % vocab).reshape(B, N)
    if not labels:
        return ids, None
    lab = torch.full((B * N,), -1, dtype=torch.long, device=DEV)
    keep = ((i.to(torch.int64) * 2654435761) % (2 ** 32)) % 100 < 15
    lab[keep] = ids.reshape(-1)[keep]
    return ids, lab.reshape(B, N)


def run_gemm(args, csv):
    n = args.gemm_n
    print(f"\n## torch GEMM peak ({n}^3)\n\n| dtype | ms | TFLOP/s |\n| --- | ---: | ---: |")
    torch.backends.cuda.matmul.allow_tf32 = False
    peaks = {}
    for name, dt in (("bf16", torch.bfloat16), ("f32", torch.float32)):
        a = torch.randn(n, n, device=DEV, dtype=dt)
        b = torch.randn(n, n, device=DEV, dtype=dt)
        s = best_seconds(args.steps, lambda: a @ b)
        peaks[name] = 2 * n ** 3 / s
        print(f"| {name} | {s * 1e3:.2f} | {peaks[name] / 1e12:.1f} |")
        csv.append(("gemm", name, peaks[name] / 1e12))
    return peaks


def run_train(args, csv, peaks):
    N, B = 512, args.train_batch
    c = danet_config(N, "quadratic", args.layers)
    model = DANetReference(c)
    params = make_params(model, torch.bfloat16, True)
    ids, labels = batch(B, N, c["vocab_size"], True)

    def fwd_bwd():
        out = model.forward(params, ids, mlm_labels=labels)
        out["loss"].backward()

    compiled = compile_(fwd_bwd)

    def step():
        for p in params.values():
            p.grad = None
        compiled()

    s = best_seconds(args.steps, step)
    tokens = B * N
    flops = 3 * forward_flops_per_token(c, N, False, True) * tokens
    mfu = flops / s / peaks["bf16"]
    print(f"\n## torch DANet-BERT-Large training step (bf16 parameters, torch.compile, forward + backward without the optimizer step, N {N}, batch {B})\n\n"
          f"| tokens/step | ms/step | tokens/s | MFU |\n| ---: | ---: | ---: | ---: |\n"
          f"| {tokens} | {s * 1e3:.1f} | {tokens / s:.0f} | {100 * mfu:.1f}% |")
    csv.append(("train", "tokens_per_s", tokens / s))
    csv.append(("train", "mfu", mfu))


def run_infer(args, csv, peaks):
    print(f"\n## torch DANet-BERT-Large inference (bf16, torch.compile, {args.tokens} tokens per batch)\n\n"
          "| N | batch | ms | tokens/s | MFU |\n| ---: | ---: | ---: | ---: | ---: |")
    for N in (n for n in (128, 1024, 16384, 131072) if n <= args.max_n):
        B = max(1, args.tokens // N)
        c = danet_config(N, "auto", args.layers)
        model = DANetReference(c)
        params = make_params(model, torch.bfloat16, False)
        ids, _ = batch(B, N, c["vocab_size"], False)
        enc = compile_(lambda: model.encoder(params, ids))
        with torch.no_grad():
            s = best_seconds(args.steps, enc)
        e = c["hidden_size"] // c["num_attention_heads"]
        mfu = forward_flops_per_token(c, N, e <= N, False) * B * N / s / peaks["bf16"]
        print(f"| {N} | {B} | {s * 1e3:.1f} | {B * N / s:.0f} | {100 * mfu:.1f}% |")
        csv.append(("infer", str(N), B * N / s))
        del params, model
        if DEV == "cuda":
            torch.cuda.empty_cache()


def run_attention(args, csv):
    print("\n## torch scaled_dot_product_attention, forward + backward (bf16, d = 1024, 16K tokens)\n\n"
          "| N | head dim | ms | TFLOP/s |\n| ---: | ---: | ---: | ---: |")
    for e in (64, 128):
        for N in (n for n in (512, 1024, 2048, 4096, 8192, 16384) if n <= args.max_n):
            H, B = 1024 // e, max(1, args.attention_tokens // N)
            q, k, v = (torch.randn(B, H, N, e, device=DEV, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
            dout = torch.randn(B, H, N, e, device=DEV, dtype=torch.bfloat16)

            def fwd_bwd():
                o = F.scaled_dot_product_attention(q, k, v)
                o.backward(dout)

            s = best_seconds(args.steps, fwd_bwd)
            flops = 3.5 * 4 * B * H * N * N * e
            print(f"| {N} | {e} | {s * 1e3:.2f} | {flops / s / 1e12:.1f} |")
            csv.append(("attention", f"{N}/{e}", flops / s / 1e12))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--only", default="gemm,train,infer,attention")
    ap.add_argument("--layers", type=int, default=0)
    ap.add_argument("--train-batch", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=131072)
    ap.add_argument("--attention-tokens", type=int, default=16384)
    ap.add_argument("--max-n", type=int, default=131072)
    ap.add_argument("--gemm-n", type=int, default=8192)
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    args = ap.parse_args()
    global DEV
    DEV = args.device
    if DEV == "cuda" and not torch.cuda.is_available():
        print("torch_gpu_baselines: no CUDA device", file=sys.stderr)
        return 2
    sections = set(args.only.split(","))
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0) if DEV == 'cuda' else 'cpu'}")
    csv = []
    peaks = run_gemm(args, csv)
    failed = 0
    for name, run in (("train", lambda: run_train(args, csv, peaks)), ("infer", lambda: run_infer(args, csv, peaks)),
                      ("attention", lambda: run_attention(args, csv))):
        if name not in sections:
            continue
        try:
            run()
        except Exception:  # one failing baseline must not hide the others
            failed += 1
            print(f"\ntorch {name} failed:\n{traceback.format_exc()}", file=sys.stderr)
        if DEV == "cuda":
            torch.cuda.empty_cache()
    if args.csv:
        with open(args.csv, "w") as f:
            for row in csv:
                f.write(f"{row[0]},{row[1]},{row[2]}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
