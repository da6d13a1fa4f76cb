"""Independent PyTorch reference of sparse attention: the pattern masks and masked attention.

Written from the definitions in the comment block of src/nn/attention_patterns.h (the spec), not from the C++
code: every pattern is a dense [H, N, N] boolean mask built cell by cell from its predicate, and attention is
ordinary dense attention with that mask, in float64 with autograd.

A spec is a dict with the keys of src/nn/attention_patterns.h's PatternSpec ("kind" plus the fields the kind
uses); spec_string() writes the form nn::parse_pattern reads. Defaults are the PatternSpec defaults.

Definitions (i = query, j = key; causal keeps only j <= i of each, except where noted):
  dense           every j
  sliding_window  |i-j| <= window
  dilated         |i-j| <= window*dilation and (i-j) % dilation == 0
  dilated_2d      i//block == j//block and (i % block) % dilation == (j % block) % dilation
  global          i in G or j in G, or (window >= 0) |i-j| <= window
  longformer      as global, window required
  bigbird         block level: |I-J| <= window_blocks//2 (window_blocks > 0), I < global_blocks,
                  J < global_blocks, or J one of the random blocks (drawn by Philox in C++: this reference
                  builds only the deterministic part, see bigbird_mask)
  block_local     i//block == j//block
  strided         A1 |i-j| < l, A2 (i-j) % l == 0; causal A1 = {max(0, i-l) .. i}, causal A2 = j <= i of A2
  fixed           A1 j//l == i//l; A2 j % l in [l-(v+1)c, l-vc), v = (index of the head among the heads
                  using A2) % num_patterns (h for merged / interleaved, h//2 for multihead)
  heads_mode      merged A1|A2 every head; multihead head h: A1 if h even else A2; interleaved layer r:
                  A1 if r even else A2 in every head

Attention (q, k, v [B, N, H*e], head h = columns h*e .. h*e+e; key_valid [B, N] of 0/1 or None):
  softmax  o_i = sum_j softmax_j(s_ij) v_j over visible valid keys, s = q.k / sqrt(e); rows without a visible
           valid key give o = 0 and lse = -inf
  linear   o_i = sum_j (q_i.k_j) v_j over visible valid keys (no scale)
"""

import math
from collections import OrderedDict

import torch

from bert_reference import BertReference, _linear

DEFAULTS = {
    "causal": False, "block": 64, "window": -1, "dilation": 0, "stride": 0, "summary": 0, "num_patterns": 1,
    "global_tokens": [], "window_blocks": 3, "global_blocks": 1, "random_blocks": 1, "seed": 0,
    "heads_mode": "merged",
}

# The keys each kind takes (attention_patterns.cpp rejects the others), for spec_string.
KIND_KEYS = {
    "dense": ("causal", "block"),
    "sliding_window": ("window", "causal", "block"),
    "dilated": ("window", "dilation", "causal", "block"),
    "dilated_2d": ("block", "dilation", "causal"),
    "global": ("global_tokens", "window", "causal", "block"),
    "longformer": ("window", "global_tokens", "causal", "block"),
    "bigbird": ("block", "window_blocks", "global_blocks", "random_blocks", "seed", "causal"),
    "block_local": ("block", "causal"),
    "strided": ("stride", "heads_mode", "causal", "block"),
    "fixed": ("stride", "summary", "num_patterns", "heads_mode", "causal", "block"),
}


def resolve(spec):
    s = dict(DEFAULTS)
    kind = spec["kind"]
    if kind not in KIND_KEYS:
        raise ValueError(f"unknown pattern kind {kind!r}")
    for k, v in spec.items():
        if k != "kind" and k not in KIND_KEYS[kind]:
            raise ValueError(f"key {k!r} does not apply to kind {kind}")
        s[k] = v
    s["kind"] = kind
    return s


