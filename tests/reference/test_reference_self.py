#!/usr/bin/python3
"""Self-checks of the PyTorch reference (run: /usr/bin/python3 tests/reference/test_reference_self.py).

Plain asserts; prints one line per test and "N passed, M failed"; exits non-zero on any failure.
"""

import json
import math
import os
import struct
import sys
import tempfile
import traceback

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import danet_reference as dr  # noqa: E402
from bert_reference import BertReference  # noqa: E402
from make_goldens import CASES, build_reference_model, random_params, run_case  # noqa: E402
from safetensors_io import load_file, save_file  # noqa: E402

torch.set_default_dtype(torch.float64)
D64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _close(a, b, tol=1e-12, what=""):
    err = (a - b).abs().max().item() if a.numel() else 0.0
    scale = max(1.0, b.abs().max().item() if b.numel() else 0.0)
    assert err <= tol * scale, f"{what}: max abs err {err:.3e} (scale {scale:.3e})"


def _small_cfg(**kw):
    base = {"model_type": "danet", "vocab_size": 37, "hidden_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 2, "max_position_embeddings": 16,
            "embedding_ln_type": "max_norm", "num_labels": 3}
    base.update(kw)
    return base


def _loss_and_grads(model, params, inputs):
    for p in params.values():
        p.grad = None
    out = model.forward(params, **inputs)
    out["loss"].backward()
    return out, {k: p.grad.clone() if p.grad is not None else torch.zeros_like(p) for k, p in params.items()}


# ------------------------------------------------------------------------------------------------
# DenseAttention kernels
# ------------------------------------------------------------------------------------------------

def test_linear_vs_quadratic_kernels():
    g = _gen(1)
    for n in (3, 8, 16):
        for e in (2, 4, 8, 16):
            q = torch.randn(2, 3, n, e, generator=g, requires_grad=True)
            k = torch.randn(2, 3, n, e, generator=g, requires_grad=True)
            v = torch.randn(2, 3, n, e, generator=g, requires_grad=True)
            dy = torch.randn(2, 3, n, e, generator=g)
            res = []
            for kern in (dr.kernel_linear, dr.kernel_quadratic):
                y = kern(q, k, v)
                gq, gk, gv = torch.autograd.grad(y, (q, k, v), dy)
                res.append((y, gq, gk, gv))
            for a, b, what in zip(res[0], res[1], ("out", "dq", "dk", "dv")):
                _close(a, b, 1e-12, f"n={n} e={e} {what}")


def test_linear_vs_quadratic_full_model():
    """Whole-model loss and every gradient agree between the linear and quadratic paths, for several H."""
    for H in (1, 2, 4, 8):
        results = []
        for cx in ("linear", "quadratic"):
            cfg = _small_cfg(num_attention_heads=H, attention_complexity=cx, pos_emb_type="relpe",
                             relpe_type="rope", relpe_scheme="q,k", final_ln_type="standard_ln")
            model = dr.DANetReference(cfg)
            params = random_params(model.param_shapes(), _gen(7))
            ids = torch.randint(0, 37, (2, 12), generator=_gen(8))
            mask = torch.ones(2, 12, dtype=torch.int64)
            mask[1, 9:] = 0
            labels = torch.full((2, 12), -1, dtype=torch.int64)
            labels[0, 3] = 5
            labels[1, 1] = 7
            inputs = dict(input_ids=ids, attention_mask=mask, mlm_labels=labels,
                          class_labels=torch.tensor([0, 2]))
            results.append(_loss_and_grads(model, params, inputs))
        (o1, g1), (o2, g2) = results
        _close(o1["sequence_output"], o2["sequence_output"], 1e-11, f"H={H} seq")
        _close(o1["loss"], o2["loss"], 1e-12, f"H={H} loss")
        for k in g1:
            _close(g1[k], g2[k], 1e-10, f"H={H} grad {k}")


def _dense_masked_attention(model, A, Wq, mask_nn, positions):
    """Reference for the chunked kernels: O_h = (Mask ⊙ Q_h K_hᵀ) V_h over the whole sequence."""
    Q, K, V = model._project(A, Wq, positions)
    q, k, v = (dr.split_heads(t, model.H) for t in (Q, K, V))
    S = (q @ k.transpose(-1, -2)) * mask_nn.to(A.dtype)
    return dr.merge_heads(S @ v)


