#!/usr/bin/python3
"""Generate the float64 golden files for the C++ DANet / BERT implementations.

Usage: /usr/bin/python3 tests/reference/make_goldens.py OUTDIR

For every case: build the reference model from its config, draw well-conditioned random weights (NOT the
spec init: tiny init values would make attention invisible in the outputs) and random inputs from a seeded
torch.Generator, run forward + backward in float64 and write OUTDIR/<case>.safetensors containing

    metadata  {"config": json of the case config (as given, defaults not filled in), "case": name}
    input.input_ids [B,N] I64, input.attention_mask [B,N] I64, (input.token_type_ids [B,N] I64),
    input.mlm_labels [B,N] I64 (-1 = not masked), input.class_labels [B] I64 (F64 when num_labels == 1)
    param.<name> F64 for every parameter
    out.sequence_output [B,N,d], out.mlm_logits [n_masked, V_padded], out.pooled [B,d],
    out.class_logits [B,num_labels], out.loss [] (all F64)
    grad.<name> F64 for every parameter (d loss / d param)

Pair-matching cases (config `pair_matching: true`, LRA Retrieval / AAN, option "pair") differ: the inputs are
    input.input_ids, input.attention_mask, input.input_ids2 [B,N] I64, input.attention_mask2 [B,N] I64,
    input.class_labels [B] I64
(no input.mlm_labels, no out.mlm_logits: there is no MLM in this mode), out.sequence_output [2B,N,d] and
out.pooled [2B,d] hold document 1's rows then document 2's, out.class_logits is [B,num_labels], and the loss
is the mean matching cross-entropy. The unused MLM-head parameters get exactly-zero gradients.

and OUTDIR/cases.txt with the case names, one per line.

Sparse attention (sparse_reference.py; tests/nn/sparse_golden_test.cpp): for every SPARSE_CASES entry,
OUTDIR/sparse_<case>.safetensors with

    metadata  {"case", "pattern": the nn::parse_pattern string, "heads", "layer", "score": softmax|linear|none}
    mask [H,N,N] I64 (0/1, the pattern of each head; for bigbird with random blocks only the deterministic
    window + global part, and then no attention tensors), q, k, v, dout [B,N,H*e] F64, key_valid [B,N] F64
    (only with padding), o [B,N,H*e], lse [B,H,N] (softmax; -inf on rows without a visible valid key),
    dq, dk, dv (gradients of <dout, o>)

SPARSE_MODEL_CASES are whole models with `attention: {type: sparse, ...}`, written like CASES (as
OUTDIR/<case>.safetensors); OUTDIR/sparse_cases.txt lists both kinds of names, one per line.
"""

import json
import os
import sys
import zlib
from collections import OrderedDict

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bert_reference import BertReference  # noqa: E402
from danet_reference import DANetReference  # noqa: E402
from safetensors_io import save_file  # noqa: E402
import sparse_reference  # noqa: E402

DTYPE = torch.float64

_NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "embedding_dropout": 0.0}


def build_reference_model(config):
    mt = config.get("model_type", "danet")
    if mt == "danet":
        return DANetReference(config)
    if mt == "bert":
        if "attention" in config:
            return sparse_reference.SparseBertReference(config)
        return BertReference(config)
    raise ValueError(f"unknown model_type {mt!r}")


def _danet(**kw):
    base = {"model_type": "danet", "vocab_size": 37, "hidden_size": 16, "num_labels": 3}
    base.update(_NO_DROPOUT)
    base.update(kw)
    return base


_GLOBAL = dict(
    num_hidden_layers=2, num_attention_heads=2, intermediate_size=2, swiglu_ffn=False,
    pos_emb_type="learned", max_position_embeddings=16,
    pre_attn_ln_type="max_norm", post_attn_ln_type="max_norm", embedding_ln_type="max_norm",
    final_ln_type="max_norm", attention_complexity="auto",
    lm_head_act="gelu", lm_head_ln_type="standard_ln",
    pooler_function="first", pooler_act="tanh", classifier_bias=True,
)

