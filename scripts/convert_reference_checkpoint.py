#!/usr/bin/python3
"""Convert a checkpoint of the reference PyTorch DenseAttention code to densetrain's weights format.

The reference implementation (github.com/andrewargatkiny/dense-attention, a DeepSpeed / NVIDIA-BERT derived
code base) saves PyTorch state dicts, usually inside DeepSpeed checkpoint folders. densetrain reads weights from
one safetensors file with its own tensor names (docs/model-config.md, "Parameter names"):

    /usr/bin/python3 scripts/convert_reference_checkpoint.py INPUT OUTPUT.safetensors [--model-config CFG]
    build/apps/dense-train --config CFG --init-from OUTPUT.safetensors

INPUT is a torch .pt/.bin file holding a state dict, or a dict with a "module" / "model" / "state_dict" entry
(DeepSpeed's mp_rank_00_model_states.pt has "module"), or a DeepSpeed checkpoint folder (the tag named by its
`latest` file is used). The name mapping, what is dropped and why, and every option: docs/checkpoints.md.

Exit status: 0 on success, 2 on any error (the message names the file and the tensor or key).
"""

import argparse
import collections
import difflib
import json
import io
import math
import os
import pickle
import re
import sys
import tempfile
import types

PROG = "convert_reference_checkpoint"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE_DIR = os.path.join(REPO, "tests", "reference")

DEEPSPEED_MODEL_FILE = "mp_rank_00_model_states.pt"
STATE_DICT_KEYS = ("module", "model", "state_dict")


class ConvertError(Exception):
    """A user-facing error: printed as `convert_reference_checkpoint: error: ...`, exit status 2."""


# ------------------------------------------------------------------------------------------------
# Helpers from tests/reference (imported by path: the converter runs from any working directory)
# ------------------------------------------------------------------------------------------------

