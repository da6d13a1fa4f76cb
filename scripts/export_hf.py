#!/usr/bin/python3
"""densetrain weights <-> a Hugging Face model folder (what Transformers.js and onnxruntime load).

    /usr/bin/python3 scripts/export_hf.py export CHECKPOINT OUT_DIR --head mlm|classifier --vocab vocab.txt \
        [--config CFG] [--labels NEG,POS] [--cased]
    /usr/bin/python3 scripts/export_hf.py import HF_DIR OUT.safetensors [--write-config model.json]
    /usr/bin/python3 scripts/export_hf.py bin-to-safetensors HF_DIR

`export` writes OUT_DIR/config.json, model.safetensors, vocab.txt, tokenizer.json, tokenizer_config.json,
special_tokens_map.json and onnx/model.onnx (scripts/export_onnx.py), so that Transformers.js's
`pipeline('fill-mask' | 'text-classification', OUT_DIR)` runs it offline. model.safetensors holds the weights in
the names other code reads: for DANet the reference repository's (the inverse of
scripts/convert_reference_checkpoint.py), for the BERT baseline BertForMaskedLM's / BertForSequenceClassification's
(the norms placed by the sub-layer they feed, see docs/export.md: densetrain's BERT is pre-LN, so Python
transformers' post-LN BertModel does NOT compute the same function from them; the ONNX graph does).
`import` reads such a folder (or a Hugging Face BERT checkpoint with standard names) back to densetrain's names;
densetrain -> export -> import is bit-identical. `bin-to-safetensors` rewrites a folder's pytorch_model.bin as
model.safetensors (what dense-train --init-from reads).

Exit status 0 on success, 2 on an error (one line `export_hf: error: ...` naming the file and key).
"""

import argparse
import collections
import json
import os
import re
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import export_onnx  # noqa: E402

PROG = "export_hf"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


class HfError(Exception):
    pass


def torch():
    import torch as t
    return t


def sio():
    return export_onnx.reference("safetensors_io")


# ------------------------------------------------------------------------------------------------
# Names: densetrain <-> the reference repository (DANet) / BertForMaskedLM (BERT)
# ------------------------------------------------------------------------------------------------

# DANet: densetrain name pattern -> reference name (docs/checkpoints.md, "DANet names", read right to left).
DANET_TO_REF = [
    (r"embeddings\.word_embeddings\.weight", "bert.embeddings.word_embeddings.weight"),
    (r"embeddings\.position_embeddings\.weight", "bert.embeddings.position_embeddings.weight"),
    (r"embeddings\.token_type_embeddings\.weight", "bert.embeddings.token_type_embeddings.weight"),
    (r"embeddings\.norm\.weight", "bert.embeddings.LayerNorm.weight"),
    (r"encoder\.layer\.(\d+)\.pre_norm\.weight", "bert.encoder.layer.{0}.activation.weight"),
    (r"encoder\.layer\.(\d+)\.attention\.queries", "bert.encoder.layer.{0}.attention.queries"),
    (r"encoder\.layer\.(\d+)\.ffn\.w1", "bert.encoder.layer.{0}.ffn.expanding_weight"),
    (r"encoder\.layer\.(\d+)\.ffn\.w2", "bert.encoder.layer.{0}.ffn.contracting_weight"),
    (r"encoder\.layer\.(\d+)\.ffn\.up\.weight", "bert.encoder.layer.{0}.ffn.c_up.weight"),
    (r"encoder\.layer\.(\d+)\.ffn\.proj\.weight", "bert.encoder.layer.{0}.ffn.c_proj.weight"),
    (r"encoder\.layer\.(\d+)\.post_norm\.weight", "bert.encoder.layer.{0}.ffn_activation.weight"),
    (r"encoder\.final_norm\.weight", "bert.encoder.FinalLayerNorm.weight"),
    (r"pooler\.dense\.weight", "bert.pooler.dense_act.weight"),
    (r"pooler\.norm\.weight", "bert.pooler.layer_norm.weight"),
    (r"lm_head\.transform\.dense\.weight", "cls.predictions.transform.dense_act.weight"),
    (r"lm_head\.transform\.norm\.weight", "cls.predictions.transform.LayerNorm.weight"),
    (r"lm_head\.bias", "cls.predictions.bias"),
    (r"classifier\.(weight|bias)", "classifier.{0}"),
]