# name -> (config, options). options: N (sequence length), pad {row: number of pad positions at the end},
# token_types (also write input.token_type_ids), pair (two documents: input_ids2 / attention_mask2, no MLM
# labels), pad2 {row: pads at the end} for document 2.
CASES = OrderedDict()
CASES["danet_global"] = (_danet(**_GLOBAL), {"pad": {1: 5}})
CASES["danet_global_quadratic"] = (
    _danet(**dict(_GLOBAL, attention_complexity="quadratic", num_attention_heads=4)), {"pad": {1: 5}})
CASES["danet_local_l_sl_g"] = (_danet(
    num_hidden_layers=3, num_attention_heads=2, intermediate_size=2, swiglu_ffn=False,
    local_attention=True, local_scheme="l_sl_g", window_size=4, local_relpe=True,
    pos_emb_type="relpe", relpe_type="cosine", relpe_scheme="qkv", max_position_embeddings=16,
    embedding_ln_type="max_norm", pre_attn_ln_type="max_norm", post_attn_ln_type="max_norm",
    pooler_function="mean", pooler_no_dense=False, pooler_act="gelu", pooler_ln_type="uncentered_fixed_ln",
    lm_head_act="gelu", lm_head_ln_type="uncentered_ln", final_ln_type="none", classifier_bias=False,
), {"pad": {1: 4}})
CASES["danet_rope_qk"] = (_danet(
    num_hidden_layers=2, num_attention_heads=1, intermediate_size=4, swiglu_ffn=True,
    pos_emb_type="relpe", relpe_type="rope", relpe_scheme="q,k", max_position_embeddings=16,
    pre_attn_ln_type="scaled_max_norm", post_attn_ln_type="prescaled_max_norm",
    embedding_ln_type="standard_ln", final_ln_type="standard_ln",
    pooler_function="mean", pooler_act="tanh", lm_head_act="gelu", lm_head_ln_type="standard_ln",
    classifier_bias=True,
), {})
CASES["danet_cosine_qkv"] = (_danet(
    num_hidden_layers=2, num_attention_heads=4, intermediate_size=2, swiglu_ffn=False,
    pos_emb_type="relpe", relpe_type="cosine", relpe_scheme="qkv", local_attention=False,
    max_position_embeddings=16, embedding_ln_type="hardtanh", final_ln_type="none",
    pooler_function="max", pooler_no_dense=False, pooler_act="gelu_tanh",
    lm_head_act="gelu_tanh", lm_head_ln_type="uncentered_ln",
), {"N": 12})
CASES["danet_swiglu"] = (_danet(
    num_hidden_layers=2, num_attention_heads=2, intermediate_size=2, swiglu_ffn=True,
    pos_emb_type="sinusoidal", max_position_embeddings=16, token_type_embeddings=True, type_vocab_size=2,
    embedding_ln_type="uncentered_ln", final_ln_type="uncentered_ln",
    pre_attn_ln_type="max_norm", post_attn_ln_type="max_norm", attention_complexity="auto",
    lm_head_act="gelu", lm_head_ln_type="uncentered_ln",
    pooler_function="masked_mean", pooler_no_dense=True, num_labels=1, classifier_bias=False,
), {"pad": {0: 4}, "token_types": True})
CASES["danet_causal_sw"] = (_danet(
    num_hidden_layers=2, num_attention_heads=1, intermediate_size=2, swiglu_ffn=False,
    causal=True, local_attention=True, local_scheme="sw_g", window_size=4, chunk_size=4,
    pos_emb_type="relpe", relpe_type="rope", relpe_scheme="q,k", max_position_embeddings=16,
    pre_attn_ln_type="max_norm", post_attn_ln_type="max_norm", embedding_ln_type="hardtanh",
    final_ln_type="none", pooler_function="mean", pooler_act="gelu",
    lm_head_act="gelu", lm_head_ln_type="uncentered_ln", classifier_bias=False,
), {})
CASES["danet_matching"] = (_danet(**dict(
    _GLOBAL, num_labels=2, pair_matching=True, pooler_function="first", pooler_act="gelu", classifier_bias=False,
)), {"pair": True, "pad": {1: 3}, "pad2": {0: 6}})
CASES["bert"] = (dict(
    model_type="bert", vocab_size=37, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
    intermediate_size=32, max_position_embeddings=16, num_labels=3, hidden_act="gelu",
    layer_norm_eps=1e-12, classifier_bias=True, **_NO_DROPOUT,
), {"pad": {1: 5}})