def spec_string(spec):
    """'kind:key=value,...' with only the keys given in `spec` (the C++ side fills in the same defaults)."""
    items = []
    for k, v in spec.items():
        if k == "kind":
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (list, tuple)):
            v = "+".join(str(t) for t in v)
        items.append(f"{k}={v}")
    return spec["kind"] + (":" + ",".join(items) if items else "")


def _grid(n):
    i = torch.arange(n).view(n, 1).expand(n, n)
    j = torch.arange(n).view(1, n).expand(n, n)
    return i, j


def _causal(mask, causal):
    if not causal:
        return mask
    i, j = _grid(mask.shape[-1])
    return mask & (j <= i)


def _strided_part(s, n, part):
    i, j = _grid(n)
    l = s["stride"]
    d = i - j
    if s["causal"]:
        a1 = (j >= torch.clamp(i - l, min=0)) & (j <= i)  # the paper's causal A1: l + 1 keys
        a2 = (d >= 0) & (torch.remainder(d, l) == 0)
    else:
        a1 = d.abs() < l
        a2 = torch.remainder(d, l) == 0
    return {"A1": a1, "A2": a2, "both": a1 | a2}[part]


def _fixed_part(s, n, part, v):
    i, j = _grid(n)
    l, c = s["stride"], s["summary"]
    a1 = torch.div(j, l, rounding_mode="floor") == torch.div(i, l, rounding_mode="floor")
    off = torch.remainder(j, l)
    a2 = (off >= l - (v + 1) * c) & (off < l - v * c)
    return _causal({"A1": a1, "A2": a2, "both": a1 | a2}[part], s["causal"])