# The first layer's pre-attention norm has no BertForMaskedLM counterpart (a post-LN model feeds the embedding
# LayerNorm's output to layer 0 directly); it keeps the pre-LN reference repository's name.
FIRST_ATTENTION_NORM = "bert.encoder.layer.0.PreAttentionLayerNorm"


def bert_to_hf_names(L):
    """densetrain BERT name -> standard name. Linear layers keep their places; the norms are placed by the
    sub-layer whose input they normalise: layer i's FFN reads attention.output.LayerNorm of layer i, layer i+1's
    attention (and, after the last layer, the heads) read output.LayerNorm of layer i."""
    m = collections.OrderedDict()
    m["embeddings.word_embeddings.weight"] = "bert.embeddings.word_embeddings.weight"
    m["embeddings.position_embeddings.weight"] = "bert.embeddings.position_embeddings.weight"
    for s in ("weight", "bias"):
        m[f"embeddings.norm.{s}"] = f"bert.embeddings.LayerNorm.{s}"
    for i in range(L):
        p, q = f"encoder.layer.{i}.", f"bert.encoder.layer.{i}."
        for s in ("weight", "bias"):
            m[p + f"attention_norm.{s}"] = (f"{FIRST_ATTENTION_NORM}.{s}" if i == 0 else
                                            f"bert.encoder.layer.{i - 1}.output.LayerNorm.{s}")
            for proj in ("query", "key", "value"):
                m[p + f"attention.{proj}.{s}"] = q + f"attention.self.{proj}.{s}"
            m[p + f"attention.output.{s}"] = q + f"attention.output.dense.{s}"
            m[p + f"ffn_norm.{s}"] = q + f"attention.output.LayerNorm.{s}"
            m[p + f"ffn.dense_in.{s}"] = q + f"intermediate.dense.{s}"
            m[p + f"ffn.dense_out.{s}"] = q + f"output.dense.{s}"
    for s in ("weight", "bias"):
        m[f"encoder.final_norm.{s}"] = f"bert.encoder.layer.{L - 1}.output.LayerNorm.{s}"
        m[f"lm_head.transform.dense.{s}"] = f"cls.predictions.transform.dense.{s}"
        m[f"lm_head.transform.norm.{s}"] = f"cls.predictions.transform.LayerNorm.{s}"
        m[f"pooler.dense.{s}"] = f"bert.pooler.dense.{s}"
        m[f"classifier.{s}"] = f"classifier.{s}"
    m["lm_head.bias"] = "cls.predictions.bias"
    return m


def to_hf(tensors, model_type):
    """densetrain tensors (name -> numpy) -> the exported names, in densetrain's order."""
    out = collections.OrderedDict()
    if model_type == "bert":
        L = 1 + max(int(re.match(r"encoder\.layer\.(\d+)\.", n).group(1)) for n in tensors if n.startswith("encoder.layer."))
        names = bert_to_hf_names(L)
        for n, t in tensors.items():
            if n not in names:
                raise HfError(f"tensor {n!r}: no BertForMaskedLM name for it")
            out[names[n]] = t
        # Standard loaders expect segment embeddings; all-zero rows add nothing (densetrain's BERT has none), and
        # the importer folds row 0 into the positions, which adds exactly 0 here.
        d = tensors["embeddings.word_embeddings.weight"].shape[1]
        out["bert.embeddings.token_type_embeddings.weight"] = np.zeros((2, d), dtype=np.float32)
        return out
    rules = [(re.compile(p), t) for p, t in DANET_TO_REF]
    for n, t in tensors.items():
        for p, tmpl in rules:
            mt = p.fullmatch(n)
            if mt:
                out[tmpl.format(*mt.groups())] = t
                break
        else:
            raise HfError(f"tensor {n!r}: no reference-repository name for it (matching.* heads are not exported)")
    return out