# Sparse attention cases: name -> dict(spec, N, H, e, score (softmax | linear | None: pattern only), optional
# layer (interleaved heads), pad {batch row: keys padded at the end}). B = 2. N is never a multiple of the
# pattern's block / stride, so partial last blocks are covered.
SPARSE_CASES = OrderedDict()
SPARSE_CASES["sliding_window_pad"] = dict(
    spec={"kind": "sliding_window", "window": 2}, N=13, H=2, e=3, score="softmax", pad={1: 4})
SPARSE_CASES["sliding_window_causal_linear"] = dict(
    spec={"kind": "sliding_window", "window": 3, "causal": True}, N=13, H=2, e=3, score="linear")
SPARSE_CASES["dense_causal_pad"] = dict(
    spec={"kind": "dense", "causal": True}, N=9, H=2, e=2, score="softmax", pad={0: 3})
SPARSE_CASES["dilated_pad"] = dict(
    spec={"kind": "dilated", "window": 2, "dilation": 3}, N=14, H=2, e=3, score="softmax", pad={1: 3})
SPARSE_CASES["dilated_causal_linear"] = dict(
    spec={"kind": "dilated", "window": 3, "dilation": 2, "causal": True}, N=13, H=2, e=2, score="linear",
    pad={0: 2})
SPARSE_CASES["dilated_2d"] = dict(
    spec={"kind": "dilated_2d", "block": 5, "dilation": 2}, N=13, H=2, e=3, score="softmax")
SPARSE_CASES["dilated_2d_causal_pad"] = dict(
    spec={"kind": "dilated_2d", "block": 4, "dilation": 3, "causal": True}, N=15, H=2, e=2, score="softmax",
    pad={1: 5})
SPARSE_CASES["global_no_window_causal"] = dict(  # rows 0..2 see nothing: lse -inf, o 0
    spec={"kind": "global", "global_tokens": [3, 8], "causal": True}, N=13, H=2, e=3, score="softmax",
    pad={1: 2})
SPARSE_CASES["global_no_window_linear"] = dict(  # non-global rows do not see themselves
    spec={"kind": "global", "global_tokens": [0, 5, 6, 7]}, N=11, H=2, e=2, score="linear")
SPARSE_CASES["longformer_pad"] = dict(
    spec={"kind": "longformer", "window": 1, "global_tokens": [0, 11]}, N=13, H=2, e=3, score="softmax",
    pad={1: 4})
SPARSE_CASES["longformer_causal"] = dict(
    spec={"kind": "longformer", "window": 2, "global_tokens": [4], "causal": True}, N=12, H=2, e=2,
    score="softmax")
SPARSE_CASES["bigbird_no_random_pad"] = dict(
    spec={"kind": "bigbird", "block": 3, "window_blocks": 3, "global_blocks": 1, "random_blocks": 0},
    N=17, H=2, e=3, score="softmax", pad={0: 4})
SPARSE_CASES["bigbird_no_random_causal_linear"] = dict(
    spec={"kind": "bigbird", "block": 4, "window_blocks": 1, "global_blocks": 2, "random_blocks": 0,
          "causal": True}, N=23, H=2, e=2, score="linear")
SPARSE_CASES["bigbird_random_pattern"] = dict(  # pattern only: the C++ test adds its Philox random blocks
    spec={"kind": "bigbird", "block": 3, "window_blocks": 3, "global_blocks": 1, "random_blocks": 2,
          "seed": 11}, N=26, H=3, e=2, score=None)