def _reference_module(name):
    import importlib.util
    if REFERENCE_DIR not in sys.path:
        sys.path.insert(0, REFERENCE_DIR)  # bert_reference imports danet_reference by name
    if name in sys.modules:
        return sys.modules[name]
    path = os.path.join(REFERENCE_DIR, name + ".py")
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: missing (the converter needs the repository's tests/reference folder)")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


# ------------------------------------------------------------------------------------------------
# Reading the input
# ------------------------------------------------------------------------------------------------

def find_checkpoint_file(path):
    """INPUT (a file or a DeepSpeed checkpoint folder) -> the torch file to read."""
    if os.path.isfile(path):
        return path
    if not os.path.exists(path):
        raise ConvertError(f"{path}: no such file or folder")
    if not os.path.isdir(path):
        raise ConvertError(f"{path}: not a regular file or a folder")

    def model_file_in(folder):
        f = os.path.join(folder, DEEPSPEED_MODEL_FILE)
        if not os.path.isfile(f):
            return None
        others = sorted(n for n in os.listdir(folder) if re.fullmatch(r"mp_rank_\d+_model_states\.pt", n)
                        and n != DEEPSPEED_MODEL_FILE)
        if others:
            raise ConvertError(f"{folder}: a model-parallel DeepSpeed checkpoint ({len(others) + 1} mp_rank files); "
                               f"only single-rank model states ({DEEPSPEED_MODEL_FILE}) can be converted")
        return f

    f = model_file_in(path)
    if f:
        return f
    latest = os.path.join(path, "latest")
    if os.path.isfile(latest):
        with open(latest, "r", encoding="utf-8", errors="replace") as fh:
            tag = fh.read().strip()
        if not tag:
            raise ConvertError(f"{latest}: empty (it should name the checkpoint tag folder)")
        tag_dir = os.path.join(path, tag)
        if not os.path.isdir(tag_dir):
            raise ConvertError(f"{latest}: names tag '{tag}', but {tag_dir} is not a folder")
        f = model_file_in(tag_dir)
        if not f:
            raise ConvertError(f"{tag_dir}: no {DEEPSPEED_MODEL_FILE} (the tag named by {latest})")
        return f
    tags = sorted(d for d in os.listdir(path) if os.path.isfile(os.path.join(path, d, DEEPSPEED_MODEL_FILE)))
    if len(tags) == 1:
        return model_file_in(os.path.join(path, tags[0]))
    if tags:
        raise ConvertError(f"{path}: several DeepSpeed checkpoint tags ({', '.join(tags)}) and no 'latest' file; "
                           f"give the tag folder itself")
    raise ConvertError(f"{path}: a folder without {DEEPSPEED_MODEL_FILE}, a 'latest' file or a tag folder holding "
                       f"one; give a DeepSpeed checkpoint folder or a .pt/.bin file")


class _Opaque:
    """Stand-in for any pickled object that is not a tensor or a plain container: it accepts whatever the
    pickle stream gives it and does nothing, so no code from the file runs."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass

    def __repr__(self):
        return f"<opaque {type(self).__name__}>"


def _restricted_pickle_module():
    """A pickle module whose Unpickler rebuilds only tensors, storages and plain containers.

    torch.load(weights_only=True) of older torch versions refuses objects DeepSpeed puts next to the weights
    (a `set` of module names, numpy scalars, argparse namespaces ...). This unpickler allows the tensor
    rebuild functions and builtin containers, and turns every other global into an inert placeholder class,
    so it is as safe as weights_only (no function from the file is called) while still reaching "module".
    """
    import torch

    allowed = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "complex"): complex,
        ("builtins", "slice"): slice,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("torch", "Tensor"): torch.Tensor,
        ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
        ("torch.serialization", "_get_layout"): torch.serialization._get_layout,
    }
    for fn in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state",
               "_rebuild_meta_tensor_no_storage"):
        if hasattr(torch._utils, fn):
            allowed[("torch._utils", fn)] = getattr(torch._utils, fn)
    renames = {"__builtin__": "builtins", "copy_reg": "copyreg"}
    opaque_types = {}

    class RestrictedUnpickler(pickle.Unpickler):
        def find_class(self, module, name):
            module = renames.get(module, module)
            if (module, name) in allowed:
                return allowed[(module, name)]
            if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
                return getattr(torch, name)
            if module == "copyreg" and name == "_reconstructor":
                return _reconstruct_opaque
            key = f"{module}.{name}"
            if key not in opaque_types:
                opaque_types[key] = type(key, (_Opaque,), {})
            return opaque_types[key]

    def _reconstruct_opaque(cls, base, state):
        if isinstance(cls, type) and issubclass(cls, _Opaque):
            return cls()
        return _Opaque()

    mod = types.ModuleType("densetrain_restricted_pickle")
    mod.Unpickler = RestrictedUnpickler
    mod.load = lambda f, **kw: RestrictedUnpickler(f, **kw).load()
    mod.loads = lambda b, **kw: RestrictedUnpickler(io.BytesIO(b), **kw).load()
    return mod


def _short_error(e):
    """The informative part of a torch.load failure (its messages are long one-liners)."""
    text = str(e).strip()
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].strip()
    text = text.splitlines()[-1] if text else type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def load_torch_file(path, notes):
    import torch
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- any failure: try the restricted unpickler, then report both
        first = e
    try:
        obj = torch.load(path, map_location="cpu", pickle_module=_restricted_pickle_module(), weights_only=False)
    except Exception as e:  # noqa: BLE001
        hint = ""
        try:
            with open(path, "rb") as fh:
                head = fh.read(16)
            if len(head) >= 9 and head[8:9] == b"{":
                hint = " (it looks like a safetensors file: this converter reads the reference's torch checkpoints)"
        except OSError:
            pass
        msg = f"{type(e).__name__}: {_short_error(e)}"
        if "Unsupported" in str(first):
            msg += f" (torch.load with weights_only=True: {_short_error(first)})"
        raise ConvertError(f"{path}: not a PyTorch checkpoint that can be read safely{hint}: {msg}") from e
    short = _short_error(first)
    notes.append(f"torch.load(weights_only=True) refused {os.path.basename(path)} ({short}); read it with the "
                 f"converter's restricted unpickler (tensors and plain containers only; other objects become inert "
                 f"placeholders)")
    return obj


def _is_tensor(x):
    import torch
    return isinstance(x, torch.Tensor)


def extract_state_dict(obj, path):
    """The state dict inside a loaded checkpoint: the object itself, or its module / model / state_dict entry."""
    where = path
    for _ in range(3):  # {"model": {"module": {...}}} and the like
        if not isinstance(obj, dict):
            raise ConvertError(f"{where}: holds a {type(obj).__name__}, not a state dict (a dict of tensors) or a dict "
                               f"with a {' / '.join(repr(k) for k in STATE_DICT_KEYS)} entry")
        if obj and all(isinstance(k, str) and _is_tensor(v) for k, v in obj.items()):
            return obj, where
        found = [k for k in STATE_DICT_KEYS if k in obj]
        if not found:
            if not obj:
                raise ConvertError(f"{where}: an empty dict (no tensors)")
            bad = [k for k, v in obj.items() if not _is_tensor(v)]
            if any(_is_tensor(v) for v in obj.values()):
                raise ConvertError(f"{where}: entry {bad[0]!r} is a {type(obj[bad[0]]).__name__}, not a tensor")
            keys = ", ".join(repr(k) for k in list(obj)[:12])
            raise ConvertError(f"{where}: no state dict: none of the keys {', '.join(map(repr, STATE_DICT_KEYS))} "
                               f"(keys present: {keys}{', ...' if len(obj) > 12 else ''})")
        key = found[0]
        inner = obj[key]
        where = f"{where}: key {key!r}"
        if inner is None or (isinstance(inner, dict) and not inner):
            raise ConvertError(f"{where} is empty (a ZeRO stage-3 checkpoint keeps the weights in zero_pp_rank_* "
                               f"files: run DeepSpeed's zero_to_fp32.py and convert the file it writes)")
        obj = inner
    raise ConvertError(f"{where}: no dict of tensors found")


def strip_prefixes(sd, where):
    """Drop DeepSpeed/DDP `module.` prefixes (and torch.compile's `_orig_mod.`), however deeply repeated."""
    out = collections.OrderedDict()
    origin = {}
    for k, v in sd.items():
        n = k
        while True:
            if n.startswith("module."):
                n = n[len("module."):]
            elif n.startswith("_orig_mod."):
                n = n[len("_orig_mod."):]
            else:
                break
        if n in out:
            raise ConvertError(f"{where}: {origin[n]!r} and {k!r} both name {n!r} once the 'module.' prefix is removed")
        out[n] = v
        origin[n] = k
    return out


# ------------------------------------------------------------------------------------------------
# The name mapping (reference module names -> densetrain names; docs/checkpoints.md has the table)
# ------------------------------------------------------------------------------------------------

B = r"(?:bert\.)?"   # the backbone attribute of the reference's task models (`self.bert = DANetModel(...)`)
L = r"encoder\.layer\.(\d+)\."

# (pattern, densetrain name template or None, part or drop reason). Templates use {0}, {1} for the groups.
DANET_RULES = [
    (B + r"embeddings\.word_embeddings\.weight", "embeddings.word_embeddings.weight", None),
    (B + r"embeddings\.position_embeddings\.weight", "embeddings.position_embeddings.weight", None),
    (B + r"embeddings\.token_type_embeddings\.weight", "embeddings.token_type_embeddings.weight", None),
    (B + r"embeddings\.LayerNorm\.weight", "embeddings.norm.weight", None),
    (B + L + r"activation\.weight", "encoder.layer.{0}.pre_norm.weight", None),
    (B + L + r"attention\.queries", "encoder.layer.{0}.attention.queries", None),
    (B + L + r"ffn\.expanding_weight", "encoder.layer.{0}.ffn.w1", None),
    (B + L + r"ffn\.contracting_weight", "encoder.layer.{0}.ffn.w2", None),
    (B + L + r"ffn\.c_up\.weight", "encoder.layer.{0}.ffn.up.weight", None),
    (B + L + r"ffn\.c_fc1\.weight", "encoder.layer.{0}.ffn.up.weight", ("concat", 0)),   # SwiGLU_old: a half
    (B + L + r"ffn\.c_fc2\.weight", "encoder.layer.{0}.ffn.up.weight", ("concat", 1)),   # SwiGLU_old: b half
    (B + L + r"ffn\.c_proj\.weight", "encoder.layer.{0}.ffn.proj.weight", None),
    (B + L + r"ffn_activation\.weight", "encoder.layer.{0}.post_norm.weight", None),
    (B + r"encoder\.FinalLayerNorm\.weight", "encoder.final_norm.weight", None),
    (B + r"pooler\.dense_act\.weight", "pooler.dense.weight", None),
    (B + r"pooler\.layer_norm\.weight", "pooler.norm.weight", None),
    (r"cls\.predictions\.transform\.dense_act\.weight", "lm_head.transform.dense.weight", None),
    (r"cls\.predictions\.transform\.LayerNorm\.weight", "lm_head.transform.norm.weight", None),
    (r"cls\.predictions\.bias", "lm_head.bias", None),
    (r"cls\.seq_relationship\.(weight|bias)", "classifier.{0}", "cls_head"),
    (r"classifier\.(weight|bias)", "classifier.{0}", "classifier"),
    (r"regressor\.(weight|bias)", "classifier.{0}", None),
    (r"dense\.weight", "matching.dense.weight", None),
]

BERT_RULES = [
    (B + r"embeddings\.word_embeddings\.weight", "embeddings.word_embeddings.weight", None),
    (B + r"embeddings\.position_embeddings\.weight", "embeddings.position_embeddings.weight", None),
    (B + r"embeddings\.LayerNorm\.(weight|bias)", "embeddings.norm.{0}", None),
    (B + L + r"PreAttentionLayerNorm\.(weight|bias)", "encoder.layer.{0}.attention_norm.{1}", None),
    (B + L + r"attention\.self\.(query|key|value)\.(weight|bias)", "encoder.layer.{0}.attention.{1}.{2}", None),
    (B + L + r"attention\.output\.dense\.(weight|bias)", "encoder.layer.{0}.attention.output.{1}", None),
    (B + L + r"PostAttentionLayerNorm\.(weight|bias)", "encoder.layer.{0}.ffn_norm.{1}", None),
    (B + L + r"intermediate\.dense\.(weight|bias)", "encoder.layer.{0}.ffn.dense_in.{1}", None),
    (B + L + r"output\.dense\.(weight|bias)", "encoder.layer.{0}.ffn.dense_out.{1}", None),
    (B + r"encoder\.FinalLayerNorm\.(weight|bias)", "encoder.final_norm.{0}", None),
    (B + r"pooler\.dense\.(weight|bias)", "pooler.dense.{0}", None),
    (r"cls\.predictions\.transform\.dense\.(weight|bias)", "lm_head.transform.dense.{0}", None),
    (r"cls\.predictions\.transform\.LayerNorm\.(weight|bias)", "lm_head.transform.norm.{0}", None),
    (r"cls\.predictions\.bias", "lm_head.bias", None),
    (r"cls\.seq_relationship\.(weight|bias)", "classifier.{0}", "cls_head"),
    (r"classifier\.(weight|bias)", "classifier.{0}", "classifier"),
    (r"regressor\.(weight|bias)", "classifier.{0}", None),
]

# Tensors with no densetrain counterpart by design (both families).
DROP_RULES = [
    (r"cls\.predictions\.decoder\.weight",
     "tied MLM decoder: the same tensor as the word embeddings (densetrain ties them)"),
    (B + r"embeddings\.position_embeddings\.pe",
     "sinusoidal position table (a buffer; densetrain computes it)"),
    (r"(?:.*\.)?rope_cache\.(?:cache_cos|cache_sin|rel_pos_emb)",
     "RelPE cos/sin cache (a buffer; densetrain computes it)"),
]

CLS_HEAD_DROP_REASON = "classification (NSP) head cls.seq_relationship, dropped by --drop-cls-head"

# Hints for names that are recognisably something densetrain does not have.
UNSUPPORTED_HINTS = [
    (r".*\.(?:pre_activation|post_activation)\.weight|.*encoder\.layer\.\d+\.attention\.self\..*",
     "a softmax (Transformer) layer of a hybrid DANet: densetrain has no hybrid layers"),
    (r".*ffn\.c_fc[12]\.weight|.*intermediate\.c_fc[12]\.weight|.*output\.c_proj\.weight",
     "the SwiGLU FFN of the BERT baseline: densetrain's BERT has the GELU FFN only"),
    (r"qa_outputs\..*", "a question-answering head: not in densetrain"),
    (r".*\.dense_act\.bias|.*transform\.dense_act\.bias",
     "a bias of a DANet head dense layer: densetrain's DANet heads have none"),
    (r"(?:bert\.)?embeddings\.word_embeddings\.(?!weight).*|.*RealNumberEmbedding.*",
     "a non-table input embedding: not in densetrain"),
]


def _looks_like_densetrain(names):
    pat = re.compile(r"(embeddings\.norm\.|encoder\.layer\.\d+\.(pre_norm|post_norm|ffn\.w[12]|attention_norm|ffn_norm)"
                     r"|lm_head\.|encoder\.final_norm\.|matching\.)")
    return sum(1 for n in names if pat.match(n)) >= max(1, len(names) // 3)


def detect_family(names):
    danet = any(re.fullmatch(B + L + r"(?:attention\.queries|ffn\.(?:expanding_weight|c_up\.weight|c_fc1\.weight))", n)
                for n in names)
    bert = any(re.fullmatch(B + L + r"attention\.self\.query\.weight", n) for n in names)
    if danet:
        return "danet"
    if bert:
        return "bert"
    return None


class Mapped:
    __slots__ = ("src", "dst", "tensor", "note")

    def __init__(self, src, dst, tensor, note=""):
        self.src, self.dst, self.tensor, self.note = src, dst, tensor, note


def _dtype_name(t):
    return str(t.dtype).replace("torch.", "")


def _to_f32(name, t, where):
    import torch
    if not t.is_floating_point():
        raise ConvertError(f"{where}: tensor {name!r} has dtype {_dtype_name(t)}; densetrain weights are floating point")
    if t.is_sparse or t.layout != torch.strided:
        raise ConvertError(f"{where}: tensor {name!r} is not a dense tensor")
    return t.detach().to(device="cpu", dtype=torch.float32).contiguous()


def convert(sd, where, family, drop_cls_head, allow_unknown, warnings):
    """Map every tensor. Returns (OrderedDict densetrain name -> Mapped, dropped [(name, reason)], family)."""
    import torch

    names = list(sd.keys())
    detected = detect_family(names)
    if family == "auto":
        if detected is None:
            raise ConvertError(f"{where}: no DenseAttention layer (...attention.queries / ...ffn.expanding_weight) and no "
                               f"BERT layer (...attention.self.query.weight) among {len(names)} tensors; give "
                               f"--model-type or --model-config if this is a model without layers")
        family = detected
    elif detected is not None and detected != family:
        raise ConvertError(f"{where}: the tensors are those of a {detected} model (e.g. "
                           f"{next(n for n in names if detect_family([n]) == detected)!r}), but a {family} model was "
                           f"asked for (--model-type / model_type of --model-config)")
    rules = DANET_RULES if family == "danet" else BERT_RULES
    compiled = [(re.compile(p), t, extra) for p, t, extra in rules]
    drops = [(re.compile(p), reason) for p, reason in DROP_RULES]
    aan = family == "danet" and "dense.weight" in sd   # BertForAANMatching: dense (4d -> d) + classifier

    out = collections.OrderedDict()
    parts = collections.defaultdict(dict)   # SwiGLU_old halves: dst -> {index: (src, tensor)}
    dropped, unknown = [], []
    word_src = None
    for n in names:
        t = sd[n]
        reason = next((r for p, r in drops if p.fullmatch(n)), None)
        if reason is not None:
            dropped.append((n, reason))
            continue
        hit = None
        for p, tmpl, extra in compiled:
            m = p.fullmatch(n)
            if m:
                hit = (tmpl.format(*m.groups()), extra)
                break
        if hit is None:
            unknown.append(n)
            continue
        dst, extra = hit
        if extra == "cls_head" and drop_cls_head:
            dropped.append((n, CLS_HEAD_DROP_REASON))
            continue
        if extra == "classifier" and aan:
            if n.endswith(".bias"):
                unknown.append(n)
                continue
            dst = "matching.classifier.weight"
        note = []
        if t.dtype != torch.float32:
            note.append(f"from {_dtype_name(t)}")
        if extra == "cls_head":
            note.append("the reference's pretraining classification head")
        if isinstance(extra, tuple) and extra[0] == "concat":
            if dst in out:
                raise ConvertError(f"{where}: {n!r} and {out[dst].src!r} both give {dst!r}")
            if extra[1] in parts[dst]:
                raise ConvertError(f"{where}: {parts[dst][extra[1]][0]!r} and {n!r} both give the same half of {dst!r}")
            parts[dst][extra[1]] = (n, _to_f32(n, t, where), note)
            continue
        if dst in out or dst in parts:
            other = out[dst].src if dst in out else next(iter(parts[dst].values()))[0]
            raise ConvertError(f"{where}: {other!r} and {n!r} both map to densetrain's {dst!r}")
        out[dst] = Mapped(n, dst, _to_f32(n, t, where), ", ".join(note))
        if dst == "embeddings.word_embeddings.weight":
            word_src = n

    for dst, halves in parts.items():
        if set(halves) != {0, 1}:
            have = next(iter(halves.values()))[0]
            missing = have.replace("c_fc1", "c_fc2") if have.endswith("c_fc1.weight") else have.replace("c_fc2", "c_fc1")
            raise ConvertError(f"{where}: {have!r} without {missing!r} (the two SwiGLU input halves)")
        (na, ta, notea), (nb, tb, _) = halves[0], halves[1]
        if ta.shape != tb.shape:
            raise ConvertError(f"{where}: {na!r} {list(ta.shape)} and {nb!r} {list(tb.shape)} differ in shape")
        note = ", ".join(notea + [f"rows = cat({na.rsplit('.', 2)[-2]}, {nb.rsplit('.', 2)[-2]})"])
        out[dst] = Mapped(f"{na} + {nb}", dst, torch.cat([ta, tb], dim=0).contiguous(), note)

    if unknown:
        lines = []
        for n in unknown:
            hint = next((h for p, h in UNSUPPORTED_HINTS if re.fullmatch(p, n)), None)
            if hint is None and family == "danet" and aan and n == "classifier.bias":
                hint = "the AAN matching classifier has no bias in densetrain"
            lines.append(f"  {n} {list(sd[n].shape)}" + (f"  ({hint})" if hint else ""))
        extra_hint = ""
        if _looks_like_densetrain(names):
            extra_hint = "\n  (these look like densetrain's own names: the file is already in densetrain's layout)"
        if not allow_unknown:
            raise ConvertError(f"{where}: {len(unknown)} tensor(s) with no densetrain counterpart in a {family} "
                               f"model:\n" + "\n".join(lines) + extra_hint +
                               "\n  (--allow-unknown drops them with a warning)")
        for n in unknown:
            warnings.append(f"unknown tensor {n!r} {list(sd[n].shape)} dropped (--allow-unknown)")
            dropped.append((n, "unknown name, dropped by --allow-unknown"))

    # The tied decoder must really be the word table: densetrain cannot hold a separate one.
    dec = "cls.predictions.decoder.weight"
    if dec in sd:
        if word_src is None:
            raise ConvertError(f"{where}: {dec!r} without the word embeddings it is tied to")
        w = sd[word_src]
        d = sd[dec]
        if tuple(d.shape) != tuple(w.shape) or not torch.equal(d.detach().float(), w.detach().float()):
            raise ConvertError(f"{where}: {dec!r} differs from {word_src!r}: densetrain ties the MLM decoder to the "
                               f"word embeddings, so an untied decoder cannot be converted")
    return out, dropped, family


def check_vocab(out, where):
    w = out.get("embeddings.word_embeddings.weight")
    if w is None:
        return
    V = w.tensor.shape[0]
    if V % 8 != 0:
        raise ConvertError(f"{where}: the word embeddings {w.src!r} have {V} rows, not a multiple of 8: densetrain pads "
                           f"the vocabulary to a multiple of 8 ({V} -> {(V + 7) // 8 * 8}), so no densetrain model has "
                           f"this table (the reference's configs hold padded sizes, e.g. 30528)")
    b = out.get("lm_head.bias")
    if b is not None and tuple(b.tensor.shape) != (V,):
        raise ConvertError(f"{where}: {b.src!r} has shape {list(b.tensor.shape)} but the word embeddings have {V} rows")


def check_layers(out, warnings):
    idx = sorted({int(m.group(1)) for n in out for m in [re.match(r"encoder\.layer\.(\d+)\.", n)] if m})
    if idx and idx != list(range(len(idx))):
        warnings.append(f"encoder layer indices are not 0..{len(idx) - 1}: {idx}")


def materialize_ffn_scaling(out, ref_arg):
    """--materialize-ffn-scaling: bake the reference's `--scale_ffn_weights` factor into ExpandedFFN weights.

    The reference multiplies W1 and W2 at use time by rho = min(1, ref / max|W|), ref = default_ffn_norm or
    1 / sqrt(2 d r) (ExpandedFFN.forward_scaled, adjust_norm_ratios); densetrain uses the weights as stored.
    """
    done = 0
    for name, m in out.items():
        if not re.fullmatch(r"encoder\.layer\.\d+\.ffn\.w[12]", name):
            continue
        t = m.tensor
        d, rd = (t.shape[0], t.shape[1]) if name.endswith("w1") else (t.shape[1], t.shape[0])
        ref = (1.0 / math.sqrt(2.0 * rd)) if ref_arg == "default" else float(ref_arg)
        wmax = float(t.abs().max())
        rho = min(1.0, ref / wmax) if wmax > 0 else 1.0
        m.tensor = t * rho
        m.note = ", ".join(x for x in (m.note, f"x rho={rho:.6g}") if x)
        done += 1
    if done == 0:
        raise ConvertError("--materialize-ffn-scaling: the checkpoint has no ExpandedFFN weights (ffn.w1 / ffn.w2)")


# ------------------------------------------------------------------------------------------------
# --model-config: the model section of a densetrain config, with `include:` resolved as dense-train does
# ------------------------------------------------------------------------------------------------

def _yaml_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    # YAML 1.2 floats (1e-12 without a dot), as yaml-cpp reads them; PyYAML's 1.1 rules would give a string.
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+][0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
        list("-+0123456789."))
    return Loader


def _merge(dst, src):
    """Deep merge as dense-train does: mappings merge key by key (src wins), anything else is replaced."""
    if isinstance(dst, dict) and isinstance(src, dict):
        for k, v in src.items():
            dst[k] = _merge(dst[k], v) if k in dst else v
        return dst
    return src


def _load_config_file(path, stack):
    import yaml
    key = os.path.realpath(path)
    if key in stack:
        raise ConvertError(f"{path}: include cycle: {' -> '.join(stack + [key])}")
    try:
        with open(path, "r", encoding="utf-8") as fh:
            text = fh.read()
    except OSError as e:
        raise ConvertError(f"{path}: cannot read the config ({e.strerror or e})") from e
    try:
        doc = yaml.load(text, Loader=_yaml_loader())
    except yaml.YAMLError as e:
        raise ConvertError(f"{path}: not valid YAML/JSON: {str(e).splitlines()[0]}") from e
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConvertError(f"{path}: expected a mapping at the top level, got a {type(doc).__name__}")
    return _resolve_includes(doc, os.path.dirname(path), stack + [key], path)


def _resolve_includes(v, base_dir, stack, where):
    if isinstance(v, list):
        return [_resolve_includes(x, base_dir, stack, where) for x in v]
    if not isinstance(v, dict):
        return v
    own = {k: (_resolve_includes(c, base_dir, stack, where) if k != "include" else c) for k, c in v.items()}
    if "include" not in own:
        return own
    inc = own.pop("include")
    files = inc if isinstance(inc, list) else [inc]
    merged = {}
    for f in files:
        if not isinstance(f, str) or not f:
            raise ConvertError(f"{where}: include: expected a file name or a list of file names, got {f!r}")
        merged = _merge(merged, _load_config_file(os.path.normpath(os.path.join(base_dir, f)), stack))
    return _merge(merged, own)


def load_model_section(path):
    try:
        import yaml  # noqa: F401
    except ImportError as e:
        raise ConvertError("--model-config needs PyYAML (Debian: apt-get install python3-yaml); convert without "
                           "--model-config and let dense-train check the names and shapes") from e
    doc = _load_config_file(path, [])
    if isinstance(doc.get("model"), dict):
        return doc["model"]
    if "model" in doc:
        raise ConvertError(f"{path}: 'model' must be a mapping")
    if "model_type" in doc or "hidden_size" in doc:
        return doc   # a bare model section such as configs/models/*.json
    raise ConvertError(f"{path}: no 'model' section (and not a bare model section with model_type / hidden_size)")


def expected_shapes(model_section, path):
    mt = model_section.get("model_type", "danet")
    try:
        if mt == "bert":
            br = _reference_module("bert_reference")
            cfg = br.resolve_bert_config(model_section)
            shapes = br.bert_param_shapes(cfg)
        elif mt == "danet":
            dr = _reference_module("danet_reference")
            cfg = dr.resolve_danet_config(model_section)
            shapes = dr.danet_param_shapes(cfg)
        else:
            raise ValueError(f"model_type must be 'danet' or 'bert', got {mt!r}")
    except (ValueError, TypeError, KeyError) as e:
        raise ConvertError(f"{path}: model section: {e}") from e
    return mt, cfg, collections.OrderedDict((k, tuple(int(x) for x in v)) for k, v in shapes.items())


HEAD_PREFIXES = ("lm_head.", "pooler.", "classifier.", "matching.")


def init_head_tensor(name, shape, r0, gen, family):
    """A fresh head tensor as the reference initialises one: biases (the MLM bias included) 0, norm gains 1,
    Linear weights Uniform(-r0, r0) in DANet models (init_bert_weights of src/modeling.py, docs/model.md §1.13) and
    Normal(0, r0) in the BERT baseline (src/other_models/modeling.py, docs/model.md §1.12)."""
    import torch
    if name.endswith(".bias"):
        return torch.zeros(shape, dtype=torch.float32), "initialised: zeros"
    if re.search(r"\.norm\.weight$", name):
        return torch.ones(shape, dtype=torch.float32), "initialised: ones (norm gain)"
    if family == "bert":
        t = torch.randn(shape, generator=gen, dtype=torch.float64) * r0
        return t.to(torch.float32), f"initialised: Normal(0, {r0:g})"
    t = (torch.rand(shape, generator=gen, dtype=torch.float64) * 2.0 - 1.0) * r0
    return t.to(torch.float32), f"initialised: Uniform(-{r0:g}, {r0:g})"


def check_against_config(out, cfg_path, model_section, init_missing_heads, seed, warnings):
    import torch
    mt, cfg, want = expected_shapes(model_section, cfg_path)
    problems = []
    w = out.get("embeddings.word_embeddings.weight")
    wv = want.get("embeddings.word_embeddings.weight")
    if w is not None and wv is not None and w.tensor.shape[0] != wv[0]:
        problems.append(f"  vocabulary: the checkpoint's word embeddings {w.src!r} have {w.tensor.shape[0]} rows, the "
                        f"config's vocab_size {model_section.get('vocab_size', cfg.get('vocab_size'))} gives "
                        f"{wv[0]} (padded to a multiple of 8)")
    gen = torch.Generator().manual_seed(int(seed))
    r0 = float(cfg["initializer_range"])
    filled = []
    for name, shape in want.items():
        m = out.get(name)
        if m is None:
            if init_missing_heads and name.startswith(HEAD_PREFIXES):
                t, how = init_head_tensor(name, shape, r0, gen, mt)
                out[name] = Mapped("(not in the checkpoint)", name, t, how)
                filled.append(name)
                continue
            head = " (a head: --init-missing-heads initialises it as the reference does)" \
                if name.startswith(HEAD_PREFIXES) else ""
            problems.append(f"  missing: {name} {list(shape)}{head}")
        elif tuple(m.tensor.shape) != shape:
            if name == "embeddings.word_embeddings.weight" or (name == "lm_head.bias" and w is not None
                                                                and w.tensor.shape[0] != wv[0]):
                continue   # reported once, as the vocabulary
            problems.append(f"  shape: {name} (from {m.src}) is {list(m.tensor.shape)}, the model needs {list(shape)}")
    extra = [n for n in out if n not in want]
    if problems:
        raise ConvertError(f"{cfg_path}: the converted tensors do not fit this {mt} model:\n" + "\n".join(problems))
    for n in extra:
        warnings.append(f"{n} (from {out[n].src}) is not a parameter of the model in {cfg_path}; "
                        f"dense-train ignores it")
    ordered = collections.OrderedDict((n, out[n]) for n in want)
    for n in extra:
        ordered[n] = out[n]
    return ordered, mt, filled


# ------------------------------------------------------------------------------------------------
# --reference-config: the reference's own ModelConfig JSON (src/model_config.py) -> a densetrain model section
# ------------------------------------------------------------------------------------------------

# The reference ModelConfig's constructor defaults (src/model_config.py, `ModelConfig.__init__`): a key its JSON
# leaves out takes this value in the reference, so the translation writes it explicitly instead of relying on
# densetrain's defaults to agree.
REFERENCE_DEFAULTS = collections.OrderedDict([
    ("vocab_size_or_config_json_file", 30528), ("hidden_size", 1024), ("num_hidden_layers", 32),
    ("num_attention_heads", 1), ("intermediate_size", 4), ("default_ffn_norm", None), ("hidden_dropout_prob", 0),
    ("hidden_act", "relu"), ("swiglu_ffn", False), ("attention_complexity", "auto"),
    ("attention_probs_dropout_prob", 0), ("pre_attn_ln_type", "max_norm"), ("post_attn_ln_type", "max_norm"),
    ("max_position_embeddings", 512), ("token_type_embeddings", False), ("embedding_ln_type", "hardtanh"),
    ("type_vocab_size", 2), ("initializer_range", 0.02), ("pos_emb_type", "learned"), ("embedding_dropout", 0),
    ("relpe_type", None), ("relpe_scheme", "qkv"), ("final_ln_type", None), ("pooler_function", "mean"),
    ("pooler_no_dense", False), ("pooler_act", "gelu"), ("pooler_ln_type", None), ("classifier_bias", False),
    ("lm_head_act", "gelu"), ("lm_head_ln_type", "uncentered_ln"), ("causal", False), ("chunk_size", 1024),
    ("local_attention", False), ("window_size", 1024), ("local_relpe", True), ("local_scheme", "l_sl_g"),
    ("hybrid", False), ("transformer_heads", None), ("attn_proj_biases", False),
])
# The reference's Activation2Class (src/activations.py): every name there is also a densetrain norm/activation.
REFERENCE_NORMS = ("max_norm", "scaled_max_norm", "prescaled_max_norm", "uncentered_ln", "uncentered_fixed_ln",
                   "standard_ln", "hardtanh", "no_ln", "gelu", "gelu_tanh", "legacy_gelu", "relu", "tanh",
                   "leaky_relu", "leaky_relu_0.1")
# Keys of a whole reference training config (configs/*/*.json) around its `model_config` section.
REFERENCE_RUN_KEYS = ("name", "model_config", "data", "training", "validation", "test")


def _ref_value(path, key, v, kind, choices=None):
    """Checks one reference value; returns it as the densetrain config spells it."""
    where = f"{path}: {key}"
    if kind == "int":
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ConvertError(f"{where}: expected a positive integer, got {v!r}")
    elif kind == "prob":
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
            raise ConvertError(f"{where}: expected a probability in [0, 1), got {v!r}")
        v = float(v)
    elif kind == "posfloat":
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ConvertError(f"{where}: expected a positive number, got {v!r}")
        v = float(v)
    elif kind == "bool":
        if not isinstance(v, bool):
            raise ConvertError(f"{where}: expected true or false, got {v!r}")
    elif kind in ("choice", "optional_choice"):
        if v is None and kind == "optional_choice":
            return None
        if not isinstance(v, str) or v not in choices:
            raise ConvertError(f"{where}: {v!r} is not supported; allowed: {', '.join(choices)}"
                               + (" or null" if kind == "optional_choice" else ""))
    return v


def translate_reference_config(path):
    """The reference ModelConfig JSON at `path` (a bare model_config, or a whole reference run config holding
    one) -> (densetrain model section, notes, default_ffn_norm). Every key is checked; keys the reference does
    not know, and values densetrain cannot reproduce, are errors naming the key."""
    try:
        with open(path, "r", encoding="utf-8") as fh:
            doc = json.load(fh)
    except OSError as e:
        raise ConvertError(f"{path}: cannot read the reference config ({e.strerror or e})") from e
    except ValueError as e:
        raise ConvertError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(doc, dict):
        raise ConvertError(f"{path}: expected a JSON object (the reference's model_config), got {type(doc).__name__}")
    if "model_config" in doc:
        unknown = [k for k in doc if k not in REFERENCE_RUN_KEYS]
        if unknown:
            raise ConvertError(f"{path}: unknown top-level key(s) {', '.join(map(repr, unknown))} beside "
                               f"'model_config'")
        doc = doc["model_config"]
        path = f"{path}: model_config"
        if not isinstance(doc, dict):
            raise ConvertError(f"{path}: expected a JSON object")
    ref = collections.OrderedDict(REFERENCE_DEFAULTS)
    for k, v in doc.items():
        key = "vocab_size_or_config_json_file" if k == "vocab_size" else k
        if key not in REFERENCE_DEFAULTS:
            close = difflib.get_close_matches(k, list(REFERENCE_DEFAULTS) + ["vocab_size"], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConvertError(f"{path}: {k}: not a key of the reference's ModelConfig (src/model_config.py){hint}")
        ref[key] = v
    notes = []
    if ref["hybrid"] is not False:
        _ref_value(path, "hybrid", ref["hybrid"], "bool")
        raise ConvertError(f"{path}: hybrid: true (softmax Transformer layers inside the DANet) has no densetrain "
                           f"counterpart")
    if not isinstance(ref["vocab_size_or_config_json_file"], int):
        raise ConvertError(f"{path}: vocab_size_or_config_json_file: expected the vocabulary size (an integer), got "
                           f"{ref['vocab_size_or_config_json_file']!r}; a path to another config file is not followed")
    ffn_norm = ref["default_ffn_norm"]
    if ffn_norm not in (None, 0):
        _ref_value(path, "default_ffn_norm", ffn_norm, "posfloat")
        notes.append(f"default_ffn_norm {ffn_norm} is not a model key: it only scales ExpandedFFN weights under the "
                     f"reference's --scale_ffn_weights; --materialize-ffn-scaling uses it as REF")
    pos = ref["pos_emb_type"]
    if not isinstance(pos, str) or pos.lower() not in ("learned", "relpe", "sinusoidal"):
        raise ConvertError(f"{path}: pos_emb_type: {pos!r} is not supported; allowed: learned, relpe, sinusoidal")
    relpe_type = ref["relpe_type"]
    if relpe_type == "learned":
        raise ConvertError(f"{path}: relpe_type: 'learned' (the multiplicative learned RelPE) is not supported by "
                           f"densetrain (docs/decisions.md)")
    scheme = ref["relpe_scheme"]
    if not isinstance(scheme, str) or not scheme or \
            not set(c.strip() for c in scheme.split(",")) <= {"qkv", "q", "k", "v"}:
        raise ConvertError(f"{path}: relpe_scheme: {scheme!r} is not supported; allowed: 'qkv' or a comma list of "
                           f"q, k, v")
    scheme_codes = ref["local_scheme"]
    if not isinstance(scheme_codes, str) or not scheme_codes or \
            not set(scheme_codes.split("_")) <= {"g", "l", "sl", "sw"}:
        raise ConvertError(f"{path}: local_scheme: {scheme_codes!r} is not supported; allowed: layer codes g, l, sl, "
                           f"sw joined by _")
    for k in ("transformer_heads", "attn_proj_biases"):
        if ref[k] not in (None, False):
            notes.append(f"{k} {ref[k]!r} applies to hybrid models only; no effect here")
    if ref["hidden_act"] != "relu":
        notes.append(f"hidden_act {ref['hidden_act']!r} is unused by the reference's DANet (kept there for BERT "
                     f"configs); not translated")
    m = collections.OrderedDict()
    m["model_type"] = "danet"
    m["vocab_size"] = _ref_value(path, "vocab_size_or_config_json_file", ref["vocab_size_or_config_json_file"], "int")
    for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
              "max_position_embeddings"):
        m[k] = _ref_value(path, k, ref[k], "int")
    if m["hidden_size"] % m["num_attention_heads"]:
        raise ConvertError(f"{path}: num_attention_heads {m['num_attention_heads']} does not divide hidden_size "
                           f"{m['hidden_size']}")
    m["initializer_range"] = _ref_value(path, "initializer_range", ref["initializer_range"], "posfloat")
    for k in ("hidden_dropout_prob", "attention_probs_dropout_prob", "embedding_dropout"):
        m[k] = _ref_value(path, k, ref[k], "prob")
    m["classifier_bias"] = _ref_value(path, "classifier_bias", ref["classifier_bias"], "bool")
    m["swiglu_ffn"] = _ref_value(path, "swiglu_ffn", ref["swiglu_ffn"], "bool")
    m["attention_complexity"] = _ref_value(path, "attention_complexity", ref["attention_complexity"], "choice",
                                           ("linear", "quadratic", "auto"))
    for k in ("pre_attn_ln_type", "post_attn_ln_type", "embedding_ln_type", "lm_head_ln_type"):
        m[k] = _ref_value(path, k, ref[k], "choice", REFERENCE_NORMS)
    for k in ("final_ln_type", "pooler_ln_type"):
        m[k] = _ref_value(path, k, ref[k], "optional_choice", REFERENCE_NORMS)
    m["token_type_embeddings"] = _ref_value(path, "token_type_embeddings", ref["token_type_embeddings"], "bool")
    m["type_vocab_size"] = _ref_value(path, "type_vocab_size", ref["type_vocab_size"], "int")
    m["pos_emb_type"] = pos.lower()
    m["relpe_type"] = _ref_value(path, "relpe_type", relpe_type, "optional_choice", ("cosine", "cos_minus_sin", "rope"))
    m["relpe_scheme"] = scheme
    m["pooler_function"] = _ref_value(path, "pooler_function", ref["pooler_function"], "choice",
                                      ("first", "mean", "max"))
    m["pooler_no_dense"] = _ref_value(path, "pooler_no_dense", ref["pooler_no_dense"], "bool")
    m["pooler_act"] = _ref_value(path, "pooler_act", ref["pooler_act"], "choice", REFERENCE_NORMS)
    m["lm_head_act"] = _ref_value(path, "lm_head_act", ref["lm_head_act"], "choice", REFERENCE_NORMS)
    m["causal"] = _ref_value(path, "causal", ref["causal"], "bool")
    m["chunk_size"] = _ref_value(path, "chunk_size", ref["chunk_size"], "int")
    m["local_attention"] = _ref_value(path, "local_attention", ref["local_attention"], "bool")
    m["window_size"] = _ref_value(path, "window_size", ref["window_size"], "int")
    m["local_relpe"] = _ref_value(path, "local_relpe", ref["local_relpe"], "bool")
    m["local_scheme"] = scheme_codes
    return m, notes, (None if ffn_norm in (None, 0) else float(ffn_norm))


def heads_from_tensors(out, model_section):
    """num_labels and pair_matching are task settings, not ModelConfig keys in the reference (the task model
    takes num_labels): read them off the converted head tensors."""
    m = collections.OrderedDict(model_section)
    if "matching.classifier.weight" in out:
        m["pair_matching"] = True
        m["num_labels"] = int(out["matching.classifier.weight"].tensor.shape[0])
    elif "classifier.weight" in out:
        m["num_labels"] = int(out["classifier.weight"].tensor.shape[0])
    return m


def compare_model_sections(ref_section, ref_path, cfg_section, cfg_path):
    """--reference-config with --model-config: every translated key must mean the same in both."""
    dr = _reference_module("danet_reference")
    try:
        a = dr.resolve_danet_config(ref_section)
        b = dr.resolve_danet_config(cfg_section)
    except (ValueError, TypeError, KeyError) as e:
        raise ConvertError(f"{cfg_path}: model section: {e}") from e
    differ = [f"  {k}: {ref_path} gives {a[k]!r}, {cfg_path} has {b[k]!r}"
              for k in ref_section if k in a and not k.startswith("_") and a[k] != b[k]]
    if differ:
        raise ConvertError(f"{cfg_path}: the model differs from the reference config {ref_path}:\n" + "\n".join(differ))


def write_model_config(path, section, source):
    """--write-config: a bare model section (.json, like configs/models/*.json) or a dense-train config whose
    model: section holds it (.yaml / .yml), written atomically."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".json":
        text = json.dumps(section, indent=2) + "\n"
    elif ext in (".yaml", ".yml"):
        lines = [f"# The model of {source}, as scripts/convert_reference_checkpoint.py translated it.",
                 "# dense-train / dense-eval read it with --config; add data: and training: sections to train.",
                 "model:"]
        lines += [f"  {k}: {json.dumps(v)}" for k, v in section.items()]   # JSON scalars are YAML scalars
        text = "\n".join(lines) + "\n"
    else:
        raise ConvertError(f"--write-config {path}: give a .json (bare model section) or .yaml (dense-train config) "
                           f"file name")
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        raise ConvertError(f"{path}: cannot write ({e.strerror or e})") from e
    finally:
        if tmp and os.path.exists(tmp):
            os.remove(tmp)


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------

def write_atomic(tensors, path, metadata):
    st = _reference_module("safetensors_io")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise ConvertError(f"{folder}: cannot create the output folder ({e.strerror or e})") from e
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        st.save_file(tensors, tmp, metadata=metadata)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp makes the file 0600; give it the usual permissions
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise ConvertError(f"{path}: cannot write ({e.strerror or e})") from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# ------------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(
        prog=PROG, description="Convert a reference DenseAttention (dense-attention repo) checkpoint to densetrain's "
                               "model.safetensors. Name mapping and options: docs/checkpoints.md.")
    p.add_argument("input", metavar="INPUT", help="a torch .pt/.bin file (state dict, or a dict with 'module' / 'model' "
                                                  "/ 'state_dict') or a DeepSpeed checkpoint folder")
    p.add_argument("output", metavar="OUTPUT", help="the safetensors file to write (for dense-train --init-from)")
    p.add_argument("--model-config", metavar="CFG", help="a densetrain config (or a bare model section, e.g. "
                   "configs/models/*.json): check that the names and shapes are exactly the model's")
    p.add_argument("--reference-config", metavar="REF_JSON",
                   help="the reference's own model config JSON (its ModelConfig keys, e.g. "
                        "vocab_size_or_config_json_file; a bare model_config or a whole reference run config): "
                        "translated to a densetrain DANet model section that the names and shapes are checked "
                        "against; with --model-config both must describe the same model")
    p.add_argument("--write-config", metavar="OUT",
                   help="write the model section used (from --reference-config or --model-config, num_labels and "
                        "pair_matching from the heads) to OUT: .json a bare model section, .yaml a dense-train / "
                        "dense-eval config")
    p.add_argument("--model-type", choices=("auto", "danet", "bert"), default="auto",
                   help="which reference model family the checkpoint holds (default: from the tensor names)")
    p.add_argument("--strict", action="store_true",
                   help="warnings are errors (tensors the config's model does not have, unknown tensors with "
                        "--allow-unknown, non-contiguous layer indices)")
    p.add_argument("--allow-unknown", action="store_true",
                   help="drop tensors with no densetrain counterpart (with a warning) instead of failing")
    p.add_argument("--drop-cls-head", action="store_true",
                   help="drop the pretraining model's classification head cls.seq_relationship.* instead of "
                        "converting it to classifier.* (e.g. before fine-tuning with another num_labels)")
    p.add_argument("--init-missing-heads", action="store_true",
                   help="with --model-config: head tensors (lm_head.*, pooler.*, classifier.*, matching.*) the "
                        "checkpoint lacks are initialised as the reference does, like its non-strict loading")
    p.add_argument("--seed", type=int, default=0, help="seed for --init-missing-heads (default 0)")
    p.add_argument("--materialize-ffn-scaling", nargs="?", const="default", metavar="REF",
                   help="the checkpoint was trained with the reference's --scale_ffn_weights: multiply ffn.w1/w2 by "
                        "min(1, REF / max|W|) (REF default 1/sqrt(2 d r), the reference's default_ffn_norm)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only warnings and errors")
    return p.parse_args(argv)


def run(args):
    import torch  # noqa: F401 -- fail early and clearly if torch is missing

    if args.init_missing_heads and not (args.model_config or args.reference_config):
        raise ConvertError("--init-missing-heads needs --model-config or --reference-config (the shapes and "
                           "initializer_range come from it)")
    if args.write_config and not (args.model_config or args.reference_config):
        raise ConvertError("--write-config needs --reference-config (or --model-config): the weights alone do not "
                           "say which heads, RelPE, local scheme, norms or activations the model uses")
    if args.materialize_ffn_scaling not in (None, "default"):
        try:
            if not float(args.materialize_ffn_scaling) > 0:
                raise ValueError
        except ValueError:
            raise ConvertError(f"--materialize-ffn-scaling: REF must be a positive number, got "
                               f"{args.materialize_ffn_scaling!r}") from None
    if os.path.isdir(args.output):
        raise ConvertError(f"{args.output}: is a folder; give the safetensors file to write "
                           f"(e.g. {os.path.join(args.output, 'model.safetensors')})")

    model_section = None
    ref_section, ref_notes, ffn_norm = None, [], None
    family = args.model_type
    if args.reference_config:
        ref_section, ref_notes, ffn_norm = translate_reference_config(args.reference_config)
        if family == "bert":
            raise ConvertError(f"--model-type bert: {args.reference_config} is the reference's DANet ModelConfig; "
                               f"describe a BERT baseline with a densetrain --model-config")
        family = "danet"
    if args.model_config:
        model_section = load_model_section(args.model_config)
        mt = model_section.get("model_type", "danet")
        if family != "auto" and mt != family:
            raise ConvertError(f"--model-type {family} but {args.model_config} has model_type {mt}")
        family = mt if mt in ("danet", "bert") else family

    notes, warnings = [], []
    src_file = find_checkpoint_file(args.input)
    if os.path.exists(args.output) and os.path.samefile(src_file, args.output):
        raise ConvertError(f"{args.output}: the output would overwrite the input")
    obj = load_torch_file(src_file, notes)
    sd, where = extract_state_dict(obj, src_file)
    for k, v in sd.items():
        if v.numel() == 0:
            raise ConvertError(f"{where}: tensor {k!r} is empty (shape {list(v.shape)}); a ZeRO stage-3 checkpoint "
                               f"keeps the weights in zero_pp_rank_* files: run DeepSpeed's zero_to_fp32.py first")
    sd = strip_prefixes(sd, where)

    out, dropped, family = convert(sd, where, family, args.drop_cls_head, args.allow_unknown, warnings)
    check_vocab(out, where)
    check_layers(out, warnings)
    if args.materialize_ffn_scaling is not None:
        ref_arg = args.materialize_ffn_scaling
        if ref_arg == "default" and ffn_norm is not None:
            ref_arg = ffn_norm   # the reference scaled with its config's default_ffn_norm
        materialize_ffn_scaling(out, ref_arg)

    config_path = args.model_config
    if ref_section is not None:
        ref_section = heads_from_tensors(out, ref_section)
        if model_section is not None:
            compare_model_sections(ref_section, args.reference_config, model_section, args.model_config)
        else:
            model_section, config_path = ref_section, args.reference_config
    filled = []
    if model_section is not None:
        out, family, filled = check_against_config(out, config_path, model_section, args.init_missing_heads,
                                                   args.seed, warnings)
    if not out:
        raise ConvertError(f"{where}: nothing to write (every tensor was dropped)")

    if args.strict and warnings:
        raise ConvertError("--strict: " + "; ".join(warnings))

    tensors = collections.OrderedDict((n, m.tensor) for n, m in out.items())
    metadata = {"format": "pt", "converted_from": os.path.abspath(src_file), "reference_model": family,
                "converter": "scripts/convert_reference_checkpoint.py"}
    if filled:
        metadata["initialised_heads"] = ",".join(filled)
    if args.reference_config:
        metadata["reference_config"] = os.path.abspath(args.reference_config)
    write_atomic(tensors, args.output, metadata)
    if args.write_config:
        write_model_config(args.write_config, model_section, args.reference_config or args.model_config)

    if not args.quiet:
        for n in notes + ref_notes:
            print(f"note: {n}")
        w_src = max([len("reference name")] + [len(m.src) for m in out.values()])
        w_dst = max([len("densetrain name")] + [len(n) for n in out])
        print(f"{'reference name':<{w_src}}    {'densetrain name':<{w_dst}}  shape")
        for n, m in out.items():
            shape = "[" + ", ".join(str(s) for s in m.tensor.shape) + "]"
            print(f"{m.src:<{w_src}} -> {n:<{w_dst}}  {shape}" + (f"  ({m.note})" if m.note else ""))
        if dropped:
            print(f"dropped ({len(dropped)}):")
            for n, reason in dropped:
                print(f"  {n} {list(sd[n].shape)}: {reason}")
        nparam = sum(t.numel() for t in tensors.values())
        print(f"wrote {args.output}: {len(tensors)} tensors, {nparam:,} parameters (float32), {family} model")
        if args.write_config:
            print(f"wrote {args.write_config}: the model config (dense-eval / dense-train --config)")
    for w in warnings:
        print(f"{PROG}: warning: {w}", file=sys.stderr)
    return 0


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except ConvertError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"{PROG}: error: out of memory while converting {args.input}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 -- never a traceback for the user; name what failed
        print(f"{PROG}: error: {args.input}: unexpected {type(e).__name__}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
