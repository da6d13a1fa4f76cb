#!/usr/bin/python3
"""Export a densetrain DANet or BERT encoder, with its MLM head or its classification head, to ONNX.

    /usr/bin/python3 scripts/export_onnx.py CHECKPOINT OUT.onnx --head mlm|classifier [--config CFG] [--vocab VOCAB]

CHECKPOINT is a checkpoint folder (runs/x/checkpoints/step-N), a run folder (its newest step-N) or a
.safetensors file (dense-train's model.safetensors, dense-eval's seed-<s>/model.safetensors). CFG is the model
config: a dense-train/dense-eval YAML config (its `model:` section, `include:` resolved) or a bare model section
(configs/models/*.json); by default the run's config.yaml next to the checkpoint.

The graph is written node by node with onnx.helper rather than traced with torch.onnx: the exported function is
the one the independent references (tests/reference/danet_reference.py, bert_reference.py) define, op for op,
without a tracer freezing the data-dependent branches of the DANet forward (the shifted-window layer takes another
path for short rows, chunk padding depends on the length) into constants of one example length, and without
needing onnxscript / a torch build with the ONNX exporter (Debian's python3-torch has none of it; python3-onnx is
enough).

Graph: opset 17 (ONNX 1.12, Debian's python3-onnx), IR version 8, float32. Inputs `input_ids` and
`attention_mask` (int64, [batch, sequence], both axes dynamic), plus `token_type_ids` for a DANet with
`token_type_embeddings`. Output `logits`: [batch, sequence, V] for `--head mlm` (V: the tokens of --vocab, or the
padded model vocabulary without it: the padding rows are no tokens), [batch, num_labels] for `--head classifier`.
Dropout is the identity (inference). Layout of the computation and what is not supported: docs/export.md.

Exit status: 0 on success, 2 on any error (one line `export_onnx: error: ...` naming the file / key).
"""

import argparse
import math
import os
import sys

import numpy as np

PROG = "export_onnx"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE_DIR = os.path.join(REPO, "tests", "reference")
OPSET = 17
IR_VERSION = 8


class ExportError(Exception):
    """A user-facing error: printed as `export_onnx: error: ...`, exit status 2."""


def _module(name, path):
    import importlib.util
    if REFERENCE_DIR not in sys.path:
        sys.path.insert(0, REFERENCE_DIR)
    if name in sys.modules:
        return sys.modules[name]
    if not os.path.isfile(path):
        raise ExportError(f"{path}: missing (the exporter needs the repository's scripts/ and tests/reference/)")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def converter():
    return _module("convert_reference_checkpoint", os.path.join(REPO, "scripts", "convert_reference_checkpoint.py"))


def reference(name):
    return _module(name, os.path.join(REFERENCE_DIR, name + ".py"))


# ------------------------------------------------------------------------------------------------
# Reading a checkpoint and its config
# ------------------------------------------------------------------------------------------------

def find_weights(path):
    """CHECKPOINT -> (safetensors file, folder whose config.yaml is the default config or None)."""
    if os.path.isfile(path):
        return path, None
    if not os.path.isdir(path):
        raise ExportError(f"{path}: no such file or folder (expected a model.safetensors, a checkpoint folder "
                          f"step-N or a run folder)")
    if os.path.isfile(os.path.join(path, "model.safetensors")):
        return os.path.join(path, "model.safetensors"), path
    ck = os.path.join(path, "checkpoints")
    if os.path.isdir(ck):
        steps = sorted(d for d in os.listdir(ck) if d.startswith("step-") and
                       os.path.isfile(os.path.join(ck, d, "model.safetensors")))
        if steps:
            return os.path.join(ck, steps[-1], "model.safetensors"), path
    raise ExportError(f"{path}: a folder without model.safetensors or checkpoints/step-N/model.safetensors")


def default_config(weights, folder):
    """The run's config.yaml: in the folder given, or two levels above a step-N checkpoint folder."""
    cands = []
    base = folder or os.path.dirname(os.path.abspath(weights))
    cands.append(os.path.join(base, "config.yaml"))
    cands.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(base))), "config.yaml"))
    for c in cands:
        if os.path.isfile(c):
            return c
    raise ExportError(f"{weights}: no config.yaml beside the checkpoint ({' or '.join(cands)}); give --config")