SPARSE_CASES["bigbird_random_causal_pattern"] = dict(
    spec={"kind": "bigbird", "block": 2, "window_blocks": 1, "global_blocks": 1, "random_blocks": 2,
          "seed": 3, "causal": True}, N=19, H=2, e=2, score=None)
SPARSE_CASES["block_local_linear_pad"] = dict(
    spec={"kind": "block_local", "block": 4}, N=13, H=2, e=3, score="linear", pad={1: 3})
SPARSE_CASES["strided_merged"] = dict(
    spec={"kind": "strided", "stride": 4}, N=13, H=2, e=3, score="softmax")
SPARSE_CASES["strided_causal_multihead_pad"] = dict(
    spec={"kind": "strided", "stride": 3, "causal": True, "heads_mode": "multihead"}, N=14, H=2, e=3,
    score="softmax", pad={1: 4})
SPARSE_CASES["strided_causal_merged_linear"] = dict(
    spec={"kind": "strided", "stride": 4, "causal": True}, N=15, H=2, e=2, score="linear")
SPARSE_CASES["strided_interleaved_layer1"] = dict(
    spec={"kind": "strided", "stride": 3, "heads_mode": "interleaved"}, N=11, H=2, e=3, score="softmax",
    layer=1)
SPARSE_CASES["fixed_multihead_np2_pad"] = dict(  # heads 1 and 3 use A2 with sub-blocks v = 0 and 1
    spec={"kind": "fixed", "stride": 4, "summary": 1, "num_patterns": 2, "heads_mode": "multihead"},
    N=14, H=4, e=2, score="softmax", pad={1: 3})
SPARSE_CASES["fixed_multihead_np2_causal"] = dict(
    spec={"kind": "fixed", "stride": 5, "summary": 2, "num_patterns": 2, "heads_mode": "multihead",
          "causal": True}, N=13, H=4, e=2, score="softmax")
SPARSE_CASES["fixed_merged_np2_causal_pad"] = dict(
    spec={"kind": "fixed", "stride": 5, "summary": 2, "num_patterns": 2, "causal": True}, N=13, H=2, e=3,
    score="softmax", pad={0: 3})
SPARSE_CASES["fixed_interleaved_layer1_causal_linear"] = dict(  # A2 only: rows before a summary column empty
    spec={"kind": "fixed", "stride": 4, "summary": 2, "num_patterns": 2, "heads_mode": "interleaved",
          "causal": True}, N=11, H=2, e=2, score="linear", layer=1)
SPARSE_CASES["fixed_interleaved_layer1_causal"] = dict(
    spec={"kind": "fixed", "stride": 4, "summary": 1, "num_patterns": 2, "heads_mode": "interleaved",
          "causal": True}, N=11, H=2, e=2, score="softmax", layer=1, pad={1: 2})
SPARSE_CASES["fixed_multihead_no_summary_in_range"] = dict(  # N < first summary column: head 1 sees nothing
    spec={"kind": "fixed", "stride": 8, "summary": 2, "heads_mode": "multihead"}, N=6, H=2, e=2,
    score="softmax")

_BERT_SPARSE = dict(
    model_type="bert", vocab_size=37, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
    intermediate_size=32, max_position_embeddings=16, num_labels=3, hidden_act="gelu",
    layer_norm_eps=1e-12, classifier_bias=True, **_NO_DROPOUT,
)
SPARSE_MODEL_CASES = OrderedDict()
SPARSE_MODEL_CASES["bert_sparse_sliding_window"] = (dict(
    _BERT_SPARSE, attention={"type": "sparse", "pattern": "sliding_window", "window": 2}), {"pad": {1: 5}})
# Layer 0 uses A1 (blocks of 4), layer 1 A2 (every row of head 0 sees columns 3, 7, 11, of head 1 columns
# 2, 6, 10: the layer index and the head variant must reach the model). Bidirectional: the model config's
# `causal` must equal the pattern's, and the reference BERT has no causal mode.
SPARSE_MODEL_CASES["bert_sparse_fixed_interleaved"] = (dict(
    _BERT_SPARSE, attention={"type": "sparse", "pattern": "fixed", "stride": 4, "summary": 1,
                             "num_patterns": 2, "heads_mode": "interleaved"}), {"N": 13, "pad": {1: 3}})


