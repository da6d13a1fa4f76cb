"""Independent PyTorch reference implementation of the DANet (DenseAttention network) model.

Written from the densetrain spec (docs/model.md §1) and docs/model-config.md, as a
slow, literal, float64-friendly oracle for the C++ implementation's golden tests. Autograd provides the
backward pass; the forward is written so that autograd's gradient equals the spec's hand-written backward
(notably the max-norm gradient going to a single, first argmax index).

The model is functional: `DANetReference(config)` knows the architecture, `param_shapes()` lists every
parameter with its fixed name and shape, and `forward(params, ...)` takes a dict name -> tensor.
Dropout is not implemented: the reference is deterministic (all golden cases set every dropout to 0).

Decisions that differ from the original reference repo (see docs/model.md §7) and are deliberate here:
  * the cosine / cos_minus_sin RelPE cache is sliced to the sequence length, so any N <= max_position_embeddings works;
  * in chunked (local) layers the `qkv` RelPE is applied AFTER the zero padding of the remainder, so N need not be
    a multiple of the window.
"""

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F

# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------

NORM_NAMES = ("max_norm", "scaled_max_norm", "prescaled_max_norm", "uncentered_ln", "uncentered_fixed_ln",
              "standard_ln", "hardtanh", "no_ln")
ACTIVATION_NAMES = ("gelu", "gelu_tanh", "legacy_gelu", "relu", "tanh", "silu", "leaky_relu", "leaky_relu_0.1",
                    "hardtanh", "identity")
# The registry accepts norm and activation names in any norm slot.
REGISTRY_NAMES = tuple(sorted(set(NORM_NAMES) | set(ACTIVATION_NAMES)))
# Norms that own a gain vector g (docs/model-config.md: "Gains exist for ...").
GAIN_NORMS = ("scaled_max_norm", "prescaled_max_norm", "uncentered_ln", "standard_ln")

COMMON_DEFAULTS = {
    "vocab_size": 30528,
    "hidden_size": 1024,
    "num_hidden_layers": 32,
    "max_position_embeddings": 512,
    "initializer_range": 0.02,
    "embedding_dropout": 0.0,
    "num_labels": 2,
}

DANET_DEFAULTS = dict(COMMON_DEFAULTS, **{
    "model_type": "danet",
    "num_attention_heads": 1,
    "intermediate_size": 4,          # expansion factor r for DANet
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "classifier_bias": False,
    "swiglu_ffn": False,
    "attention_complexity": "auto",
    "pre_attn_ln_type": "max_norm",
    "post_attn_ln_type": "max_norm",
    "embedding_ln_type": "hardtanh",
    "final_ln_type": None,
    "token_type_embeddings": False,
    "type_vocab_size": 2,
    "pos_emb_type": "learned",
    "relpe_type": None,
    "relpe_scheme": "qkv",
    "pooler_function": "mean",
    "pooler_no_dense": False,
    "pooler_act": "gelu",
    "pooler_ln_type": None,
    "lm_head_act": "gelu",
    "lm_head_ln_type": "uncentered_ln",
    "causal": False,
    "chunk_size": 1024,
    "local_attention": False,
    "window_size": 1024,
    "local_relpe": True,
    "local_scheme": "l_sl_g",
    "pair_matching": False,          # LRA Retrieval (AAN): two documents, matching head instead of the classifier
})

POOLER_FUNCTIONS = ("first", "mean", "max", "masked_mean")
RELPE_TYPES = ("cosine", "cos_minus_sin", "rope", "dummy")
LAYER_CODES = ("g", "l", "sl", "sw")


def padded_vocab_size(v):
    """Vocabulary padded up to a multiple of 8 (docs/model.md §1.3)."""
    return (int(v) + 7) // 8 * 8


def _none_if_none(v):
    """`final_ln_type` etc. may be absent, null or the string "none"."""
    if v is None or (isinstance(v, str) and v.lower() == "none"):
        return None
    return v