def from_hf_bert(sd, where, num_layers=None):
    """Standard BERT names (with or without `bert.`) -> densetrain names; returns (tensors, notes).

    The same mapping as src/train/hf_import.cpp (dense-train --init-from HF_DIR), here for the round trip and
    for users who want the converted file."""
    notes = []
    sd = collections.OrderedDict((k[5:] if k.startswith("bert.") else k, v) for k, v in sd.items())
    for k in sd:
        for fam in ("roberta.", "distilbert.", "electra.", "albert.", "deberta.", "transformer."):
            if k.startswith(fam):
                raise HfError(f"{where}: tensor {k!r}: a {fam[:-1]} checkpoint; only BERT (BertModel / BertForMaskedLM / "
                              f"BertForSequenceClassification names) can be imported")
    layers = sorted({int(m.group(1)) for k in sd for m in [re.match(r"encoder\.layer\.(\d+)\.", k)] if m})
    if not layers:
        raise HfError(f"{where}: no encoder.layer.N tensors (not a BERT checkpoint)")
    L = layers[-1] + 1 if num_layers is None else num_layers
    inv = {v[5:] if v.startswith("bert.") else v: k for k, v in bert_to_hf_names(L).items()}
    out = collections.OrderedDict()
    used = set()
    for hf_name, dt_name in inv.items():
        if hf_name in sd:
            out[dt_name] = sd[hf_name]
            used.add(hf_name)
    d = out["embeddings.word_embeddings.weight"].shape[1]
    for s, fill in (("weight", 1.0), ("bias", 0.0)):
        n = f"encoder.layer.0.attention_norm.{s}"
        if n not in out:
            out[n] = np.full((d,), fill, dtype=np.float32)
            if s == "weight":
                notes.append(f"{where}: no {FIRST_ATTENTION_NORM}.*: layer 0's pre-attention LayerNorm starts as "
                             f"weight 1, bias 0 (a post-LN checkpoint has none)")
    tt = "embeddings.token_type_embeddings.weight"
    if tt in sd:
        used.add(tt)
        row0 = sd[tt][0]
        if np.any(row0 != 0):
            out["embeddings.position_embeddings.weight"] = out["embeddings.position_embeddings.weight"] + row0[None, :]
            notes.append(f"{where}: segment embedding row 0 added to every position (densetrain's BERT has no "
                         f"segment embeddings; inputs of segment 1 lose their offset)")
    for k in ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias", "embeddings.position_ids"):
        if k in sd:
            used.add(k)
    dec = sd.get("cls.predictions.decoder.weight")
    if dec is not None and not np.array_equal(dec, out["embeddings.word_embeddings.weight"]):
        raise HfError(f"{where}: cls.predictions.decoder.weight differs from the word embeddings; densetrain ties them")
    if "cls.seq_relationship.weight" in sd and "classifier.weight" not in out:
        for s in ("weight", "bias"):
            out[f"classifier.{s}"] = sd[f"cls.seq_relationship.{s}"]
            used.add(f"cls.seq_relationship.{s}")
    unknown = [k for k in sd if k not in used]
    if unknown:
        raise HfError(f"{where}: {len(unknown)} tensor(s) with no densetrain BERT counterpart: "
                      f"{', '.join(unknown[:6])}")
    # Vocabulary padded to a multiple of 8 as densetrain builds it: padding rows 0 (they are no tokens).
    V = out["embeddings.word_embeddings.weight"].shape[0]
    Vp = (V + 7) // 8 * 8
    if Vp != V:
        out["embeddings.word_embeddings.weight"] = np.concatenate(
            [out["embeddings.word_embeddings.weight"], np.zeros((Vp - V, d), np.float32)])
        if "lm_head.bias" in out:
            out["lm_head.bias"] = np.concatenate([out["lm_head.bias"], np.zeros((Vp - V,), np.float32)])
        notes.append(f"{where}: vocabulary {V} padded to {Vp} rows (zeros)")
    return out, notes