def load_weights(path):
    sio = reference("safetensors_io")
    try:
        tensors, meta = sio.load_file(path)
    except (OSError, ValueError, KeyError) as e:
        raise ExportError(f"{path}: cannot read as safetensors ({e})") from e
    return {k: v.detach().cpu().to(dtype=__import__("torch").float32).numpy() for k, v in tensors.items()}, meta


# Keys of dense-train's model section that do not change the inference function.
INFERENCE_NEUTRAL = ("hidden_dropout_prob", "attention_probs_dropout_prob", "embedding_dropout", "initializer_range")


def resolve_model(section, cfg_path, weights, weights_path):
    """The resolved reference config for these weights: heads and position length taken from the tensors."""
    section = dict(section)
    att = section.pop("attention", None)
    if att is not None:
        kind = att.get("type", "dense") if isinstance(att, dict) else att
        if kind != "dense":
            raise ExportError(f"{cfg_path}: model.attention type {kind!r}: sparse-pattern attention is not exported "
                              f"(only dense attention; see docs/export.md)")
    # dense-train's config.yaml lists every key of both families; the other family's keys do not enter this
    # model's forward pass (pair_matching, the one that would, is refused for both).
    mt0 = section.get("model_type", "danet")
    if mt0 == "bert":
        if section.get("pair_matching"):
            raise ExportError(f"{cfg_path}: model.pair_matching: true is not exported")
        dr, br = reference("danet_reference"), reference("bert_reference")
        for k in list(section):
            if k in dr.DANET_DEFAULTS and k not in br.BERT_DEFAULTS:
                section.pop(k)
    elif mt0 == "danet":
        for k in ("hidden_act", "layer_norm_eps"):
            section.pop(k, None)
    # The weights decide what the model is where dense-eval fine-tuning changed it (num_labels from the data,
    # max_position_embeddings widened for longer rows).
    if "classifier.weight" in weights:
        section["num_labels"] = int(weights["classifier.weight"].shape[0])
        section["classifier_bias"] = "classifier.bias" in weights
    if "embeddings.position_embeddings.weight" in weights:
        section["max_position_embeddings"] = int(weights["embeddings.position_embeddings.weight"].shape[0])
    try:
        mt, cfg, shapes = converter().expected_shapes(section, cfg_path)
    except converter().ConvertError as e:
        raise ExportError(str(e)) from e
    missing = [n for n in shapes if n not in weights]
    if missing:
        raise ExportError(f"{weights_path}: {len(missing)} tensor(s) of the {mt} model of {cfg_path} missing, e.g. "
                          f"{', '.join(repr(n) for n in missing[:5])}")
    for n, s in shapes.items():
        if tuple(weights[n].shape) != tuple(s):
            raise ExportError(f"{weights_path}: tensor {n!r} has shape {list(weights[n].shape)}, the model of "
                              f"{cfg_path} needs {list(s)}")
    return mt, cfg


def read_vocab(path):
    with open(path, "r", encoding="utf-8") as f:
        toks = [ln.rstrip("\r\n") for ln in f]
    while toks and toks[-1] == "":
        toks.pop()
    if not toks:
        raise ExportError(f"{path}: an empty vocabulary")
    return toks


# ------------------------------------------------------------------------------------------------
# Graph building
# ------------------------------------------------------------------------------------------------