def run_sparse_case(name, case):
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    B, N, H, e = 2, case["N"], case["H"], case["e"]
    spec, layer, score = case["spec"], case.get("layer", 0), case["score"]
    tensors = OrderedDict()
    if score is None:
        # BigBird with random blocks: only the deterministic part; the C++ test adds its own random blocks.
        s = sparse_reference.resolve(spec)
        base = sparse_reference.bigbird_mask(s, N)
        tensors["mask"] = base.unsqueeze(0).expand(H, N, N).to(torch.int64).contiguous()
        return tensors
    mask = sparse_reference.pattern_masks(spec, N, H, layer)
    tensors["mask"] = mask.to(torch.int64)
    q, k, v, dout = (torch.randn(B, N, H * e, generator=gen, dtype=DTYPE) for _ in range(4))
    key_valid = None
    if case.get("pad"):
        key_valid = torch.ones(B, N, dtype=DTYPE)
        for row, npad in case["pad"].items():
            key_valid[row, N - npad:] = 0
    o, lse, dq, dk, dv = sparse_reference.attention_with_grads(score, q, k, v, mask, H, key_valid, dout)
    for key, t in (("q", q), ("k", k), ("v", v), ("dout", dout), ("key_valid", key_valid), ("o", o),
                   ("lse", lse), ("dq", dq), ("dk", dk), ("dv", dv)):
        if t is not None:
            tensors[key] = t
    for key, t in tensors.items():
        if key != "lse":
            assert torch.isfinite(t.to(DTYPE)).all(), f"{name}: {key} is not finite"
    return tensors


def write_sparse_goldens(outdir):
    assert sparse_reference.self_check()
    for name, case in SPARSE_CASES.items():
        tensors = run_sparse_case(name, case)
        meta = {"case": name, "pattern": sparse_reference.spec_string(case["spec"]), "heads": str(case["H"]),
                "layer": str(case.get("layer", 0)), "score": case["score"] or "none"}
        save_file(tensors, os.path.join(outdir, "sparse_" + name + ".safetensors"), metadata=meta)
        m = tensors["mask"]
        empty = int((m.sum(-1) == 0).sum())
        print(f"sparse_{name}: {meta['pattern']}, H={case['H']} N={case['N']}, nnz={int(m.sum())}, "
              f"empty rows={empty}, score={meta['score']}")
    for name, (config, opts) in SPARSE_MODEL_CASES.items():
        tensors = run_case(name, config, opts)
        meta = {"config": json.dumps(config, sort_keys=True), "case": name}
        save_file(tensors, os.path.join(outdir, name + ".safetensors"), metadata=meta)
        print(f"{name}: {len(tensors)} tensors, loss={tensors['out.loss'].item():.12g}")
    with open(os.path.join(outdir, "sparse_cases.txt"), "w") as f:
        for name in list(SPARSE_CASES) + list(SPARSE_MODEL_CASES):
            f.write(name + "\n")


def random_params(shapes, gen):
    """Well-conditioned random weights: matrices/embeddings N(0, 0.3^2), DANet W_Q N(0, 0.5^2) so the
    attention term is visible, norm gains 1 + 0.1 N(0,1), biases 0.1 N(0,1)."""
    params = OrderedDict()
    for name, shape in shapes.items():
        z = torch.randn(shape, generator=gen, dtype=DTYPE)
        if name.endswith(".bias"):
            t = 0.1 * z
        elif len(shape) == 1:  # every 1-D non-bias parameter is a norm gain
            t = 1.0 + 0.1 * z
        elif name.endswith("attention.queries"):
            t = 0.5 * z
        else:
            t = 0.3 * z
        params[name] = t.requires_grad_(True)
    return params