# ------------------------------------------------------------------------------------------------
# Tokenizer files
# ------------------------------------------------------------------------------------------------

def tokenizer_files(tokens, lowercase, max_len):
    vocab = {t: i for i, t in enumerate(tokens)}
    missing = [s for s in SPECIALS if s not in vocab]
    if missing:
        raise HfError(f"the vocabulary has no {', '.join(missing)} (the BERT special tokens)")
    added = [{"id": vocab[s], "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for s in SPECIALS]
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        # BERT's basic tokenizer as dense-prep implements it: control chars dropped, CJK split, lower case with
        # accents stripped (strip_accents null follows lowercase), punctuation split, then greedy WordPiece.
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": lowercase},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [cls], "tokens": ["[CLS]"]},
                               "[SEP]": {"id": "[SEP]", "ids": [sep], "tokens": ["[SEP]"]}},
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab},
    }
    cfg = {"tokenizer_class": "BertTokenizer", "do_lower_case": lowercase, "model_max_length": max_len,
           "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
           "mask_token": "[MASK]", "clean_up_tokenization_spaces": True, "tokenize_chinese_chars": True,
           "strip_accents": None}
    special = {"unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
               "mask_token": "[MASK]"}
    return tok, cfg, special


# ------------------------------------------------------------------------------------------------
# export / import
# ------------------------------------------------------------------------------------------------

