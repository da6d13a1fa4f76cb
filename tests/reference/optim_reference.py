#!/usr/bin/python3
"""Golden optimizer trajectories for the C++ optimizers (src/train/optimizer.h).

Usage: /usr/bin/python3 tests/reference/optim_reference.py OUTDIR

AdamW is torch.optim.AdamW itself. torch has no LAMB, so `lamb_step` below writes it from the paper's
Algorithm 2 (You et al. 2019, "Large Batch Optimization for Deep Learning") in plain torch, with the bias
correction and the unclamped trust ratio of NVIDIA apex FusedLAMB:

    m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
    u = (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps) + wd p
    r = ||p|| / ||u||   (1 when either norm is 0), per parameter
    p = p - lr r u

Each case is a flat "arena" of several parameters with alignment gaps between them, two parameter groups
(decay and no decay), random non-zero values and per-step random gradients (one parameter's gradients are
~1e-15, where eps = 1e-16 matters, and one parameter starts at exactly zero, where LAMB's ratio is 1), and a
different learning rate every step. OUTDIR/<case>.safetensors holds

    metadata  {"case": json {type, betas, eps, weight_decay, lrs, numel, ranges: [[name, offset, numel,
               decay], ...]}}
    init.values [numel] F64                    the arena before step 1 (gaps hold non-zero junk that must
                                               stay untouched)
    grad.{k} [numel] F64                       the gradients of step k (k = 0..steps-1; zero in the gaps)
    f64.values.{k}, f64.exp_avg.{k}, f64.exp_avg_sq.{k} [numel] F64  after step k, computed in float64
    f32.values.{k} [numel] F32                 the same run in float32 from the f32-rounded inputs (AdamW
                                               only: torch's own f32 arithmetic)

and OUTDIR/optim_cases.txt lists the case names.
"""

import json
import math
import os
import sys
from collections import OrderedDict

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from safetensors_io import save_file  # noqa: E402

# name, numel, decay, gradient scale. "big" spans more than one 4096-element block of the C++ loops, so the
# per-parameter LAMB norms are sums over several blocks.
PARAMS = [
    ("encoder.w", 35, True, 1.0),
    ("encoder.bias", 5, False, 0.3),
    ("big.weight", 5000, True, 1e-2),
    ("tiny_grad.weight", 24, True, 1e-15),
    ("norm.weight", 9, False, 1.0),
    ("zero_init.weight", 6, True, 1.0),
]

CASES = [
    # name, type, betas, eps, weight decay, steps
    ("adamw_eps1e-16_b0.9_0.9", "adamw", (0.9, 0.9), 1e-16, 0.1, 6),
    ("adamw_eps1e-8_b0.9_0.999", "adamw", (0.9, 0.999), 1e-8, 0.01, 6),
    ("adamw_eps1e-16_b0.9_0.999_nowd", "adamw", (0.9, 0.999), 1e-16, 0.0, 4),
    ("lamb_eps1e-6_b0.9_0.999", "lamb", (0.9, 0.999), 1e-6, 0.01, 6),
    ("lamb_eps1e-16_b0.9_0.9", "lamb", (0.9, 0.9), 1e-16, 0.1, 6),
]


def layout():
    ranges, offset = [], 0
    for name, n, decay, _ in PARAMS:
        ranges.append([name, offset, n, decay])
        offset += (n + 15) // 16 * 16 + 3  # gaps of 3..18 elements, like (and more than) the arena padding
    return ranges, offset


def lamb_step(params, grads, exp_avgs, exp_avg_sqs, decays, step, lr, betas, eps, wd):
    b1, b2 = betas
    bc1 = 1 - b1 ** step
    bc2 = 1 - b2 ** step
    for p, g, m, v, decay in zip(params, grads, exp_avgs, exp_avg_sqs, decays):
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        u = (m / bc1) / ((v / bc2).sqrt() + eps)
        if decay and wd != 0:
            u = u + wd * p
        p_norm = float(p.norm())
        u_norm = float(u.norm())
        ratio = p_norm / u_norm if p_norm > 0 and u_norm > 0 else 1.0
        p.add_(u, alpha=-(lr * ratio))