def test_chunked_kernels_vs_masked_dense():
    """l / sl / sw / causal-global layers equal a dense computation with the corresponding N×N mask."""
    w = 4
    for relpe in (None, "cosine", "rope"):
        for N in (2, 3, 4, 5, 8, 10, 13, 16):
            idx = torch.arange(N)
            i, j = idx[:, None], idx[None, :]
            kw = {}
            if relpe:
                kw = dict(pos_emb_type="relpe", relpe_type=relpe, relpe_scheme="qkv" if relpe == "cosine" else "q,k,v")
            # Non-causal local model (no relpe positions restart check here: local_relpe False -> global positions)
            # max_position_embeddings 32: the sl positions reach N + w - 1 on the padded sequence
            cfg = _small_cfg(local_attention=True, local_scheme="l_sl_g", window_size=w, local_relpe=False,
                             max_position_embeddings=32, **kw)
            model = dr.DANetReference(cfg)
            A = torch.randn(2, N, 16, generator=_gen(N))
            Wq = torch.randn(16, 16, generator=_gen(100 + N))
            pos = torch.arange(N)
            block_l = (i // w) == (j // w)
            _close(model.attention(A, Wq, "l"), _dense_masked_attention(model, A, Wq, block_l, pos),
                   1e-12, f"l N={N} {relpe}")
            if N > w // 2:
                block_sl = ((i + w // 2) // w) == ((j + w // 2) // w)
                # local_relpe False: positions are counted on the w/2-padded sequence (shift by w/2)
                pos_sl = pos + w // 2
            else:
                block_sl = torch.ones(N, N, dtype=torch.bool)
                pos_sl = pos
            _close(model.attention(A, Wq, "sl"), _dense_masked_attention(model, A, Wq, block_sl, pos_sl),
                   1e-12, f"sl N={N} {relpe}")
            # Causal model with sliding window and global causal layers
            cfgc = _small_cfg(causal=True, local_attention=True, local_scheme="sw_g", window_size=w,
                              chunk_size=w, **kw)
            mc = dr.DANetReference(cfgc)
            band = (j <= i) & (i - j < w)  # each query sees exactly w keys, itself included
            _close(mc.attention(A, Wq, "sw"), _dense_masked_attention(mc, A, Wq, band, pos),
                   1e-12, f"sw N={N} {relpe}")
            _close(mc.attention(A, Wq, "g"), _dense_masked_attention(mc, A, Wq, j <= i, pos),
                   1e-12, f"causal g N={N} {relpe}")


def test_local_relpe_positions():
    """With local_relpe the l layer equals independent global forwards of each window (positions restart)."""
    w = 4
    cfg = _small_cfg(local_attention=True, local_scheme="l_sl_g", window_size=w, pos_emb_type="relpe",
                     relpe_type="rope", relpe_scheme="qkv,q,k")
    model = dr.DANetReference(cfg)
    for N in (8, 10):
        A = torch.randn(2, N, 16, generator=_gen(3))
        Wq = torch.randn(16, 16, generator=_gen(4))
        out = model.attention(A, Wq, "l")
        for s in range(0, N, w):
            win = A[:, s:s + w]
            ref = model._forward_global(win, Wq, dr.kernel_quadratic)
            _close(out[:, s:s + w], ref, 1e-12, f"window {s} N={N}")
        # sl: equals windows [0,w/2), [w/2, 3w/2), ... where the first window sits at local positions w/2..w-1
        out_sl = model.attention(A, Wq, "sl")
        Ap = F.pad(A, (0, 0, w // 2, w // 2))
        for s in range(0, N + w, w):
            win = Ap[:, s:s + w]
            ref = model._forward_global(win, Wq, dr.kernel_quadratic)
            lo, hi = max(s, w // 2), min(s + w, N + w // 2)
            if lo < hi:
                _close(out_sl[:, lo - w // 2:hi - w // 2], ref[:, lo - s:hi - s], 1e-12, f"sl window {s} N={N}")


def test_linear_quadratic_auto_rule():
    """auto = linear iff e <= n; the tie goes to linear."""
    calls = []
    orig_lin, orig_quad = dr.kernel_linear, dr.kernel_quadratic
    try:
        dr.kernel_linear = lambda q, k, v: calls.append("lin") or orig_lin(q, k, v)
        dr.kernel_quadratic = lambda q, k, v: calls.append("quad") or orig_quad(q, k, v)
        for n, e, want in ((8, 8, "lin"), (7, 8, "quad"), (9, 8, "lin")):
            calls.clear()
            t = torch.randn(1, 1, n, e)
            dr.kernel_auto(t, t, t)
            assert calls == [want], (n, e, calls)
    finally:
        dr.kernel_linear, dr.kernel_quadratic = orig_lin, orig_quad


# ------------------------------------------------------------------------------------------------
# Norms and RelPE: gradcheck
# ------------------------------------------------------------------------------------------------

def test_gradcheck_max_norm_family():
    g = _gen(11)
    x = torch.randn(3, 5, 8, generator=g, requires_grad=True)
    w = (1 + 0.1 * torch.randn(8, generator=g)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: dr.apply_norm("max_norm", t), (x,))
    for name in ("scaled_max_norm", "prescaled_max_norm", "uncentered_ln", "standard_ln"):
        assert torch.autograd.gradcheck(lambda t, ww: dr.apply_norm(name, t, ww), (x, w)), name
    assert torch.autograd.gradcheck(lambda t: dr.apply_norm("uncentered_fixed_ln", t), (x,))
    xs = (0.5 * torch.randn(4, 8, generator=g)).clamp(-0.9, 0.9).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: dr.apply_norm("hardtanh", t), (xs,))
    for act in ("gelu", "gelu_tanh", "legacy_gelu", "tanh", "silu"):
        assert torch.autograd.gradcheck(lambda t: dr.apply_activation(act, t), (x,)), act


def test_max_norm_matches_spec_backward_and_ties():
    """Autograd of max_norm == the spec's formula, with the extra term at the FIRST argmax only."""
    eps = 1e-3
    g = _gen(12)
    rows = [torch.tensor([1.0, -3.0, 3.0, 2.0]),   # tie between index 1 and 2 (opposite signs)
            torch.tensor([3.0, 3.0, -1.0, 0.5]),   # tie at 0 and 1
            torch.zeros(4),                        # zero row
            torch.randn(4, generator=g)]
    for x0 in rows:
        x = x0.clone().requires_grad_(True)
        dy = torch.randn(4, generator=g)
        y = dr.max_norm(x, eps)
        (dx,) = torch.autograd.grad(y, x, dy)
        ax = x0.abs()
        jstar = int(torch.nonzero(ax == ax.max())[0])  # first maximum
        s = ax[jstar] + eps
        ref = dy / s
        ref[jstar] -= torch.sign(x0[jstar]) * (dy * x0).sum() / s ** 2
        _close(y.detach(), x0 / s, 1e-15, "forward")
        _close(dx, ref, 1e-13, f"backward {x0.tolist()}")


def test_hardtanh_boundary_gradient():
    x = torch.tensor([-1.5, -1.0, 0.3, 1.0, 2.0], requires_grad=True)
    dr.apply_norm("hardtanh", x).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 0.0, 0.0], x.grad


def test_gradcheck_relpe():
    g = _gen(13)
    for kind in ("rope", "cosine", "cos_minus_sin"):
        for H in (1, 2):
            rp = dr.RelPE(kind, 8 // H, H, 64)
            x = torch.randn(2, 6, 8, generator=g, requires_grad=True)
            for pos in (torch.arange(6), torch.arange(6) % 4, torch.arange(6) + 20):
                assert torch.autograd.gradcheck(lambda t: rp.apply(t, pos), (x,)), (kind, H)
    # RoPE equals the spec's closed-form backward dx = dy*cos - rot(dy*sin)
    rp = dr.RelPE("rope", 8, 1, 64)
    x = torch.randn(2, 6, 8, generator=g, requires_grad=True)
    pos = torch.arange(6)
    dy = torch.randn(2, 6, 8, generator=g)
    (dx,) = torch.autograd.grad(rp.apply(x, pos), x, dy)
    ang = rp._angles(pos, D64)
    t = dy * torch.sin(ang)
    rot = torch.cat([-t[..., 4:], t[..., :4]], dim=-1)
    _close(dx, dy * torch.cos(ang) - rot, 1e-14, "rope backward")
    # RoPE with H=1 is a rotation: norms are preserved
    y = rp.apply(x.detach(), pos)
    _close(y.norm(dim=-1), x.detach().norm(dim=-1), 1e-13, "rope norm")


def test_relpe_tables():
    """Cosine: cos(p * 10000^(-i/e)), pattern repeated per head; RoPE angle [θ, θ]·p with θ_k = 10000^(-2k/e)."""
    rp = dr.RelPE("cosine", 4, 2, 16)
    x = torch.ones(1, 3, 8)
    y = rp.apply(x, torch.arange(3))
    for p in range(3):
        for c in range(8):
            i = c % 4
            assert abs(y[0, p, c].item() - math.cos(p * 10000 ** (-i / 4))) < 1e-15
    rr = dr.RelPE("rope", 4, 2, 16)
    ang = rr._angles(torch.arange(3), D64)
    for p in range(3):
        for c in range(8):
            k = (c % 4) % 2
            assert abs(ang[p, c].item() - p * 10000 ** (-2 * k / 4)) < 1e-14


def test_whole_model_gradcheck():
    """Finite-difference check of the whole loss w.r.t. a few parameters on tiny models."""
    cfgs = [
        _small_cfg(hidden_size=8, local_attention=True, local_scheme="l_sl_g", window_size=4,
                   num_hidden_layers=3, pos_emb_type="relpe", relpe_type="cosine", relpe_scheme="qkv",
                   swiglu_ffn=True, pre_attn_ln_type="scaled_max_norm", post_attn_ln_type="prescaled_max_norm"),
        _small_cfg(hidden_size=8, causal=True, local_attention=True, local_scheme="sw_g", window_size=4,
                   chunk_size=4, pos_emb_type="relpe", relpe_type="rope", relpe_scheme="q,k",
                   final_ln_type="uncentered_ln", pooler_function="max", num_labels=1),
    ]
    for ci, cfg in enumerate(cfgs):
        model = dr.DANetReference(cfg)
        params = random_params(model.param_shapes(), _gen(20 + ci))
        ids = torch.randint(0, 37, (2, 10), generator=_gen(30))
        mask = torch.ones(2, 10, dtype=torch.int64)
        labels = torch.full((2, 10), -1, dtype=torch.int64)
        labels[0, 2] = 3
        labels[1, 7] = 9
        cls = torch.tensor([0.5, -1.0]) if cfg["num_labels"] == 1 else torch.tensor([1, 0])
        names = [n for n in params if "queries" in n or "ffn" in n or n.endswith("norm.weight")][:6]

        def f(*ts):
            pp = dict(params)
            pp.update(dict(zip(names, ts)))
            return model.forward(pp, ids, mask, mlm_labels=labels, class_labels=cls)["loss"]

        assert torch.autograd.gradcheck(f, tuple(params[n] for n in names)), f"config {ci}"


# ------------------------------------------------------------------------------------------------
# Model-level properties
# ------------------------------------------------------------------------------------------------

def test_padding_invariance():
    """Appending pad tokens (mask 0) leaves the real tokens' sequence outputs unchanged."""
    cfgs = [
        _small_cfg(final_ln_type="max_norm"),
        _small_cfg(local_attention=True, local_scheme="l_sl_g", num_hidden_layers=3, window_size=4,
                   pos_emb_type="relpe", relpe_type="cosine", relpe_scheme="qkv"),
        _small_cfg(num_attention_heads=1, pos_emb_type="relpe", relpe_type="rope", relpe_scheme="q,k",
                   swiglu_ffn=True, pre_attn_ln_type="scaled_max_norm", post_attn_ln_type="prescaled_max_norm",
                   embedding_ln_type="standard_ln", final_ln_type="standard_ln"),
        _small_cfg(pos_emb_type="sinusoidal", swiglu_ffn=True, token_type_embeddings=True,
                   embedding_ln_type="uncentered_ln", final_ln_type="uncentered_ln",
                   attention_complexity="quadratic"),
        _small_cfg(num_attention_heads=1, causal=True, local_attention=True, local_scheme="sw_g",
                   window_size=4, chunk_size=4, pos_emb_type="relpe", relpe_type="rope", relpe_scheme="q,k"),
    ]
    for ci, cfg in enumerate(cfgs):
        model = dr.DANetReference(cfg)
        params = {k: v.detach() for k, v in random_params(model.param_shapes(), _gen(40 + ci)).items()}
        for n_real in (5, 7, 8):
            ids = torch.randint(0, 37, (2, n_real), generator=_gen(50))
            tt = torch.randint(0, 2, (2, n_real), generator=_gen(51))
            base = model.encoder(params, ids, torch.ones(2, n_real, dtype=torch.int64), tt)
            for n_pad in (1, 3, 8):
                ids_p = torch.cat([ids, torch.randint(0, 37, (2, n_pad), generator=_gen(52))], 1)
                tt_p = torch.cat([tt, torch.randint(0, 2, (2, n_pad), generator=_gen(53))], 1)
                mask_p = torch.cat([torch.ones(2, n_real, dtype=torch.int64),
                                    torch.zeros(2, n_pad, dtype=torch.int64)], 1)
                padded = model.encoder(params, ids_p, mask_p, tt_p)
                _close(padded[:, :n_real], base, 1e-12, f"config {ci} n_real={n_real} n_pad={n_pad}")


def test_bert_padding_invariance():
    model = BertReference({"model_type": "bert", "vocab_size": 37, "hidden_size": 16, "num_hidden_layers": 2,
                           "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 16})
    params = {k: v.detach() for k, v in random_params(model.param_shapes(), _gen(60)).items()}
    ids = torch.randint(0, 37, (2, 7), generator=_gen(61))
    base = model.encoder(params, ids, torch.ones(2, 7, dtype=torch.int64))
    ids_p = torch.cat([ids, torch.randint(0, 37, (2, 4), generator=_gen(62))], 1)
    mask_p = torch.cat([torch.ones(2, 7, dtype=torch.int64), torch.zeros(2, 4, dtype=torch.int64)], 1)
    _close(model.encoder(params, ids_p, mask_p)[:, :7], base, 1e-12, "bert")


def test_pad_rows_inert_in_danet():
    """Padded rows of A are 0, so every layer leaves a pad row's residual stream at its embedding value."""
    cfg = _small_cfg(final_ln_type=None)
    model = dr.DANetReference(cfg)
    params = {k: v.detach() for k, v in random_params(model.param_shapes(), _gen(70)).items()}
    ids = torch.randint(0, 37, (1, 10), generator=_gen(71))
    mask = torch.ones(1, 10, dtype=torch.int64)
    mask[0, 6:] = 0
    emb = model.embeddings(params, ids, None)
    out = model.encoder(params, ids, mask)
    _close(out[:, 6:], emb[:, 6:], 0.0, "pad rows")


def test_mlm_head_selects_rows_in_row_major_order():
    cfg = _small_cfg()
    model = dr.DANetReference(cfg)
    params = {k: v.detach() for k, v in random_params(model.param_shapes(), _gen(80)).items()}
    seq = torch.randn(2, 5, 16, generator=_gen(81))
    labels = torch.full((2, 5), -1, dtype=torch.int64)
    labels[1, 0], labels[0, 3], labels[0, 1] = 4, 5, 6
    logits, targets = model.mlm_head(params, seq, labels)
    assert targets.tolist() == [6, 5, 4]
    assert logits.shape == (3, 40)
    one, _ = model.mlm_head(params, seq[1:2, 0:1], torch.tensor([[4]]))
    _close(logits[2:3], one, 1e-14, "row order")


def test_config_validation():
    def bad(cfg):
        try:
            dr.DANetReference(cfg)
        except ValueError:
            return True
        return False
    assert bad(_small_cfg(no_such_key=1))
    assert bad(_small_cfg(local_attention=True, local_scheme="l_sw", window_size=4))  # sw needs causal
    assert bad(_small_cfg(local_attention=True, window_size=3))
    assert bad(_small_cfg(local_attention=True, window_size=32))  # > max_position_embeddings
    assert bad(_small_cfg(num_attention_heads=3))
    assert bad(_small_cfg(pre_attn_ln_type="layer_norm"))
    assert bad(_small_cfg(relpe_scheme="q,x", pos_emb_type="relpe", relpe_type="rope"))
    m = dr.DANetReference(_small_cfg(local_attention=True, local_scheme="l_sl_g", window_size=4,
                                      num_hidden_layers=5))
    assert m.layer_types == ("l", "sl", "g", "l", "sl")
    assert dr.padded_vocab_size(30522) == 30528 and dr.padded_vocab_size(50257) == 50264
    assert dr.padded_vocab_size(37) == 40
    assert dr.swiglu_width(1024, 4) == 2816


def test_parameter_counts():
    """DANet-BERT-Large (d=1024, L=32, r=4, expanded FFN, learned positions 512) ≈ 335M (docs/model.md §1.15).

    Counted from the shape table only: nothing is allocated.
    """
    cfg = {"model_type": "danet", "vocab_size": 30522, "hidden_size": 1024, "num_hidden_layers": 32,
           "num_attention_heads": 1, "intermediate_size": 4, "swiglu_ffn": False, "pos_emb_type": "learned",
           "max_position_embeddings": 512, "pre_attn_ln_type": "max_norm", "post_attn_ln_type": "max_norm",
           "embedding_ln_type": "max_norm", "final_ln_type": "max_norm", "lm_head_act": "gelu",
           "lm_head_ln_type": "standard_ln", "pooler_function": "first", "pooler_act": "tanh",
           "classifier_bias": True}
    model = dr.DANetReference(cfg)
    shapes = model.param_shapes()
    per_layer = sum(math.prod(s) for n, s in shapes.items() if n.startswith("encoder.layer.0."))
    assert per_layer == 9_437_184, per_layer
    assert shapes["embeddings.word_embeddings.weight"] == (30528, 1024)
    encoder_and_mlm = sum(math.prod(s) for n, s in shapes.items()
                          if not n.startswith(("pooler.", "classifier.")))
    # 302.0M layers + 31.26M words + 0.52M positions + 1.05M LM transform + 1024 LM gain + 30,528 bias
    assert encoder_and_mlm == 32 * 9_437_184 + 30528 * 1024 + 512 * 1024 + 1024 * 1024 + 1024 + 30528
    total = model.num_parameters()
    assert 334e6 < encoder_and_mlm < 336e6 and 334e6 < total < 337e6, (encoder_and_mlm, total)
    swi = dr.DANetReference(dict(cfg, swiglu_ffn=True)).param_shapes()
    per_layer_swi = sum(math.prod(s) for n, s in swi.items() if n.startswith("encoder.layer.0."))
    assert per_layer_swi == 9_699_328, per_layer_swi


# ------------------------------------------------------------------------------------------------
# AAN matching head (pair_matching, docs/model.md §1.11)
# ------------------------------------------------------------------------------------------------

def _gelu_tanh_formula(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def test_matching_head_gradcheck_and_formula():
    """matching_head == the hand-written formula (forward and the spec's backward); float64 gradcheck."""
    d, nl, B = 6, 3, 4
    model = dr.DANetReference(_small_cfg(hidden_size=d, num_attention_heads=1, num_labels=nl, pair_matching=True))
    g = _gen(95)
    p1 = torch.randn(B, d, generator=g, requires_grad=True)
    p2 = torch.randn(B, d, generator=g, requires_grad=True)
    wd = (0.5 * torch.randn(d, 4 * d, generator=g)).requires_grad_(True)
    wc = (0.5 * torch.randn(nl, d, generator=g)).requires_grad_(True)

    def head(a, b, w1, w2):
        return model.matching_head({"matching.dense.weight": w1, "matching.classifier.weight": w2}, a, b)

    assert torch.autograd.gradcheck(head, (p1, p2, wd, wc))
    # forward: z = W_d [p1; p2; p1*p2; p1-p2] written block by block, explicit tanh-GELU
    a, b, w1, w2 = p1.detach(), p2.detach(), wd.detach(), wc.detach()
    pre = a @ w1[:, :d].t() + b @ w1[:, d:2 * d].t() + (a * b) @ w1[:, 2 * d:3 * d].t() + (a - b) @ w1[:, 3 * d:].t()
    ref = _gelu_tanh_formula(pre) @ w2.t()
    logits = head(p1, p2, wd, wc)
    _close(logits.detach(), ref, 1e-14, "matching forward")
    # backward of the concat: dp1 = d1 + dprod*p2 + ddiff, dp2 = d2 + dprod*p1 - ddiff (dh = dz' W_d)
    dy = torch.randn(B, nl, generator=g)
    gp1, gp2, gwd, gwc = torch.autograd.grad(logits, (p1, p2, wd, wc), dy)
    x = math.sqrt(2.0 / math.pi) * (pre + 0.044715 * pre ** 3)
    t = torch.tanh(x)
    dgelu = 0.5 * (1 + t) + 0.5 * pre * (1 - t ** 2) * math.sqrt(2.0 / math.pi) * (1 + 3 * 0.044715 * pre ** 2)
    dz = (dy @ w2) * dgelu
    dh = dz @ w1
    d1, d2, dprod, ddiff = dh[:, :d], dh[:, d:2 * d], dh[:, 2 * d:3 * d], dh[:, 3 * d:]
    _close(gp1, d1 + dprod * b + ddiff, 1e-13, "dp1")
    _close(gp2, d2 + dprod * a - ddiff, 1e-13, "dp2")
    h = torch.cat([a, b, a * b, a - b], dim=-1)
    _close(gwd, dz.t() @ h, 1e-13, "dW_dense")
    _close(gwc, dy.t() @ _gelu_tanh_formula(pre), 1e-13, "dW_classifier")


def test_pair_matching_model():
    """Shapes/params of a pair_matching model, per-document encoder + pooler with own masks, CE loss, gradcheck."""
    for pooler_function in ("first", "masked_mean"):
        cfg = _small_cfg(hidden_size=8, num_labels=2, pair_matching=True, pooler_function=pooler_function,
                         pooler_act="gelu", classifier_bias=True, final_ln_type="max_norm")
        model = dr.DANetReference(cfg)
        shapes = model.param_shapes()
        assert shapes["matching.dense.weight"] == (8, 32) and shapes["matching.classifier.weight"] == (2, 8)
        assert not any(n.startswith("classifier.") for n in shapes), list(shapes)
        params = random_params(shapes, _gen(96))
        B, N = 2, 9
        ids = torch.randint(0, 37, (B, N), generator=_gen(97))
        ids2 = torch.randint(0, 37, (B, N), generator=_gen(98))
        mask = torch.ones(B, N, dtype=torch.int64)
        mask[1, 6:] = 0
        mask2 = torch.ones(B, N, dtype=torch.int64)
        mask2[0, 4:] = 0
        cls = torch.tensor([1, 0])
        out = model.forward(params, ids, mask, input_ids2=ids2, attention_mask2=mask2, class_labels=cls)
        assert "mlm_logits" not in out
        assert tuple(out["sequence_output"].shape) == (2 * B, N, 8)
        assert tuple(out["pooled"].shape) == (2 * B, 8) and tuple(out["class_logits"].shape) == (B, 2)
        # the documents' rows are independent: one batch of 2B rows gives the same encoder / pooler outputs
        seq_cat = model.encoder(params, torch.cat([ids, ids2]), torch.cat([mask, mask2]))
        _close(out["sequence_output"].detach(), seq_cat.detach(), 1e-13, "seq concat")
        pooled_cat = model.pooler(params, seq_cat, torch.cat([mask, mask2]))
        _close(out["pooled"].detach(), pooled_cat.detach(), 1e-13, "pooled concat")
        # each document is pooled with its OWN mask (not doc 1's mask for doc 2)
        p2_own = model.pooler(params, model.encoder(params, ids2, mask2), mask2)
        _close(out["pooled"][B:].detach(), p2_own.detach(), 1e-13, "doc 2 pooled")
        logits = model.matching_head(params, out["pooled"][:B], out["pooled"][B:])
        _close(out["class_logits"].detach(), logits.detach(), 0.0, "logits")
        _close(out["loss"].detach(), F.cross_entropy(logits, cls).detach(), 1e-15, "loss")
        # swapping the documents changes the logits (the head is not symmetric)
        sw = model.forward(params, ids2, mask2, input_ids2=ids, attention_mask2=mask, class_labels=cls)
        assert (sw["class_logits"] - out["class_logits"]).abs().max().item() > 1e-3
        names = ["matching.dense.weight", "matching.classifier.weight", "pooler.dense.weight",
                 "encoder.layer.1.attention.queries", "embeddings.position_embeddings.weight"]

        def f(*ts):
            pp = dict(params)
            pp.update(dict(zip(names, ts)))
            return model.forward(pp, ids, mask, input_ids2=ids2, attention_mask2=mask2, class_labels=cls)["loss"]

        assert torch.autograd.gradcheck(f, tuple(params[n] for n in names)), pooler_function

    def bad(fn):
        try:
            fn()
        except ValueError:
            return True
        return False
    pm = dr.DANetReference(_small_cfg(pair_matching=True, num_labels=2))
    pp = {k: v.detach() for k, v in random_params(pm.param_shapes(), _gen(99)).items()}
    plain = dr.DANetReference(_small_cfg())
    ppl = {k: v.detach() for k, v in random_params(plain.param_shapes(), _gen(99)).items()}
    ids = torch.randint(0, 37, (2, 5), generator=_gen(100))
    assert bad(lambda: pm.forward(pp, ids))                                        # second document missing
    assert bad(lambda: pm.forward(pp, ids, input_ids2=ids[:, :4]))                 # shape mismatch
    assert bad(lambda: pm.forward(pp, ids, input_ids2=ids, mlm_labels=torch.full((2, 5), -1)))  # no MLM
    assert bad(lambda: plain.forward(ppl, ids, input_ids2=ids))                   # needs pair_matching
    assert bad(lambda: dr.DANetReference(_small_cfg(pair_matching=True, num_labels=1)))
    assert bad(lambda: dr.DANetReference(_small_cfg(pair_matching="yes")))
    assert "classifier.weight" in plain.param_shapes() and "matching.dense.weight" not in plain.param_shapes()


# ------------------------------------------------------------------------------------------------
# safetensors and the goldens
# ------------------------------------------------------------------------------------------------

def test_safetensors_round_trip():
    g = _gen(90)
    tensors = {
        "a.f64": torch.randn(3, 4, generator=g),
        "b.f32": torch.randn(5, generator=g).float(),
        "c.i64": torch.randint(-5, 5, (2, 3, 2), generator=g),
        "d.i32": torch.randint(-5, 5, (7,), generator=g).int(),
        "e.scalar": torch.tensor(3.25),
        "f.empty": torch.zeros(0, 4),
        "g.noncontig": torch.randn(4, 3, generator=g).t(),
    }
    meta = {"config": json.dumps({"x": 1}), "case": "rt"}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.safetensors")
        save_file(tensors, path, metadata=meta)
        raw = open(path, "rb").read()
        (hlen,) = struct.unpack("<Q", raw[:8])
        assert hlen % 8 == 0
        header = json.loads(raw[8:8 + hlen])
        assert header["__metadata__"] == meta
        assert header["e.scalar"]["shape"] == [] and header["b.f32"]["dtype"] == "F32"
        # tensors are back to back in header order
        off = 0
        for name in tensors:
            b, e = header[name]["data_offsets"]
            assert b == off
            off = e
        assert off == len(raw) - 8 - hlen
        back, meta2 = load_file(path)
        assert meta2 == meta and list(back) == list(tensors)
        for k, v in tensors.items():
            assert back[k].dtype == v.dtype and back[k].shape == v.shape, k
            assert torch.equal(back[k], v), k


def test_golden_cases_deterministic_and_complete():
    """run_case is deterministic and writes every parameter, gradient and output with the right shapes."""
    for name, (config, opts) in CASES.items():
        t1 = run_case(name, config, opts)
        t2 = run_case(name, config, opts)
        assert list(t1) == list(t2)
        for k in t1:
            assert torch.equal(t1[k], t2[k]), (name, k)
        model = build_reference_model(config)
        shapes = model.param_shapes()
        B, N = t1["input.input_ids"].shape
        d = model.cfg["hidden_size"]
        V = dr.padded_vocab_size(model.cfg["vocab_size"])
        pair = bool(opts.get("pair"))
        for p, s in shapes.items():
            assert tuple(t1["param." + p].shape) == s and tuple(t1["grad." + p].shape) == s, (name, p)
        docs = 2 if pair else 1  # pair_matching: both documents' rows, doc 1 first
        assert tuple(t1["out.sequence_output"].shape) == (docs * B, N, d)
        assert tuple(t1["out.pooled"].shape) == (docs * B, d)
        assert tuple(t1["out.class_logits"].shape) == (B, model.cfg["num_labels"])
        assert t1["out.loss"].dim() == 0
        if pair:
            assert model.cfg["pair_matching"]
            assert tuple(t1["input.input_ids2"].shape) == (B, N) and tuple(t1["input.attention_mask2"].shape) == (B, N)
            for p in shapes:  # no MLM: the LM head is unused
                if p.startswith("lm_head."):
                    assert not t1["grad." + p].any(), (name, p)
                else:
                    assert t1["grad." + p].abs().max().item() > 0, (name, p)
            expected = {"input." + k for k in ("input_ids", "attention_mask", "input_ids2", "attention_mask2",
                                               "class_labels")}
        else:
            n_masked = int((t1["input.mlm_labels"] != -1).sum())
            assert tuple(t1["out.mlm_logits"].shape) == (n_masked, V)
            labels = t1["input.mlm_labels"]
            assert int(labels.max()) < model.cfg["vocab_size"]
            assert bool(((labels == -1) | (t1["input.attention_mask"] == 1)).all()), "label on a pad"
            expected = {"input." + k for k in ("input_ids", "attention_mask", "mlm_labels", "class_labels")}
        if opts.get("token_types"):
            expected.add("input.token_type_ids")
        expected |= {"param." + p for p in shapes} | {"grad." + p for p in shapes}
        outs = ("sequence_output", "pooled", "class_logits", "loss") if pair else \
            ("sequence_output", "mlm_logits", "pooled", "class_logits", "loss")
        expected |= {"out." + k for k in outs}
        assert set(t1) == expected, (name, set(t1) ^ expected)
        # attention matters: zeroing W_Q (DANet) changes the outputs noticeably
        if model.cfg["model_type"] == "danet":
            params = {k[6:]: v.clone() for k, v in t1.items() if k.startswith("param.")}
            for p in params:
                if p.endswith("attention.queries"):
                    params[p].zero_()
            inputs = {k[6:]: v for k, v in t1.items() if k.startswith("input.")}
            seq0 = model.forward(params, **inputs)["sequence_output"]
            diff = (seq0 - t1["out.sequence_output"]).abs().max().item()
            assert diff > 1e-2, (name, diff)


def main():
    tests = [(n, f) for n, f in globals().items() if n.startswith("test_") and callable(f)]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
            passed += 1
            print(f"PASS {name}")
        except Exception:  # noqa: BLE001 - report every failure, keep going
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