def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def public_section(cfg):
    """The resolved model section without the reference's derived keys."""
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def export_folder(checkpoint, out_dir, head, vocab, config=None, labels=None, lowercase=True, with_onnx=True):
    try:
        weights_path, folder = export_onnx.find_weights(checkpoint)
        cfg_path = config or export_onnx.default_config(weights_path, folder)
        section = export_onnx.converter().load_model_section(cfg_path)
        weights, _ = export_onnx.load_weights(weights_path)
        mt, cfg = export_onnx.resolve_model(section, cfg_path, weights, weights_path)
    except export_onnx.converter().ConvertError as e:
        raise HfError(str(e)) from e
    os.makedirs(os.path.join(out_dir, "onnx"), exist_ok=True)
    # model.safetensors in the exported names, in densetrain's parameter order (the import restores that order).
    shapes = (export_onnx.reference("bert_reference").bert_param_shapes(cfg) if mt == "bert" else
              export_onnx.reference("danet_reference").danet_param_shapes(cfg))
    ordered = collections.OrderedDict((n, weights[n]) for n in shapes)
    hf = to_hf(ordered, mt)
    t = torch()
    sio().save_file(collections.OrderedDict((k, t.from_numpy(np.ascontiguousarray(v))) for k, v in hf.items()),
                    os.path.join(out_dir, "model.safetensors"),
                    metadata={"format": "pt", "densetrain_model_type": mt})
    num_labels = int(cfg["num_labels"])
    if labels:
        names = [s.strip() for s in labels.split(",")]
        if len(names) != num_labels:
            raise HfError(f"--labels {labels!r}: {len(names)} names, the classifier has {num_labels} outputs")
    else:
        names = [f"LABEL_{i}" for i in range(num_labels)]
    max_len = int(cfg["max_position_embeddings"])
    conf = {
        # model_type picks Transformers.js's encoder classes (BertForMaskedLM / BertForSequenceClassification run
        # onnx/model.onnx with input_ids + attention_mask); what the graph computes is in "densetrain".
        "model_type": "bert",
        "architectures": ["BertForMaskedLM" if head == "mlm" else "BertForSequenceClassification"],
        "vocab_size": int(weights["embeddings.word_embeddings.weight"].shape[0]),
        "hidden_size": int(cfg["hidden_size"]),
        "num_hidden_layers": int(cfg["num_hidden_layers"]),
        "num_attention_heads": int(cfg["num_attention_heads"]),
        "intermediate_size": int(cfg["intermediate_size"]) * (int(cfg["hidden_size"]) if mt == "danet" else 1),
        "max_position_embeddings": max_len,
        "type_vocab_size": 2,
        "pad_token_id": 0,
        "id2label": {str(i): n for i, n in enumerate(names)},
        "label2id": {n: i for i, n in enumerate(names)},
        "transformers.js_config": {"dtype": "fp32"},
        "densetrain": {"model": public_section(cfg), "head": head,
                       "safetensors_names": "reference repository (DANet)" if mt == "danet" else
                       "BertForMaskedLM, norms placed by the sub-layer they feed (pre-LN; docs/export.md)"},
    }
    if mt == "bert":
        conf.update(hidden_act=cfg["hidden_act"], layer_norm_eps=float(cfg["layer_norm_eps"]))
    if num_labels == 1:
        conf["problem_type"] = "regression"
    write_json(os.path.join(out_dir, "config.json"), conf)
    if vocab:
        tokens = export_onnx.read_vocab(vocab)
        with open(os.path.join(out_dir, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(tokens) + "\n")
        tok, tcfg, special = tokenizer_files(tokens, lowercase, max_len)
        write_json(os.path.join(out_dir, "tokenizer.json"), tok)
        write_json(os.path.join(out_dir, "tokenizer_config.json"), tcfg)
        write_json(os.path.join(out_dir, "special_tokens_map.json"), special)
    if with_onnx:
        export_onnx.export(weights_path, os.path.join(out_dir, "onnx", "model.onnx"), head, cfg_path, vocab)
    return mt, cfg


def read_hf_tensors(folder):
    st = os.path.join(folder, "model.safetensors")
    if os.path.isfile(st):
        tensors, meta = sio().load_file(st)
        return collections.OrderedDict((k, v.numpy()) for k, v in tensors.items()), meta or {}, st
    binf = os.path.join(folder, "pytorch_model.bin")
    if os.path.isfile(binf):
        sd = torch().load(binf, map_location="cpu", weights_only=True)
        return collections.OrderedDict((k, v.float().numpy()) for k, v in sd.items()), {}, binf
    raise HfError(f"{folder}: no model.safetensors or pytorch_model.bin")


def import_folder(folder, out, write_config=None):
    """A folder written by `export` (or a standard BERT checkpoint) -> densetrain's model.safetensors."""
    cpath = os.path.join(folder, "config.json")
    if not os.path.isfile(cpath):
        raise HfError(f"{folder}: no config.json")
    with open(cpath, encoding="utf-8") as f:
        conf = json.load(f)
    tensors, meta, src = read_hf_tensors(folder)
    dt = conf.get("densetrain", {}).get("model")
    notes = []
    if dt is not None and dt.get("model_type") == "danet":
        conv = export_onnx.converter()
        t = torch()
        sd = collections.OrderedDict((k, t.from_numpy(np.ascontiguousarray(v))) for k, v in tensors.items())
        mapped, _, _ = conv.convert(sd, src, "danet", False, False, [])
        shapes = export_onnx.reference("danet_reference").danet_param_shapes(
            export_onnx.reference("danet_reference").resolve_danet_config(dt))
        out_t = collections.OrderedDict((n, mapped[n].tensor.numpy()) for n in shapes)
        section = dt
    else:
        section = dt or bert_section_from_hf(conf, cpath)
        mapped, notes = from_hf_bert(tensors, src, section["num_hidden_layers"])
        br = export_onnx.reference("bert_reference")
        shapes = br.bert_param_shapes(br.resolve_bert_config(section))
        missing = [n for n in shapes if n not in mapped]
        if missing:
            raise HfError(f"{src}: no tensor for densetrain's {', '.join(missing[:6])}")
        out_t = collections.OrderedDict((n, mapped[n]) for n in shapes)
    t = torch()
    sio().save_file(collections.OrderedDict((k, t.from_numpy(np.ascontiguousarray(v))) for k, v in out_t.items()),
                    out, metadata={"source": os.path.abspath(folder)})
    if write_config:
        write_json(write_config, section)
    return notes


HF_ACT = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu",
          "silu": "silu", "swish": "silu", "tanh": "tanh"}