def random_pair_inputs(cfg, opts, gen, B=2):
    """Two documents of the same shape [B, N] and class labels; no MLM labels (pair_matching)."""
    N = opts.get("N", 16)
    vocab = cfg["vocab_size"]
    inputs = OrderedDict()
    for suffix, pad_key in (("", "pad"), ("2", "pad2")):
        ids = torch.randint(0, vocab, (B, N), generator=gen, dtype=torch.int64)
        mask = torch.ones(B, N, dtype=torch.int64)
        for row, npad in opts.get(pad_key, {}).items():
            mask[row, N - npad:] = 0  # padding at the END of the row
        inputs["input_ids" + suffix] = ids
        inputs["attention_mask" + suffix] = mask
    inputs["class_labels"] = torch.randint(0, cfg["num_labels"], (B,), generator=gen, dtype=torch.int64)
    return inputs


def random_inputs(cfg, opts, gen, B=2):
    if opts.get("pair"):
        return random_pair_inputs(cfg, opts, gen, B)
    N = opts.get("N", 16)
    vocab = cfg["vocab_size"]
    ids = torch.randint(0, vocab, (B, N), generator=gen, dtype=torch.int64)
    mask = torch.ones(B, N, dtype=torch.int64)
    for row, npad in opts.get("pad", {}).items():
        mask[row, N - npad:] = 0  # padding at the END of the row
    labels = torch.full((B, N), -1, dtype=torch.int64)
    for b in range(B):
        n_real = int(mask[b].sum())
        k = max(1, round(0.3 * n_real))
        pos = torch.randperm(n_real, generator=gen)[:k]
        labels[b, pos] = torch.randint(0, vocab, (k,), generator=gen, dtype=torch.int64)
    inputs = OrderedDict()
    inputs["input_ids"] = ids
    inputs["attention_mask"] = mask
    if opts.get("token_types"):
        inputs["token_type_ids"] = torch.randint(0, 2, (B, N), generator=gen, dtype=torch.int64)
    inputs["mlm_labels"] = labels
    nl = cfg["num_labels"]
    if nl == 1:
        inputs["class_labels"] = torch.randn(B, generator=gen, dtype=DTYPE)
    else:
        inputs["class_labels"] = torch.randint(0, nl, (B,), generator=gen, dtype=torch.int64)
    return inputs


def run_case(name, config, opts):
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    model = build_reference_model(config)
    params = random_params(model.param_shapes(), gen)
    inputs = random_inputs(model.cfg, opts, gen)
    out = model.forward(params, **inputs)
    out["loss"].backward()

    tensors = OrderedDict()
    for k, v in inputs.items():
        tensors["input." + k] = v
    for k, v in params.items():
        tensors["param." + k] = v.detach()
    for k in ("sequence_output", "mlm_logits", "pooled", "class_logits", "loss"):
        if k == "mlm_logits" and opts.get("pair"):
            continue  # no MLM with two documents per example
        tensors["out." + k] = out[k].detach()
    for k, v in params.items():
        if v.grad is None:  # unused parameter: its gradient is exactly zero
            tensors["grad." + k] = torch.zeros_like(v.detach())
        else:
            tensors["grad." + k] = v.grad.detach()
    for k, v in tensors.items():
        assert torch.isfinite(v.to(DTYPE)).all(), f"{name}: {k} is not finite"
    return tensors


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.set_default_dtype(DTYPE)
    for name, (config, opts) in CASES.items():
        tensors = run_case(name, config, opts)
        meta = {"config": json.dumps(config, sort_keys=True), "case": name}
        save_file(tensors, os.path.join(outdir, name + ".safetensors"), metadata=meta)
        n_masked = tensors["out.mlm_logits"].shape[0] if "out.mlm_logits" in tensors else "none (pair)"
        print(f"{name}: {len(tensors)} tensors, n_masked={n_masked}, loss={tensors['out.loss'].item():.12g}")
    with open(os.path.join(outdir, "cases.txt"), "w") as f:
        for name in CASES:
            f.write(name + "\n")
    write_sparse_goldens(outdir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