def run(kind, betas, eps, wd, lrs, ranges, init, grads, dtype):
    """Runs the optimizer over the arena; returns per-step (values, exp_avg, exp_avg_sq) arenas."""
    params = [init[o:o + n].clone().to(dtype).requires_grad_(True) for _, o, n, _ in ranges]
    decays = [d for _, _, _, d in ranges]
    out = []
    if kind == "adamw":
        groups = [{"params": [p for p, d in zip(params, decays) if d], "weight_decay": wd},
                  {"params": [p for p, d in zip(params, decays) if not d], "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=lrs[0], betas=betas, eps=eps, foreach=False)
    else:
        exp_avgs = [torch.zeros_like(p) for p in params]
        exp_avg_sqs = [torch.zeros_like(p) for p in params]
    for k, lr in enumerate(lrs):
        for p, (_, o, n, _) in zip(params, ranges):
            p.grad = grads[k][o:o + n].clone().to(dtype)
        with torch.no_grad():
            if kind == "adamw":
                for g in opt.param_groups:
                    g["lr"] = lr
                opt.step()
                exp_avgs = [opt.state[p]["exp_avg"] for p in params]
                exp_avg_sqs = [opt.state[p]["exp_avg_sq"] for p in params]
            else:
                lamb_step(params, [p.grad for p in params], exp_avgs, exp_avg_sqs, decays, k + 1, lr, betas, eps,
                          wd)
        arenas = []
        for tensors in (params, exp_avgs, exp_avg_sqs):
            a = init.clone().to(dtype) if tensors is params else torch.zeros_like(init, dtype=dtype)
            for t, (_, o, n, _) in zip(tensors, ranges):
                a[o:o + n] = t.detach()
            arenas.append(a)
        out.append(arenas)
    return out


def make_case(name, kind, betas, eps, wd, steps, seed):
    gen = torch.Generator().manual_seed(seed)
    ranges, numel = layout()
    init = torch.randn(numel, generator=gen, dtype=torch.float64)
    grads = [torch.zeros(numel, dtype=torch.float64) for _ in range(steps)]
    for (pname, o, n, _), (_, _, _, gscale) in zip(ranges, PARAMS):
        if pname == "zero_init.weight":
            init[o:o + n] = 0.0
        for k in range(steps):
            grads[k][o:o + n] = gscale * torch.randn(n, generator=gen, dtype=torch.float64)
    # Rounded to f32 once, so that the f64 and f32 runs (here and in C++) start from the same numbers.
    init = init.to(torch.float32).to(torch.float64)
    grads = [g.to(torch.float32).to(torch.float64) for g in grads]
    lrs = [1e-3 * (0.5 + 0.25 * k) for k in range(steps)]

    tensors = OrderedDict()
    tensors["init.values"] = init
    for k in range(steps):
        tensors[f"grad.{k}"] = grads[k]
    for k, (p, m, v) in enumerate(run(kind, betas, eps, wd, lrs, ranges, init, grads, torch.float64)):
        tensors[f"f64.values.{k}"] = p
        tensors[f"f64.exp_avg.{k}"] = m
        tensors[f"f64.exp_avg_sq.{k}"] = v
    if kind == "adamw":
        for k, (p, _, _) in enumerate(run(kind, betas, eps, wd, lrs, ranges, init, grads, torch.float32)):
            tensors[f"f32.values.{k}"] = p
    meta = {"type": kind, "betas": list(betas), "eps": eps, "weight_decay": wd, "lrs": lrs, "numel": numel,
            "ranges": ranges}
    return tensors, {"case": json.dumps(meta)}


def self_check():
    """LAMB with one parameter, wd = 0 and a large eps against a hand computation of step 1."""
    p = torch.tensor([3.0, 4.0], dtype=torch.float64)
    g = torch.tensor([1.0, -2.0], dtype=torch.float64)
    m, v = torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    lamb_step([p], [g], [m], [v], [True], 1, 0.1, (0.9, 0.99), 0.0, 0.0)
    # Step 1 with eps 0: u = g/|g| = sign(g) = (1, -1); ||p|| = 5, ||u|| = sqrt(2).
    expect = torch.tensor([3.0, 4.0], dtype=torch.float64) - 0.1 * (5 / math.sqrt(2)) * torch.tensor([1.0, -1.0],
                                                                                                   dtype=torch.float64)
    assert torch.allclose(p, expect, rtol=1e-14, atol=0), (p, expect)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    self_check()
    for i, (name, kind, betas, eps, wd, steps) in enumerate(CASES):
        tensors, meta = make_case(name, kind, betas, eps, wd, steps, seed=1234 + i)
        save_file(tensors, os.path.join(outdir, name + ".safetensors"), meta)
    with open(os.path.join(outdir, "optim_cases.txt"), "w") as f:
        f.write("".join(c[0] + "\n" for c in CASES))
    print(f"wrote {len(CASES)} optimizer cases to {outdir}")


if __name__ == "__main__":
    main()