class Graph:
    def __init__(self):
        from onnx import helper
        self.helper = helper
        self.nodes, self.inits, self.count = [], [], 0
        self.consts = {}

    def fresh(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def op(self, op_type, inputs, hint=None, **attrs):
        out = self.fresh(hint or op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def init(self, array, name):
        from onnx import numpy_helper
        arr = np.asarray(array)
        # (np.ascontiguousarray would turn a 0-d scalar into shape [1])
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr) if arr.ndim else arr.copy(), name))
        return name

    def f32(self, value):
        key = ("f", float(value))
        if key not in self.consts:
            self.consts[key] = self.init(np.array(value, dtype=np.float32), self.fresh("cf"))
        return self.consts[key]

    def i64(self, values):
        arr = np.array(values, dtype=np.int64)
        key = ("i", arr.shape, tuple(arr.reshape(-1).tolist()))
        if key not in self.consts:
            self.consts[key] = self.init(arr, self.fresh("ci"))
        return self.consts[key]

    # small helpers
    def matmul(self, a, b):
        return self.op("MatMul", [a, b])

    def add(self, a, b):
        return self.op("Add", [a, b])

    def mul(self, a, b):
        return self.op("Mul", [a, b])

    def div(self, a, b):
        return self.op("Div", [a, b])

    def slice(self, x, starts, ends, axes):
        return self.op("Slice", [x, starts, ends, axes])

    def reduce_mean(self, x, axis=-1):
        return self.op("ReduceMean", [x], axes=[axis], keepdims=1)

    def reduce_max(self, x, axis=-1):
        return self.op("ReduceMax", [x], axes=[axis], keepdims=1)

    def reduce_sum(self, x, axis):
        return self.op("ReduceSum", [x, self.i64([axis])], keepdims=1)

    def dim(self, x, axis):
        """A 1-element int64 tensor holding x.shape[axis]."""
        return self.op("Shape", [x], start=axis, end=axis + 1)


def activation(g, name, x):
    if name in ("gelu", "legacy_gelu"):       # exact erf form (legacy_gelu: the same in f32)
        e = g.op("Erf", [g.mul(x, g.f32(1.0 / math.sqrt(2.0)))])
        return g.mul(g.mul(x, g.f32(0.5)), g.add(e, g.f32(1.0)))
    if name == "gelu_tanh":
        x3 = g.mul(g.mul(x, x), x)
        inner = g.mul(g.add(x, g.mul(x3, g.f32(0.044715))), g.f32(math.sqrt(2.0 / math.pi)))
        return g.mul(g.mul(x, g.f32(0.5)), g.add(g.op("Tanh", [inner]), g.f32(1.0)))
    if name == "relu":
        return g.op("Relu", [x])
    if name == "tanh":
        return g.op("Tanh", [x])
    if name == "silu":
        return g.mul(x, g.op("Sigmoid", [x]))
    if name == "leaky_relu":
        return g.op("LeakyRelu", [x], alpha=0.01)
    if name == "leaky_relu_0.1":
        return g.op("LeakyRelu", [x], alpha=0.1)
    if name == "hardtanh":
        return g.op("Clip", [x, g.f32(-1.0), g.f32(1.0)])
    if name in ("identity", "no_ln", None):
        return x
    raise ExportError(f"activation {name!r} has no ONNX form here")


def max_norm(g, x, eps):
    # Only the VALUE max|x| enters the forward pass; which argmax index wins matters for the backward alone.
    s = g.add(g.reduce_max(g.op("Abs", [x])), g.f32(eps))
    return g.div(x, s)


def norm(g, name, x, weight):
    """The DANet norm registry (tests/reference/danet_reference.py apply_norm). weight: initializer name or None."""
    if name is None or name in ("no_ln", "identity"):
        return x
    if name == "max_norm":
        return max_norm(g, x, 1e-3)
    if name == "scaled_max_norm":
        return g.mul(max_norm(g, x, 1e-12), weight)
    if name == "prescaled_max_norm":
        return max_norm(g, g.mul(x, weight), 1e-12)
    if name in ("uncentered_ln", "uncentered_fixed_ln"):
        y = g.div(x, g.add(g.reduce_mean(g.op("Abs", [x])), g.f32(1e-12)))
        return g.mul(y, weight) if name == "uncentered_ln" else y
    if name == "standard_ln":
        return layer_norm(g, x, weight, None, 1e-12)
    return activation(g, name, x)


def layer_norm(g, x, weight, bias, eps):
    # Written out (not LayerNormalization) so that the biased variance and the eps inside the sqrt are visibly
    # those of the references.
    xc = g.op("Sub", [x, g.reduce_mean(x)])
    var = g.reduce_mean(g.mul(xc, xc))
    y = g.mul(g.div(xc, g.op("Sqrt", [g.add(var, g.f32(eps))])), weight)
    return g.add(y, bias) if bias else y


def linear(g, x, w_t, b=None):
    y = g.matmul(x, w_t)
    return g.add(y, b) if b else y