def resolve_danet_config(config):
    """Fill defaults and validate a DANet config dict. Unknown keys and bad values raise ValueError."""
    cfg = dict(DANET_DEFAULTS)
    for k, v in config.items():
        if k not in DANET_DEFAULTS:
            raise ValueError(f"unknown DANet config key '{k}'")
        cfg[k] = v
    if cfg["model_type"] != "danet":
        raise ValueError(f"model_type must be 'danet', got {cfg['model_type']!r}")
    for k in ("final_ln_type", "pooler_ln_type", "relpe_type"):
        cfg[k] = _none_if_none(cfg[k])

    d, H = cfg["hidden_size"], cfg["num_attention_heads"]
    if d % H != 0:
        raise ValueError(f"hidden_size {d} is not divisible by num_attention_heads {H}")
    if cfg["attention_complexity"] not in ("linear", "quadratic", "auto"):
        raise ValueError(f"attention_complexity: bad value {cfg['attention_complexity']!r}")
    for k in ("pre_attn_ln_type", "post_attn_ln_type", "embedding_ln_type", "lm_head_ln_type"):
        if cfg[k] not in REGISTRY_NAMES:
            raise ValueError(f"{k}: bad value {cfg[k]!r}, allowed {REGISTRY_NAMES}")
    for k in ("final_ln_type", "pooler_ln_type"):
        if cfg[k] is not None and cfg[k] not in REGISTRY_NAMES:
            raise ValueError(f"{k}: bad value {cfg[k]!r}, allowed {REGISTRY_NAMES}")
    for k in ("pooler_act", "lm_head_act"):
        if cfg[k] not in ACTIVATION_NAMES:
            raise ValueError(f"{k}: bad value {cfg[k]!r}, allowed {ACTIVATION_NAMES}")
    if cfg["pos_emb_type"] not in ("learned", "sinusoidal", "relpe"):
        raise ValueError(f"pos_emb_type: bad value {cfg['pos_emb_type']!r}")
    if cfg["pos_emb_type"] == "relpe":
        if cfg["relpe_type"] not in RELPE_TYPES:
            raise ValueError(f"relpe_type: bad value {cfg['relpe_type']!r} (allowed {RELPE_TYPES})")
        if cfg["relpe_type"] == "rope" and (d // H) % 2 != 0:
            raise ValueError("rope needs an even head size")
    scheme = cfg["relpe_scheme"]
    codes = [c.strip() for c in scheme.split(",")] if scheme else []
    if not set(codes) <= {"qkv", "q", "k", "v"}:
        raise ValueError(f"relpe_scheme: bad value {scheme!r}")
    cfg["_relpe_codes"] = tuple(codes)
    if cfg["pooler_function"] not in POOLER_FUNCTIONS:
        raise ValueError(f"pooler_function: bad value {cfg['pooler_function']!r}")
    if cfg["num_labels"] < 1:
        raise ValueError("num_labels must be >= 1")
    if not isinstance(cfg["pair_matching"], bool):
        raise ValueError(f"pair_matching: must be a bool, got {cfg['pair_matching']!r}")
    if cfg["pair_matching"] and cfg["num_labels"] < 2:
        raise ValueError("pair_matching needs num_labels >= 2 (the matching loss is cross-entropy)")

    L = cfg["num_hidden_layers"]
    if cfg["local_attention"]:
        w = cfg["window_size"]
        if not (w > 0 and w % 2 == 0 and w <= cfg["max_position_embeddings"]
                and cfg["max_position_embeddings"] % w == 0):
            raise ValueError(f"window_size {w}: must be even, > 0, <= and divide max_position_embeddings")
        scheme_codes = cfg["local_scheme"].split("_")
        for c in scheme_codes:
            if c not in LAYER_CODES:
                raise ValueError(f"local_scheme: unknown layer code {c!r} (allowed {LAYER_CODES})")
            if c == "sw" and not cfg["causal"]:
                raise ValueError("local_scheme code 'sw' (sliding window) needs causal: true")
        cfg["_layer_types"] = tuple(scheme_codes[i % len(scheme_codes)] for i in range(L))
    else:
        cfg["_layer_types"] = ("g",) * L
    if cfg["causal"] and cfg["chunk_size"] <= 0:
        raise ValueError("chunk_size must be > 0")
    return cfg


def swiglu_width(d, r):
    """n = roundup_to_multiple_of_128(floor(2 r d / 3)) (docs/model.md §1.9)."""
    n = (2 * r * d) // 3
    return (n + 127) // 128 * 128


def danet_param_shapes(cfg):
    """OrderedDict name -> shape of every DANet parameter (docs/model-config.md 'Parameter names')."""
    d = cfg["hidden_size"]
    r = cfg["intermediate_size"]
    V = padded_vocab_size(cfg["vocab_size"])
    s = OrderedDict()
    s["embeddings.word_embeddings.weight"] = (V, d)
    if cfg["pos_emb_type"] == "learned":
        s["embeddings.position_embeddings.weight"] = (cfg["max_position_embeddings"], d)
    if cfg["token_type_embeddings"]:
        s["embeddings.token_type_embeddings.weight"] = (cfg["type_vocab_size"], d)
    if cfg["embedding_ln_type"] in GAIN_NORMS:
        s["embeddings.norm.weight"] = (d,)
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        if cfg["pre_attn_ln_type"] in GAIN_NORMS:
            s[p + "pre_norm.weight"] = (d,)
        s[p + "attention.queries"] = (d, d)
        if cfg["swiglu_ffn"]:
            n = swiglu_width(d, r)
            s[p + "ffn.up.weight"] = (2 * n, d)
            s[p + "ffn.proj.weight"] = (d, n)
        else:
            s[p + "ffn.w1"] = (d, r * d)
            s[p + "ffn.w2"] = (r * d, d)
        if cfg["post_attn_ln_type"] in GAIN_NORMS:
            s[p + "post_norm.weight"] = (d,)
    if cfg["final_ln_type"] in GAIN_NORMS:
        s["encoder.final_norm.weight"] = (d,)
    s["lm_head.transform.dense.weight"] = (d, d)
    if cfg["lm_head_ln_type"] in GAIN_NORMS:
        s["lm_head.transform.norm.weight"] = (d,)
    s["lm_head.bias"] = (V,)
    if not cfg["pooler_no_dense"]:
        s["pooler.dense.weight"] = (d, d)
        if cfg["pooler_ln_type"] in GAIN_NORMS:
            s["pooler.norm.weight"] = (d,)
    if cfg["pair_matching"]:
        # AAN matching head (docs/model.md §1.11) replaces the classifier; classifier_bias has no effect.
        s["matching.dense.weight"] = (d, 4 * d)
        s["matching.classifier.weight"] = (cfg["num_labels"], d)
    else:
        s["classifier.weight"] = (cfg["num_labels"], d)
        if cfg["classifier_bias"]:
            s["classifier.bias"] = (cfg["num_labels"],)
    return s


# --------------------------------------------------------------------------------------------------
# Norm / activation family (docs/model.md §1.2)
# --------------------------------------------------------------------------------------------------

def _compute_dtype(x):
    """'fp32' compute dtype of the spec, but never a downcast (float64 stays float64)."""
    return torch.promote_types(x.dtype, torch.float32)


def first_abs_argmax(x):
    """Index [..., 1] of the FIRST maximum of |x| along the last dim (all-zero rows give 0).

    Written out explicitly (smallest index among the maxima) so the tie rule does not depend on which
    index a particular torch.max kernel happens to return.
    """
    ax = x.detach().abs()
    mx = ax.amax(dim=-1, keepdim=True)
    D = x.shape[-1]
    idx = torch.arange(D, device=x.device).expand(ax.shape)
    big = torch.full_like(idx, D)
    return torch.where(ax == mx, idx, big).amin(dim=-1, keepdim=True)


def max_norm(x, eps):
    """y = x / (|x_{j*}| + eps), j* the first argmax of |x|.

    The denominator is a gather at ONE index, so autograd sends the normalisation gradient
    -sign(x_j*) (sum_i dy_i x_i) / s^2 to that single coordinate, as in the spec (abs' (0) = 0 in torch,
    so zero rows get no extra term).
    """
    s = x.abs().gather(-1, first_abs_argmax(x)) + eps
    return x / s


def apply_norm(name, x, weight=None):
    """Apply a registry entry (norm or activation) along the last dim. `weight` is the gain when the norm has one."""
    if name is None or name in ("no_ln", "identity"):
        return x
    if name in GAIN_NORMS and weight is None:
        raise ValueError(f"norm {name} needs its gain")
    cd = _compute_dtype(x)
    if name == "max_norm":
        return max_norm(x, 1e-3)  # eps 1e-3, input dtype (no upcast)
    if name == "scaled_max_norm":
        return max_norm(x.to(cd), 1e-12).to(x.dtype) * weight
    if name == "prescaled_max_norm":
        u = weight * x  # product in the input dtype, normalisation in fp32
        return max_norm(u.to(cd), 1e-12).to(x.dtype)
    if name == "uncentered_ln":
        xc = x.to(cd)
        return (weight.to(cd) * xc / (xc.abs().mean(dim=-1, keepdim=True) + 1e-12)).to(x.dtype)
    if name == "uncentered_fixed_ln":
        xc = x.to(cd)
        return (xc / (xc.abs().mean(dim=-1, keepdim=True) + 1e-12)).to(x.dtype)
    if name == "standard_ln":
        xc = x.to(cd)
        mu = xc.mean(dim=-1, keepdim=True)
        var = ((xc - mu) ** 2).mean(dim=-1, keepdim=True)  # biased variance
        return (weight.to(cd) * (xc - mu) / torch.sqrt(var + 1e-12)).to(x.dtype)
    return apply_activation(name, x)


def apply_activation(name, x):
    if name == "gelu":
        return F.gelu(x)  # exact erf form
    if name == "gelu_tanh":
        return F.gelu(x, approximate="tanh")
    if name == "legacy_gelu":
        return F.gelu(x.to(_compute_dtype(x))).to(x.dtype)
    if name == "relu":
        return F.relu(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "silu":
        return F.silu(x)
    if name == "leaky_relu":
        return F.leaky_relu(x, 0.01)
    if name == "leaky_relu_0.1":
        return F.leaky_relu(x, 0.1)
    if name == "hardtanh":
        # F.hardtanh's gradient is 0 at the clamp boundaries (torch.clamp would pass it): matches the spec.
        return F.hardtanh(x, -1.0, 1.0)
    if name in ("identity", "no_ln"):
        return x
    raise ValueError(f"unknown activation {name!r}")


# --------------------------------------------------------------------------------------------------
# Relative positional encodings (docs/model.md §1.6)
# --------------------------------------------------------------------------------------------------

class RelPE:
    """Position-dependent transforms applied to [B, N, d] tensors before the head split.

    The per-head pattern of length e is repeated H times along the hidden dim. Tables are computed in the
    working dtype (float64 for the goldens) directly for the requested positions.
    """

    def __init__(self, kind, head_size, num_heads, max_positions):
        self.kind = None if kind in (None, "dummy") else kind
        self.e = head_size
        self.H = num_heads
        self.max_positions = max_positions

    def _angles(self, positions, dtype):
        e = self.e
        if self.kind in ("cosine", "cos_minus_sin"):
            # theta_i = 10000^(-i/e), i = 0..e-1: every channel of a head has its own frequency.
            theta = torch.pow(torch.tensor(10000.0, dtype=dtype), -torch.arange(e, dtype=dtype) / e)
        else:  # rope: theta_k = 10000^(-2k/e), k < e/2, angle vector per head [theta, theta]
            half = torch.pow(torch.tensor(10000.0, dtype=dtype), -2.0 * torch.arange(e // 2, dtype=dtype) / e)
            theta = torch.cat([half, half])
        theta = theta.repeat(self.H)  # [d]
        return positions.to(dtype)[:, None] * theta[None, :]  # [N, d]

    def apply(self, x, positions):
        """x: [B, N, d]; positions: LongTensor [N] (position of every row)."""
        if self.kind is None:
            return x
        if positions.numel() and int(positions.max()) >= self.max_positions:
            raise ValueError(f"RelPE position {int(positions.max())} >= max_position_embeddings "
                             f"{self.max_positions}")
        ang = self._angles(positions, x.dtype)
        if self.kind == "cosine":
            return x * torch.cos(ang)
        if self.kind == "cos_minus_sin":
            return x * (torch.cos(ang) - torch.sin(ang))
        if self.kind == "rope":
            # GPT-NeoX half split over the WHOLE last dim D (pairs channel c with c + D/2, spec quirk 9).
            D = x.shape[-1]
            rot = torch.cat([-x[..., D // 2:], x[..., :D // 2]], dim=-1)
            return x * torch.cos(ang) + rot * torch.sin(ang)
        raise ValueError(f"unknown relpe_type {self.kind!r}")


# --------------------------------------------------------------------------------------------------
# DenseAttention kernels (docs/model.md §1.5, §1.7, §1.8). q, k, v: [..., n, e]
# --------------------------------------------------------------------------------------------------

def kernel_linear(q, k, v):
    return q @ (k.transpose(-1, -2) @ v)  # M = K^T V (e x e), O = Q M


def kernel_quadratic(q, k, v):
    return (q @ k.transpose(-1, -2)) @ v  # S = Q K^T (n x n), O = S V


def kernel_auto(q, k, v):
    # linear iff e <= n (tie goes to linear), n = length of the tensor being processed
    return kernel_linear(q, k, v) if q.shape[-1] <= q.shape[-2] else kernel_quadratic(q, k, v)


def kernel_causal(q, k, v):
    return torch.tril(q @ k.transpose(-1, -2)) @ v  # tril_0 keeps the diagonal


def split_heads(x, H):
    """[B, N, d] -> [B, H, N, e]: head h uses channels h*e..(h+1)*e-1."""
    B, N, d = x.shape
    return x.reshape(B, N, H, d // H).transpose(1, 2)


def merge_heads(x):
    """[B, H, N, e] -> [B, N, H*e]."""
    B, H, N, e = x.shape
    return x.transpose(1, 2).reshape(B, N, H * e)


# --------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------

def select_masked_rows(seq, mlm_labels):
    """Rows of seq [B, N, d] with label != -1, in row-major (batch, position) order, and their labels."""
    d = seq.shape[-1]
    flat_labels = mlm_labels.reshape(-1)
    sel = flat_labels != -1
    return seq.reshape(-1, d)[sel], flat_labels[sel]


def combined_loss(mlm_logits, mlm_targets, class_logits, class_labels, num_labels):
    """Mean CE over masked tokens + (mean CE over the batch, or MSE when num_labels == 1).

    Either part is skipped when its labels are not given; a batch without masked tokens contributes 0
    for the MLM part (instead of the NaN of an empty mean).
    """
    loss = None
    mlm_loss = None
    cls_loss = None
    if mlm_logits is not None:
        if mlm_targets.numel() > 0:
            mlm_loss = F.cross_entropy(mlm_logits, mlm_targets, reduction="mean")
        else:
            mlm_loss = mlm_logits.sum() * 0.0
        loss = mlm_loss
    if class_labels is not None:
        if num_labels == 1:
            cls_loss = F.mse_loss(class_logits.reshape(-1), class_labels.to(class_logits.dtype).reshape(-1))
        else:
            cls_loss = F.cross_entropy(class_logits, class_labels, reduction="mean")
        loss = cls_loss if loss is None else loss + cls_loss
    return loss, mlm_loss, cls_loss


class DANetReference:
    def __init__(self, config):
        self.cfg = resolve_danet_config(config)
        c = self.cfg
        self.d = c["hidden_size"]
        self.H = c["num_attention_heads"]
        self.e = self.d // self.H
        self.L = c["num_hidden_layers"]
        self.V = padded_vocab_size(c["vocab_size"])
        self.layer_types = c["_layer_types"]
        self.relpe_codes = c["_relpe_codes"] if c["pos_emb_type"] == "relpe" else ()
        self.relpe = RelPE(c["relpe_type"] if c["pos_emb_type"] == "relpe" else None,
                           self.e, self.H, c["max_position_embeddings"])

    def param_shapes(self):
        return danet_param_shapes(self.cfg)

    def num_parameters(self):
        return sum(math.prod(s) for s in self.param_shapes().values())

    # ---- embeddings (§1.3) ----
    def _sinusoidal(self, N, dtype):
        # even dims sin(p w_i), odd dims cos(p w_i), w_i = 10000^(-2i/d), channel 2i / 2i+1 share w_i
        d = self.d
        p = torch.arange(N, dtype=dtype)[:, None]
        i = torch.arange(d, dtype=dtype) // 2
        w = torch.pow(torch.tensor(10000.0, dtype=dtype), -2.0 * i / d)
        ang = p * w[None, :]
        even = (torch.arange(d) % 2 == 0)[None, :]
        return torch.where(even, torch.sin(ang), torch.cos(ang))

    def embeddings(self, params, input_ids, token_type_ids):
        c = self.cfg
        B, N = input_ids.shape
        x = params["embeddings.word_embeddings.weight"][input_ids]
        if c["pos_emb_type"] in ("learned", "sinusoidal") and N > c["max_position_embeddings"]:
            raise ValueError(f"sequence length {N} > max_position_embeddings {c['max_position_embeddings']}")
        if c["pos_emb_type"] == "learned":
            x = x + params["embeddings.position_embeddings.weight"][:N][None]
        elif c["pos_emb_type"] == "sinusoidal":
            x = x + self._sinusoidal(N, x.dtype)[None]
        # relpe: nothing added here
        if c["token_type_embeddings"]:
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(input_ids)
            x = x + params["embeddings.token_type_embeddings.weight"][token_type_ids]
        return apply_norm(c["embedding_ln_type"], x, params.get("embeddings.norm.weight"))

    # ---- attention (§1.5 - §1.8) ----
    def _project(self, A, Wq, positions):
        """Eqs. (6)-(9): RelPE on the input (qkv), Q = A W_Q^T, then the q/k/v RelPEs. A: [B, n, d]."""
        codes = self.relpe_codes
        if "qkv" in codes:
            A = self.relpe.apply(A, positions)
        Q = A @ Wq.t()
        if "q" in codes:
            Q = self.relpe.apply(Q, positions)
        K = self.relpe.apply(A, positions) if "k" in codes else A
        V = self.relpe.apply(A, positions) if "v" in codes else A
        return Q, K, V

    def _global_kernel(self):
        if self.cfg["causal"]:
            return kernel_causal
        return {"linear": kernel_linear, "quadratic": kernel_quadratic,
                "auto": kernel_auto}[self.cfg["attention_complexity"]]

    def _local_kernel(self):
        # Non-causal local layers are forced to 'auto'; causal models use the causal kernel per chunk.
        return kernel_causal if self.cfg["causal"] else kernel_auto

    def _forward_global(self, A, Wq, kernel):
        """Whole-sequence DenseAttention with global positions 0..N-1."""
        N = A.shape[1]
        Q, K, V = self._project(A, Wq, torch.arange(N))
        O = kernel(split_heads(Q, self.H), split_heads(K, self.H), split_heads(V, self.H))
        return merge_heads(O)

    def _forward_chunked(self, A, Wq, C, local_positions, sliding_window):
        """Chunked kernel of §1.7 with chunk length C.

        local_positions: RelPE positions restart at 0 in every chunk of the (padded) sequence.
        sliding_window: add the previous chunk's strictly-upper cross term (causal sliding window).
        """
        B, N, d = A.shape
        kernel = self._local_kernel()
        if N <= C:
            return self._forward_global(A, Wq, kernel)
        nc = (N + C - 1) // C
        Np = nc * C
        Ap = F.pad(A, (0, 0, 0, Np - N))  # zero rows: they contribute nothing to real rows
        positions = torch.arange(Np) % C if local_positions else torch.arange(Np)
        Q, K, V = self._project(Ap, Wq, positions)  # qkv RelPE applied after the padding (decision)
        e = self.e
        q = split_heads(Q, self.H).reshape(B, self.H, nc, C, e)
        k = split_heads(K, self.H).reshape(B, self.H, nc, C, e)
        v = split_heads(V, self.H).reshape(B, self.H, nc, C, e)
        chunks = []
        for ci in range(nc):
            qc, kc, vc = q[:, :, ci], k[:, :, ci], v[:, :, ci]
            o = kernel(qc, kc, vc)  # intra-chunk term
            if sliding_window and ci > 0:
                kp, vp = k[:, :, ci - 1], v[:, :, ci - 1]
                # triu_1(Q_c K_{c-1}^T) V_{c-1}: query a of chunk c sees keys b > a of the previous chunk
                o = o + torch.triu(qc @ kp.transpose(-1, -2), diagonal=1) @ vp
            chunks.append(o)
        O = torch.stack(chunks, dim=2).reshape(B, self.H, Np, e)
        return merge_heads(O)[:, :N]

    def attention(self, A, Wq, layer_type):
        c = self.cfg
        if layer_type == "g":
            # Causal global layers: tril_0(Q K^T) V over the whole sequence, which equals the chunk-wise
            # algorithm with chunk_size (intra tril + exclusive prefix state) exactly in exact arithmetic.
            return self._forward_global(A, Wq, self._global_kernel())
        w = c["window_size"]
        local_pos = bool(c["local_relpe"])
        if layer_type == "l":
            return self._forward_chunked(A, Wq, w, local_pos, sliding_window=False)
        if layer_type == "sl":
            N = A.shape[1]
            if N <= w // 2:
                return self._forward_global(A, Wq, self._local_kernel())
            h = w // 2
            Ap = F.pad(A, (0, 0, h, h))  # windows shifted by w/2; positions counted on the padded sequence
            return self._forward_chunked(Ap, Wq, w, local_pos, sliding_window=False)[:, h:h + N]
        if layer_type == "sw":
            # global positions, chunk C = w, causal intra term + previous-chunk cross term
            return self._forward_chunked(A, Wq, w, False, sliding_window=True)
        raise ValueError(layer_type)

    # ---- FFN (§1.9) ----
    def ffn(self, params, prefix, Y):
        if self.cfg["swiglu_ffn"]:
            U = Y @ params[prefix + "ffn.up.weight"].t()
            n = U.shape[-1] // 2
            a, b = U[..., :n], U[..., n:]
            return (F.silu(a) * b) @ params[prefix + "ffn.proj.weight"].t()
        Hh = F.relu(Y @ params[prefix + "ffn.w1"])  # W1 [d, r d] used as stored
        return Hh @ params[prefix + "ffn.w2"]

    # ---- mask scale (§1.4) ----
    @staticmethod
    def mask_scales(attention_mask, w, dtype):
        m = attention_mask.to(dtype)
        n_real = m.sum(dim=1, keepdim=True)
        m_global = (m / n_real.pow(1.0 / 3.0))[..., None]          # mask / n_b^(1/3)
        m_local = (m / (float(w) ** (1.0 / 3.0)))[..., None]       # mask / w^(1/3)
        return m_global, m_local

    def encoder(self, params, input_ids, attention_mask=None, token_type_ids=None):
        c = self.cfg
        X = self.embeddings(params, input_ids, token_type_ids)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        m_global, m_local = self.mask_scales(attention_mask, c["window_size"], X.dtype)
        for i, lt in enumerate(self.layer_types):
            p = f"encoder.layer.{i}."
            m = m_global if lt == "g" else m_local
            A = apply_norm(c["pre_attn_ln_type"], X, params.get(p + "pre_norm.weight")) * m      # (1)
            Y = self.attention(A, params[p + "attention.queries"], lt)                           # (2)
            Z = self.ffn(params, p, Y)                                                            # (3)
            X = X + apply_norm(c["post_attn_ln_type"], Z, params.get(p + "post_norm.weight"))   # (4)
        return apply_norm(c["final_ln_type"], X, params.get("encoder.final_norm.weight"))

    # ---- heads (§1.11) ----
    def mlm_head(self, params, seq, mlm_labels):
        c = self.cfg
        S, targets = select_masked_rows(seq, mlm_labels)  # select first (equivalent, cheaper)
        T = apply_activation(c["lm_head_act"], S @ params["lm_head.transform.dense.weight"].t())
        T = apply_norm(c["lm_head_ln_type"], T, params.get("lm_head.transform.norm.weight"))
        logits = T @ params["embeddings.word_embeddings.weight"].t() + params["lm_head.bias"]  # tied
        return logits, targets

    def pooler(self, params, seq, attention_mask):
        c = self.cfg
        f = c["pooler_function"]
        if f == "first":
            P = seq[:, 0]
        elif f == "mean":
            P = seq.mean(dim=1)  # all N positions, pads included (reference behaviour)
        elif f == "max":
            P = seq.max(dim=1).values  # over all N positions
        else:  # masked_mean: real tokens only
            m = attention_mask.to(seq.dtype)[..., None]
            P = (seq * m).sum(dim=1) / m.sum(dim=1)
        if c["pooler_no_dense"]:
            return P
        P = apply_activation(c["pooler_act"], P @ params["pooler.dense.weight"].t())
        return apply_norm(c["pooler_ln_type"], P, params.get("pooler.norm.weight"))

    def classifier(self, params, pooled):
        out = pooled @ params["classifier.weight"].t()
        if "classifier.bias" in params:
            out = out + params["classifier.bias"]
        return out

    def matching_head(self, params, p1, p2):
        """AAN matching (docs/model.md §1.11): h = [p1, p2, p1*p2, p1-p2] [B, 4d] -> Linear(4d->d, no bias) -> tanh-GELU
        -> (dropout, ignored) -> Linear(d->num_labels, no bias)."""
        h = torch.cat([p1, p2, p1 * p2, p1 - p2], dim=-1)
        z = apply_activation("gelu_tanh", h @ params["matching.dense.weight"].t())
        return z @ params["matching.classifier.weight"].t()

    def forward_pair(self, params, input_ids, attention_mask, token_type_ids, input_ids2, attention_mask2,
                     token_type_ids2, class_labels):
        """pair_matching: the shared encoder + pooler run on each document (each with its own mask).

        sequence_output / pooled are the two documents' results concatenated along the batch dim (doc 1 rows
        first): [2B, N, d] / [2B, d]. class_logits [B, num_labels]. No MLM in this mode.
        """
        if input_ids2 is None:
            raise ValueError("a pair_matching model needs the second document (input_ids2)")
        if tuple(input_ids2.shape) != tuple(input_ids.shape):
            raise ValueError(f"input_ids2 {tuple(input_ids2.shape)} must have the shape of input_ids "
                             f"{tuple(input_ids.shape)}")
        if attention_mask2 is None:
            attention_mask2 = torch.ones_like(input_ids2)
        seq1 = self.encoder(params, input_ids, attention_mask, token_type_ids)
        seq2 = self.encoder(params, input_ids2, attention_mask2, token_type_ids2)
        p1 = self.pooler(params, seq1, attention_mask)
        p2 = self.pooler(params, seq2, attention_mask2)
        out = {"sequence_output": torch.cat([seq1, seq2], dim=0), "pooled": torch.cat([p1, p2], dim=0)}
        out["class_logits"] = self.matching_head(params, p1, p2)
        if class_labels is not None:
            loss = F.cross_entropy(out["class_logits"], class_labels, reduction="mean")
            out["loss"], out["mlm_loss"], out["class_loss"] = loss, None, loss
        return out

    def forward(self, params, input_ids, attention_mask=None, token_type_ids=None,
                mlm_labels=None, class_labels=None, input_ids2=None, attention_mask2=None, token_type_ids2=None):
        """Returns a dict: sequence_output, pooled, class_logits, and (with labels) mlm_logits, loss, ..."""
        if self.cfg["pair_matching"]:
            if mlm_labels is not None:
                raise ValueError("MLM labels are not supported with pair_matching (two documents per example)")
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            return self.forward_pair(params, input_ids, attention_mask, token_type_ids, input_ids2,
                                     attention_mask2, token_type_ids2, class_labels)
        if input_ids2 is not None or attention_mask2 is not None or token_type_ids2 is not None:
            raise ValueError("a second document (input_ids2) needs pair_matching: true")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        seq = self.encoder(params, input_ids, attention_mask, token_type_ids)
        out = {"sequence_output": seq}
        mlm_logits = mlm_targets = None
        if mlm_labels is not None:
            mlm_logits, mlm_targets = self.mlm_head(params, seq, mlm_labels)
            out["mlm_logits"] = mlm_logits
        out["pooled"] = self.pooler(params, seq, attention_mask)
        out["class_logits"] = self.classifier(params, out["pooled"])
        if mlm_labels is not None or class_labels is not None:
            loss, mlm_loss, cls_loss = combined_loss(mlm_logits, mlm_targets, out["class_logits"],
                                                     class_labels, self.cfg["num_labels"])
            out["loss"], out["mlm_loss"], out["class_loss"] = loss, mlm_loss, cls_loss
        return out