def _head_variant(s, h, layer):
    """(component, v) of head h in layer `layer` for strided / fixed."""
    mode, npat = s["heads_mode"], s["num_patterns"]
    if mode == "merged":
        return "both", h % npat
    if mode == "multihead":
        return ("A1", 0) if h % 2 == 0 else ("A2", (h // 2) % npat)
    if mode == "interleaved":
        return ("A1", 0) if layer % 2 == 0 else ("A2", h % npat)
    raise ValueError(f"heads_mode {mode!r}")


def bigbird_mask(s, n):
    """The deterministic part of BigBird (window and global blocks; random blocks left out), [N, N]."""
    b = s["block"]
    i, j = _grid(n)
    bi = torch.div(i, b, rounding_mode="floor")
    bj = torch.div(j, b, rounding_mode="floor")
    m = (bi < s["global_blocks"]) | (bj < s["global_blocks"])
    if s["window_blocks"] > 0:
        m = m | ((bi - bj).abs() <= s["window_blocks"] // 2)
    return _causal(m, s["causal"])


def pattern_masks(spec, n, heads, layer=0):
    """Boolean [heads, N, N]: mask[h, i, j] = query i of head h sees key j."""
    s = resolve(spec)
    kind = s["kind"]
    i, j = _grid(n)
    d = i - j
    if kind in ("strided", "fixed"):
        per_head = []
        for h in range(heads):
            part, v = _head_variant(s, h, layer)
            per_head.append(_strided_part(s, n, part) if kind == "strided" else _fixed_part(s, n, part, v))
        return torch.stack(per_head)
    if kind == "dense":
        m = torch.ones(n, n, dtype=torch.bool)
    elif kind == "sliding_window":
        m = d.abs() <= s["window"]
    elif kind == "dilated":
        w, dil = s["window"], s["dilation"]
        m = (d.abs() <= w * dil) & (torch.remainder(d, dil) == 0)
    elif kind == "dilated_2d":
        b, dil = s["block"], s["dilation"]
        same = torch.div(i, b, rounding_mode="floor") == torch.div(j, b, rounding_mode="floor")
        m = same & (torch.remainder(torch.remainder(i, b), dil) == torch.remainder(torch.remainder(j, b), dil))
    elif kind in ("global", "longformer"):
        if kind == "longformer" and s["window"] < 0:
            raise ValueError("longformer needs a window")
        g = torch.zeros(n, dtype=torch.bool)
        for t in s["global_tokens"]:
            if not 0 <= t < n:
                raise ValueError(f"global token {t} outside [0, {n})")
            g[t] = True
        m = g.view(n, 1) | g.view(1, n)
        if s["window"] >= 0:
            m = m | (d.abs() <= s["window"])
    elif kind == "bigbird":
        if s["random_blocks"] != 0:
            raise ValueError("bigbird: the random blocks are drawn by Philox in C++; use random_blocks=0 here "
                             "or bigbird_mask for the deterministic part")
        m = bigbird_mask(s, n)
    elif kind == "block_local":
        b = s["block"]
        m = torch.div(i, b, rounding_mode="floor") == torch.div(j, b, rounding_mode="floor")
    else:
        raise ValueError(kind)
    return _causal(m, s["causal"]).unsqueeze(0).expand(heads, n, n).clone()


# ------------------------------------------------------------------------------------------------
# Masked attention
# ------------------------------------------------------------------------------------------------

def _split(x, heads):
    B, N, d = x.shape
    return x.reshape(B, N, heads, d // heads).transpose(1, 2)  # [B, H, N, e]


def _merge(x):
    B, H, N, e = x.shape
    return x.transpose(1, 2).reshape(B, N, H * e)


def _visible(mask, key_valid, B):
    """[B, H, N, Nk] bool from the [H, N, Nk] pattern and the [B, Nk] key mask."""
    vis = mask.unsqueeze(0).expand(B, *mask.shape)
    if key_valid is not None:
        vis = vis & (key_valid != 0)[:, None, None, :]
    return vis


def masked_softmax_attention(q, k, v, mask, heads, key_valid=None, scale=None):
    """o [B, N, H*e] and lse [B, H, N] (no gradient; -inf on rows without a visible valid key, whose o is 0)."""
    qh, kh, vh = _split(q, heads), _split(k, heads), _split(v, heads)
    e = qh.shape[-1]
    if scale is None:
        scale = 1.0 / math.sqrt(e)
    vis = _visible(mask, key_valid, q.shape[0])
    s = scale * (qh @ kh.transpose(-1, -2))
    s = torch.where(vis, s, torch.full_like(s, float("-inf")))
    empty = ~vis.any(-1)  # [B, H, N]
    mx = torch.where(empty, torch.zeros_like(empty, dtype=s.dtype), s.detach().amax(-1))
    w = torch.exp(s - mx.unsqueeze(-1))  # exactly 0 off the mask (exp(-inf)); empty rows are all 0
    total = w.sum(-1)
    p = w / torch.where(empty, torch.ones_like(total), total).unsqueeze(-1)
    o = _merge(p @ vh)
    with torch.no_grad():
        lse = torch.where(empty, torch.full_like(mx, float("-inf")),
                          mx + torch.log(torch.where(empty, torch.ones_like(total), total)))
    return o, lse


def masked_linear_attention(q, k, v, mask, heads, key_valid=None):
    """o [B, N, H*e]: o_i = sum over visible valid j of (q_i . k_j) v_j."""
    qh, kh, vh = _split(q, heads), _split(k, heads), _split(v, heads)
    vis = _visible(mask, key_valid, q.shape[0])
    s = (qh @ kh.transpose(-1, -2)) * vis.to(q.dtype)
    return _merge(s @ vh)


def masked_attention_naive(score, q, k, v, mask, heads, key_valid=None):
    """The same by loops over rows and visible keys, for the self-check."""
    B, N, d = q.shape
    e = d // heads
    o = torch.zeros(B, N, d, dtype=q.dtype)
    lse = torch.full((B, heads, N), float("-inf"), dtype=q.dtype)
    for b in range(B):
        for h in range(heads):
            cols = slice(h * e, h * e + e)
            for i in range(N):
                keys = [j for j in range(k.shape[1])
                        if mask[h, i, j] and (key_valid is None or key_valid[b, j] != 0)]
                if not keys:
                    continue
                dots = torch.stack([q[b, i, cols] @ k[b, j, cols] for j in keys])
                vals = torch.stack([v[b, j, cols] for j in keys])
                if score == "linear":
                    o[b, i, cols] = dots @ vals
                else:
                    sc = dots / math.sqrt(e)
                    lse[b, h, i] = torch.logsumexp(sc, 0)
                    o[b, i, cols] = torch.softmax(sc, 0) @ vals
    return o, lse


def attention_with_grads(score, q, k, v, mask, heads, key_valid, dout):
    """Forward and d<dout, o>/d(q, k, v) by autograd. Returns o, lse (softmax only, else None), dq, dk, dv."""
    q, k, v = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    if score == "softmax":
        o, lse = masked_softmax_attention(q, k, v, mask, heads, key_valid)
    elif score == "linear":
        o, lse = masked_linear_attention(q, k, v, mask, heads, key_valid), None
    else:
        raise ValueError(score)
    dq, dk, dv = torch.autograd.grad(o, (q, k, v), dout)
    return o.detach(), lse, dq, dk, dv


# ------------------------------------------------------------------------------------------------
# BERT with a sparse pattern (attention: {type: sparse, pattern: ...})
# ------------------------------------------------------------------------------------------------

def pattern_from_attention_config(attention):
    """The pattern spec dict of a model config's `attention` mapping (pattern -> kind, lists kept)."""
    if attention.get("type") != "sparse":
        raise ValueError(f"attention: expected type sparse, got {attention!r}")
    spec = {"kind": attention["pattern"]}
    for k, v in attention.items():
        if k not in ("type", "pattern"):
            spec[k] = v
    return spec


class SparseBertReference(BertReference):
    """BertReference whose self-attention is masked by the pattern of config['attention'] (per layer: the
    interleaved heads mode depends on the layer index). Rows without a visible valid key give 0."""

    def __init__(self, config):
        config = dict(config)
        self.pattern = pattern_from_attention_config(config.pop("attention"))
        super().__init__(config)
        self._layer = None

    def encoder(self, params, input_ids, attention_mask):
        # BertReference.encoder calls _attention once per layer, in order.
        self._layer = 0
        return super().encoder(params, input_ids, attention_mask)

    def _attention(self, h, params, p, attention_mask):
        layer = self._layer
        self._layer += 1
        N = h.shape[1]
        mask = pattern_masks(self.pattern, N, self.H, layer)
        q = _linear(h, params, p + "attention.query")
        k = _linear(h, params, p + "attention.key")
        v = _linear(h, params, p + "attention.value")
        ctx, _ = masked_softmax_attention(q, k, v, mask, self.H, key_valid=attention_mask)
        return _linear(ctx, params, p + "attention.output")


# ------------------------------------------------------------------------------------------------
# Self-checks (run by make_goldens.py before it writes the sparse goldens)
# ------------------------------------------------------------------------------------------------

def self_check():
    D = torch.float64
    g = torch.Generator().manual_seed(5)
    n = 11
    # Identities between the definitions.

    def eq(a, b, what):
        assert torch.equal(a, b), what

    eq(pattern_masks({"kind": "dilated", "window": 3, "dilation": 1}, n, 1),
       pattern_masks({"kind": "sliding_window", "window": 3}, n, 1), "dilated with dilation 1 = sliding_window")
    eq(pattern_masks({"kind": "dilated_2d", "block": 4, "dilation": 1}, n, 1),
       pattern_masks({"kind": "block_local", "block": 4}, n, 1), "dilated_2d with dilation 1 = block_local")
    eq(pattern_masks({"kind": "longformer", "window": 2, "global_tokens": [0, 7]}, n, 1),
       pattern_masks({"kind": "global", "window": 2, "global_tokens": [0, 7]}, n, 1), "longformer = global")
    # bigbird with one block per token is the token-level window plus global tokens
    eq(pattern_masks({"kind": "bigbird", "block": 1, "window_blocks": 5, "global_blocks": 2, "random_blocks": 0},
                     n, 1),
       pattern_masks({"kind": "global", "window": 2, "global_tokens": [0, 1]}, n, 1), "bigbird block 1 = global")
    for kind in ("strided", "fixed"):
        extra = {"summary": 1, "num_patterns": 2} if kind == "fixed" else {}
        for causal in (False, True):
            base = dict(kind=kind, stride=4, causal=causal, **extra)
            merged = pattern_masks(dict(base, heads_mode="merged"), n, 4)
            multi = pattern_masks(dict(base, heads_mode="multihead"), n, 4)
            inter0 = pattern_masks(dict(base, heads_mode="interleaved"), n, 4, layer=0)
            inter1 = pattern_masks(dict(base, heads_mode="interleaved"), n, 4, layer=1)
            eq(multi[0], inter0[0], f"{kind}: multihead head 0 = A1")
            eq(inter0[0], inter0[3], f"{kind}: interleaved even layer: A1 in every head")
            if kind == "strided":
                eq(merged[0], multi[0] | multi[1], "strided: merged = A1 | A2")
            else:
                # multihead A2 heads 1, 3 take variants 0, 1; merged head h takes variant h % 2
                eq(merged[0], multi[0] | multi[1], "fixed: merged head 0 = A1 | A2(v=0)")
                eq(merged[1], multi[0] | multi[3], "fixed: merged head 1 = A1 | A2(v=1)")
                eq(inter1[0], multi[1], "fixed: interleaved odd layer head 0 = A2(v=0)")
                eq(inter1[1], multi[3], "fixed: interleaved odd layer head 1 = A2(v=1)")
    causal_strided = pattern_masks({"kind": "strided", "stride": 3, "causal": True, "heads_mode": "multihead"}, 8, 2)
    assert int(causal_strided[0, 7].sum()) == 4 and int(causal_strided[0, 1].sum()) == 2, "causal A1: l + 1 keys"
    # Masked attention against the loop version, with padding and empty rows; gradcheck of both scores.
    B, H, e = 2, 2, 3
    mask = pattern_masks({"kind": "global", "global_tokens": [3, 8], "causal": True}, n, H)
    mask[1] = pattern_masks({"kind": "sliding_window", "window": 1}, n, 1)[0]
    kv = torch.ones(B, n, dtype=D)
    kv[1, n - 4:] = 0
    q, k, v = (torch.randn(B, n, H * e, generator=g, dtype=D) for _ in range(3))
    for score in ("softmax", "linear"):
        if score == "softmax":
            o, lse = masked_softmax_attention(q, k, v, mask, H, kv)
        else:
            o, lse = masked_linear_attention(q, k, v, mask, H, kv), None
        o2, lse2 = masked_attention_naive(score, q, k, v, mask, H, kv)
        assert torch.allclose(o, o2, rtol=0, atol=1e-12), f"{score}: vectorised vs loops"
        if lse is not None:
            assert torch.equal(torch.isinf(lse), torch.isinf(lse2)) and bool(torch.isinf(lse).any()), "empty rows"
            fin = ~torch.isinf(lse)
            assert torch.allclose(lse[fin], lse2[fin], rtol=0, atol=1e-12), "lse"
        qq, kk, vv = (t.clone().requires_grad_(True) for t in (q, k, v))
        if score == "softmax":
            f = lambda a, b, c: masked_softmax_attention(a, b, c, mask, H, kv)[0]  # noqa: E731
        else:
            f = lambda a, b, c: masked_linear_attention(a, b, c, mask, H, kv)  # noqa: E731
        assert torch.autograd.gradcheck(f, (qq, kk, vv)), f"{score}: gradcheck"
    return True