class Exporter:
    def __init__(self, mt, cfg, weights, head, vocab_tokens):
        from onnx import TensorProto
        self.TP = TensorProto
        self.mt, self.cfg, self.w, self.head = mt, cfg, weights, head
        self.g = Graph()
        self.names = {}
        self.vocab_tokens = vocab_tokens

    def W(self, name, transpose=False):
        """An initializer for parameter `name` (transposed copies are stored as `name.T`: MatMul wants [in, out])."""
        key = name + (".T" if transpose else "")
        if key not in self.names:
            a = self.w[name]
            self.names[key] = self.g.init(np.ascontiguousarray(a.T if transpose else a).astype(np.float32), key)
        return self.names[key]

    def Wopt(self, name):
        return self.W(name) if name in self.w else None

    # ---- shared pieces ----
    def inputs(self):
        g = self.g
        self.ids = "input_ids"
        self.mask = "attention_mask"
        self.mask_f = g.op("Cast", [self.mask], to=self.TP.FLOAT)
        self.N = g.dim(self.ids, 1)          # [1] int64

    def mlm_logits(self, seq, act, norm_fn):
        g = self.g
        V = self.w["embeddings.word_embeddings.weight"].shape[0]
        Vout = self.vocab_tokens or V
        if Vout > V:
            raise ExportError(f"the vocabulary has {Vout} tokens, the model's word table {V} rows")
        t = activation(g, act, linear(g, seq, self.W("lm_head.transform.dense.weight", True),
                                      self.Wopt("lm_head.transform.dense.bias")))
        t = norm_fn(t)
        # The decoder is the word table (tied); sliced to the real tokens in-graph so the table is stored once.
        table = self.W("embeddings.word_embeddings.weight")
        if Vout < V:
            table = g.slice(table, g.i64([0]), g.i64([Vout]), g.i64([0]))
            bias = g.slice(self.W("lm_head.bias"), g.i64([0]), g.i64([Vout]), g.i64([0]))
        else:
            bias = self.W("lm_head.bias")
        dec = g.op("Transpose", [table], perm=[1, 0])
        return g.add(g.matmul(t, dec), bias), Vout

    def classifier(self, pooled):
        g = self.g
        return linear(g, pooled, self.W("classifier.weight", True), self.Wopt("classifier.bias"))

    def build(self, opset=OPSET):
        from onnx import helper
        self.inputs()
        seq = self.bert_encoder() if self.mt == "bert" else self.danet_encoder()
        if self.head == "mlm":
            if self.mt == "bert":
                eps = float(self.cfg["layer_norm_eps"])
                logits, V = self.mlm_logits(seq, "gelu", lambda t: layer_norm(
                    self.g, t, self.W("lm_head.transform.norm.weight"), self.W("lm_head.transform.norm.bias"), eps))
            else:
                c = self.cfg
                logits, V = self.mlm_logits(seq, c["lm_head_act"], lambda t: norm(
                    self.g, c["lm_head_ln_type"], t, self.Wopt("lm_head.transform.norm.weight")))
            out_shape = ["batch", "sequence", V]
        else:
            pooled = self.bert_pooler(seq) if self.mt == "bert" else self.danet_pooler(seq)
            logits = self.classifier(pooled)
            out_shape = ["batch", int(self.cfg["num_labels"])]
        self.g.nodes.append(helper.make_node("Identity", [logits], ["logits"]))
        ins = [helper.make_tensor_value_info("input_ids", self.TP.INT64, ["batch", "sequence"]),
               helper.make_tensor_value_info("attention_mask", self.TP.INT64, ["batch", "sequence"])]
        if self.mt == "danet" and self.cfg["token_type_embeddings"]:
            ins.append(helper.make_tensor_value_info("token_type_ids", self.TP.INT64, ["batch", "sequence"]))
        outs = [helper.make_tensor_value_info("logits", self.TP.FLOAT, out_shape)]
        graph = helper.make_graph(self.g.nodes, f"densetrain_{self.mt}_{self.head}", ins, outs,
                                  initializer=self.g.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                                  producer_name="densetrain scripts/export_onnx.py")
        model.ir_version = IR_VERSION
        return model

    # ---- BERT (bert_reference.py) ----
    def bert_encoder(self):
        g, c = self.g, self.cfg
        d, H = c["hidden_size"], c["num_attention_heads"]
        e, eps = d // H, float(c["layer_norm_eps"])
        x = g.op("Gather", [self.W("embeddings.word_embeddings.weight"), self.ids], axis=0)
        pos = g.slice(self.W("embeddings.position_embeddings.weight"), g.i64([0]), self.N, g.i64([0]))
        x = layer_norm(g, g.add(x, pos), self.W("embeddings.norm.weight"), self.W("embeddings.norm.bias"), eps)
        # Keys with mask 0 get -inf before the softmax (as the reference; a row without any real key is NaN there too).
        keep = g.op("Unsqueeze", [g.op("Cast", [self.mask], to=self.TP.BOOL), g.i64([1, 2])])   # [B,1,1,N]
        neg = g.init(np.array(-np.inf, dtype=np.float32), "neg_inf")
        heads_shape = g.i64([0, 0, H, e])
        merge_shape = g.i64([0, 0, d])
        for i in range(c["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            h = layer_norm(g, x, self.W(p + "attention_norm.weight"), self.W(p + "attention_norm.bias"), eps)

            def proj(name):
                y = linear(g, h, self.W(p + f"attention.{name}.weight", True), self.W(p + f"attention.{name}.bias"))
                return g.op("Transpose", [g.op("Reshape", [y, heads_shape])], perm=[0, 2, 1, 3])

            q, k, v = proj("query"), proj("key"), proj("value")
            s = g.mul(g.matmul(q, g.op("Transpose", [k], perm=[0, 1, 3, 2])), g.f32(1.0 / math.sqrt(e)))
            s = g.op("Where", [keep, s, neg])
            ctx = g.matmul(g.op("Softmax", [s], axis=-1), v)
            ctx = g.op("Reshape", [g.op("Transpose", [ctx], perm=[0, 2, 1, 3]), merge_shape])
            x = g.add(x, linear(g, ctx, self.W(p + "attention.output.weight", True), self.W(p + "attention.output.bias")))
            h = layer_norm(g, x, self.W(p + "ffn_norm.weight"), self.W(p + "ffn_norm.bias"), eps)
            h = activation(g, c["hidden_act"], linear(g, h, self.W(p + "ffn.dense_in.weight", True),
                                                      self.W(p + "ffn.dense_in.bias")))
            x = g.add(x, linear(g, h, self.W(p + "ffn.dense_out.weight", True), self.W(p + "ffn.dense_out.bias")))
        return layer_norm(g, x, self.W("encoder.final_norm.weight"), self.W("encoder.final_norm.bias"), eps)

    def bert_pooler(self, seq):
        g = self.g
        first = g.op("Gather", [seq, g.i64(0)], axis=1)
        return g.op("Tanh", [linear(g, first, self.W("pooler.dense.weight", True), self.W("pooler.dense.bias"))])

    # ---- DANet (danet_reference.py) ----
    def check_danet(self):
        c = self.cfg
        if c["pair_matching"]:
            raise ExportError("model.pair_matching: true (LRA Retrieval's two-document matching head) is not exported: "
                              "its inputs are two documents, which no fill-mask / text-classification client passes")
        if "sw" in c["_layer_types"]:
            raise ExportError("model.local_scheme code 'sw' (causal sliding window) is not exported")
        if c["pos_emb_type"] == "relpe" and c["relpe_type"] == "cos_minus_sin":
            pass  # supported below

    def relpe_tables(self):
        """cos / sin (rope) tables [max_pos, d] computed in float64 as densetrain does, stored as float32."""
        c = self.cfg
        d, H = c["hidden_size"], c["num_attention_heads"]
        e, P, kind = d // H, c["max_position_embeddings"], c["relpe_type"]
        if kind in ("cosine", "cos_minus_sin"):
            theta = np.power(10000.0, -np.arange(e, dtype=np.float64) / e)
        else:
            half = np.power(10000.0, -2.0 * np.arange(e // 2, dtype=np.float64) / e)
            theta = np.concatenate([half, half])
        ang = np.arange(P, dtype=np.float64)[:, None] * np.tile(theta, H)[None, :]
        if kind == "cosine":
            return {"mul": self.g.init(np.cos(ang).astype(np.float32), "relpe_cos")}
        if kind == "cos_minus_sin":
            return {"mul": self.g.init((np.cos(ang) - np.sin(ang)).astype(np.float32), "relpe_cos_minus_sin")}
        return {"mul": self.g.init(np.cos(ang).astype(np.float32), "rope_cos"),
                "sin": self.g.init(np.sin(ang).astype(np.float32), "rope_sin")}

    def apply_relpe(self, x, tabs):
        """x [..., n, d]; tabs: the tables gathered at the rows' positions, broadcastable to x."""
        g = self.g
        y = g.mul(x, tabs["mul"])
        if "sin" in tabs:
            d = self.cfg["hidden_size"]
            # GPT-NeoX half split over the whole hidden dim (the reference's RoPE), not per head.
            lo = g.slice(x, g.i64([0]), g.i64([d // 2]), g.i64([-1]))
            hi = g.slice(x, g.i64([d // 2]), g.i64([d]), g.i64([-1]))
            rot = g.op("Concat", [g.op("Neg", [hi]), lo], axis=-1)
            y = g.add(y, g.mul(rot, tabs["sin"]))
        return y

    def gather_tables(self, positions):
        if not self.relpe_codes:
            return None
        return {k: self.g.op("Gather", [t, positions], axis=0) for k, t in self.tables.items()}

    def project(self, A, Wq_t, tabs):
        g, codes = self.g, self.relpe_codes
        if "qkv" in codes:
            A = self.apply_relpe(A, tabs)
        Q = g.matmul(A, Wq_t)
        if "q" in codes:
            Q = self.apply_relpe(Q, tabs)
        K = self.apply_relpe(A, tabs) if "k" in codes else A
        V = self.apply_relpe(A, tabs) if "v" in codes else A
        return Q, K, V

    def kernel(self, q, k, v, kind):
        g = self.g
        r = self.head_rank
        kt = g.op("Transpose", [k], perm=list(range(r - 2)) + [r - 1, r - 2])
        if kind == "causal":
            return g.matmul(g.op("Trilu", [g.matmul(q, kt)], upper=0), v)
        if kind == "linear":
            return g.matmul(q, g.matmul(kt, v))
        return g.matmul(g.matmul(q, kt), v)

    def global_attention(self, A, Wq_t, kind):
        """Whole sequence, positions 0..N-1. A [B, N, d]."""
        g = self.g
        H, e, d = self.H, self.e, self.d
        positions = g.op("Range", [g.i64(0), g.op("Squeeze", [self.N]), g.i64(1)])
        Q, K, V = self.project(A, Wq_t, self.gather_tables(positions))
        self.head_rank = 4
        split = g.i64([0, 0, H, e])

        def heads(x):
            return g.op("Transpose", [g.op("Reshape", [x, split])], perm=[0, 2, 1, 3])

        O = self.kernel(heads(Q), heads(K), heads(V), kind)
        return g.op("Reshape", [g.op("Transpose", [O], perm=[0, 2, 1, 3]), g.i64([0, 0, d])])

    def chunked_attention(self, A, Wq_t, C, local_positions, kind):
        """Chunks of length C (zero rows appended up to a multiple of C), RelPE positions restarting per chunk when
        local_positions. A [B, n, d] -> [B, n, d]."""
        g = self.g
        H, e, d = self.H, self.e, self.d
        n = g.dim(A, 1)
        cC = g.i64([C])
        pad = g.op("Mod", [g.op("Sub", [cC, g.op("Mod", [n, cC])]), cC])
        pads = g.op("Concat", [g.i64([0, 0, 0, 0]), pad, g.i64([0])], axis=0)
        Ap = g.op("Pad", [A, pads])
        n_pad = g.add(n, pad)
        positions = g.op("Range", [g.i64(0), g.op("Squeeze", [n_pad]), g.i64(1)])
        if local_positions:
            positions = g.op("Mod", [positions, g.i64(C)])
        Q, K, V = self.project(Ap, Wq_t, self.gather_tables(positions))
        self.head_rank = 5
        split = g.i64([0, -1, C, H, e])

        def heads(x):   # [B, n_pad, d] -> [B, nc, H, C, e]
            return g.op("Transpose", [g.op("Reshape", [x, split])], perm=[0, 1, 3, 2, 4])

        O = self.kernel(heads(Q), heads(K), heads(V), kind)
        O = g.op("Reshape", [g.op("Transpose", [O], perm=[0, 1, 3, 2, 4]), g.i64([0, -1, d])])
        return g.slice(O, g.i64([0]), n, g.i64([1]))

    def attention(self, A, Wq_t, lt):
        c, g = self.cfg, self.g
        if c["causal"]:
            gk = lk = "causal"
        else:
            gk = {"linear": "linear", "quadratic": "quadratic", "auto": "linear"}[c["attention_complexity"]]
            # local chunks have C rows: the reference's 'auto' picks linear iff e <= C
            lk = "linear" if self.e <= c["window_size"] else "quadratic"
        if lt == "g":
            return self.global_attention(A, Wq_t, gk)
        w, local_pos = c["window_size"], bool(c["local_relpe"])
        if lt == "l":
            # For N <= w this is one zero-padded chunk with positions 0..N-1: the reference's global branch exactly.
            return self.chunked_attention(A, Wq_t, w, local_pos, lk)
        # 'sl': windows shifted by w/2; rows of N <= w/2 take the unshifted global path (another RelPE position
        # origin), so both are computed and the length picks one.
        h = w // 2
        Ap = g.op("Pad", [A, g.i64([0, h, 0, 0, h, 0])])
        shifted = self.chunked_attention(Ap, Wq_t, w, local_pos, lk)
        shifted = g.slice(shifted, g.i64([h]), g.add(self.N, g.i64([h])), g.i64([1]))
        short = self.global_attention(A, Wq_t, lk)
        is_short = g.op("LessOrEqual", [g.op("Squeeze", [self.N]), g.i64(h)])
        return g.op("Where", [is_short, short, shifted])

    def ffn(self, p, Y):
        g, c = self.g, self.cfg
        if c["swiglu_ffn"]:
            U = g.matmul(Y, self.W(p + "ffn.up.weight", True))
            n = self.w[p + "ffn.up.weight"].shape[0] // 2
            a = g.slice(U, g.i64([0]), g.i64([n]), g.i64([-1]))
            b = g.slice(U, g.i64([n]), g.i64([2 * n]), g.i64([-1]))
            return g.matmul(g.mul(activation(g, "silu", a), b), self.W(p + "ffn.proj.weight", True))
        Hh = g.op("Relu", [g.matmul(Y, self.W(p + "ffn.w1"))])   # W1 [d, r d] used as stored
        return g.matmul(Hh, self.W(p + "ffn.w2"))

    def danet_encoder(self):
        self.check_danet()
        g, c = self.g, self.cfg
        self.d, self.H = c["hidden_size"], c["num_attention_heads"]
        self.e = self.d // self.H
        self.relpe_codes = c["_relpe_codes"] if c["pos_emb_type"] == "relpe" else ()
        self.tables = self.relpe_tables() if self.relpe_codes and c["relpe_type"] not in (None, "dummy") else {}
        if not self.tables:
            self.relpe_codes = ()
        x = g.op("Gather", [self.W("embeddings.word_embeddings.weight"), self.ids], axis=0)
        if c["pos_emb_type"] == "learned":
            x = g.add(x, g.slice(self.W("embeddings.position_embeddings.weight"), g.i64([0]), self.N, g.i64([0])))
        elif c["pos_emb_type"] == "sinusoidal":
            d, P = self.d, c["max_position_embeddings"]
            ang = np.arange(P, dtype=np.float64)[:, None] * np.power(
                10000.0, -2.0 * (np.arange(d) // 2).astype(np.float64) / d)[None, :]
            table = np.where(np.arange(d)[None, :] % 2 == 0, np.sin(ang), np.cos(ang)).astype(np.float32)
            x = g.add(x, g.slice(g.init(table, "sinusoidal_positions"), g.i64([0]), self.N, g.i64([0])))
        if c["token_type_embeddings"]:
            x = g.add(x, g.op("Gather", [self.W("embeddings.token_type_embeddings.weight"), "token_type_ids"], axis=0))
        x = norm(g, c["embedding_ln_type"], x, self.Wopt("embeddings.norm.weight"))
        # Mask scales: real rows / n_real^(1/3) for global layers, / w^(1/3) for local ones; padding rows 0.
        n_real = g.reduce_sum(self.mask_f, 1)
        m_global = g.op("Unsqueeze", [g.div(self.mask_f, g.op("Pow", [n_real, g.f32(1.0 / 3.0)])), g.i64([2])])
        m_local = g.op("Unsqueeze", [g.mul(self.mask_f, g.f32(1.0 / float(c["window_size"]) ** (1.0 / 3.0))),
                                     g.i64([2])])
        for i, lt in enumerate(c["_layer_types"]):
            p = f"encoder.layer.{i}."
            A = g.mul(norm(g, c["pre_attn_ln_type"], x, self.Wopt(p + "pre_norm.weight")),
                      m_global if lt == "g" else m_local)
            Y = self.attention(A, self.W(p + "attention.queries", True), lt)
            Z = self.ffn(p, Y)
            x = g.add(x, norm(g, c["post_attn_ln_type"], Z, self.Wopt(p + "post_norm.weight")))
        return norm(g, c["final_ln_type"], x, self.Wopt("encoder.final_norm.weight"))

    def danet_pooler(self, seq):
        g, c = self.g, self.cfg
        f = c["pooler_function"]
        if f == "first":
            P = g.op("Gather", [seq, g.i64(0)], axis=1)
        elif f == "mean":
            P = g.op("ReduceMean", [seq], axes=[1], keepdims=0)   # all N rows, pads included (reference)
        elif f == "max":
            P = g.op("ReduceMax", [seq], axes=[1], keepdims=0)
        else:
            m = g.op("Unsqueeze", [self.mask_f, g.i64([2])])
            P = g.div(g.op("ReduceSum", [g.mul(seq, m), g.i64([1])], keepdims=0), g.reduce_sum(self.mask_f, 1))
        if c["pooler_no_dense"]:
            return P
        P = activation(g, c["pooler_act"], g.matmul(P, self.W("pooler.dense.weight", True)))
        return norm(g, c["pooler_ln_type"], P, self.Wopt("pooler.norm.weight"))


def export(checkpoint, out, head, config=None, vocab=None, check=True):
    """Build and write the ONNX file; returns (model_type, resolved config, output vocabulary size or None)."""
    import onnx
    weights_path, folder = find_weights(checkpoint)
    cfg_path = config or default_config(weights_path, folder)
    try:
        section = converter().load_model_section(cfg_path)
    except converter().ConvertError as e:
        raise ExportError(str(e)) from e
    weights, _ = load_weights(weights_path)
    mt, cfg = resolve_model(section, cfg_path, weights, weights_path)
    if head not in ("mlm", "classifier"):
        raise ExportError(f"--head {head!r}: expected mlm or classifier")
    vocab_tokens = len(read_vocab(vocab)) if vocab else None
    ex = Exporter(mt, cfg, weights, head, vocab_tokens)
    model = ex.build()
    if check:
        onnx.checker.check_model(model)
    os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(model.SerializeToString())
    os.replace(tmp, out)
    return mt, cfg, vocab_tokens


def main(argv=None):
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="model.safetensors, a checkpoint folder step-N or a run folder")
    ap.add_argument("out", help="the .onnx file to write")
    ap.add_argument("--head", choices=("mlm", "classifier"), default="mlm",
                    help="mlm: per-token vocabulary logits; classifier: pooled sequence-classification logits")
    ap.add_argument("--config", help="the model config (YAML with model:, or a bare model JSON); default: the "
                                     "run's config.yaml")
    ap.add_argument("--vocab", help="vocab.txt: the MLM logits cover its tokens only (not the padding rows)")
    a = ap.parse_args(argv)
    try:
        mt, cfg, v = export(a.checkpoint, a.out, a.head, a.config, a.vocab)
    except ExportError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    print(f"{a.out}: {mt} encoder, {a.head} head, opset {OPSET}, inputs [batch, sequence]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