def bert_section_from_hf(conf, where):
    mt = conf.get("model_type")
    if mt != "bert":
        raise HfError(f"{where}: model_type {mt!r}: only BERT checkpoints can be imported (RoBERTa, DistilBERT, ... "
                      f"have other layouts)")
    act = conf.get("hidden_act", "gelu")
    if act not in HF_ACT:
        raise HfError(f"{where}: hidden_act {act!r} has no densetrain counterpart (allowed: {', '.join(HF_ACT)})")
    if conf.get("position_embedding_type", "absolute") != "absolute":
        raise HfError(f"{where}: position_embedding_type {conf['position_embedding_type']!r}: densetrain's BERT has "
                      f"absolute learned positions only")
    sec = {"model_type": "bert"}
    for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
              "max_position_embeddings"):
        if k not in conf:
            raise HfError(f"{where}: no {k!r}")
        sec[k] = int(conf[k])
    sec["vocab_size"] = (sec["vocab_size"] + 7) // 8 * 8
    sec["hidden_act"] = HF_ACT[act]
    sec["layer_norm_eps"] = float(conf.get("layer_norm_eps", 1e-12))
    sec["num_labels"] = len(conf.get("id2label", {})) or 2
    return sec


def bin_to_safetensors(folder):
    binf = os.path.join(folder, "pytorch_model.bin")
    if not os.path.isfile(binf):
        raise HfError(f"{folder}: no pytorch_model.bin")
    t = torch()
    try:
        sd = t.load(binf, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file
        raise HfError(f"{binf}: not a torch state dict ({str(e).splitlines()[0][:200]})") from e
    if not isinstance(sd, dict) or not all(isinstance(v, t.Tensor) for v in sd.values()):
        raise HfError(f"{binf}: expected a state dict (name -> tensor)")
    out = os.path.join(folder, "model.safetensors")
    sio().save_file(collections.OrderedDict((k, v.detach().float().contiguous()) for k, v in sd.items()), out,
                    metadata={"format": "pt"})
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="a densetrain checkpoint -> a Hugging Face folder with onnx/model.onnx")
    e.add_argument("checkpoint")
    e.add_argument("out_dir")
    e.add_argument("--head", choices=("mlm", "classifier"), required=True)
    e.add_argument("--vocab", required=True, help="the vocab.txt the model was trained with (dense-prep --vocab)")
    e.add_argument("--config", help="model config (default: the run's config.yaml)")
    e.add_argument("--labels", help="comma-separated class names, in label order (default LABEL_0, ...)")
    e.add_argument("--cased", action="store_true", help="the vocabulary is cased (dense-prep without lower-casing)")
    i = sub.add_parser("import", help="a Hugging Face folder -> densetrain's model.safetensors")
    i.add_argument("folder")
    i.add_argument("out")
    i.add_argument("--write-config", help="also write the densetrain model section (JSON)")
    b = sub.add_parser("bin-to-safetensors", help="FOLDER/pytorch_model.bin -> FOLDER/model.safetensors")
    b.add_argument("folder")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "export":
            mt, _ = export_folder(a.checkpoint, a.out_dir, a.head, a.vocab, a.config, a.labels, not a.cased)
            print(f"{a.out_dir}: {mt} {a.head} (config.json, model.safetensors, tokenizer, onnx/model.onnx)")
        elif a.cmd == "import":
            for n in import_folder(a.folder, a.out, a.write_config):
                print(f"note: {n}")
            print(f"{a.out}: densetrain weights")
        else:
            print(f"{bin_to_safetensors(a.folder)}: written")
    except (HfError, export_onnx.ExportError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
