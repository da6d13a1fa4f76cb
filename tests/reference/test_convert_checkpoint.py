#!/usr/bin/python3
"""Tests of scripts/convert_reference_checkpoint.py (run: /usr/bin/python3 tests/reference/test_convert_checkpoint.py).

Reference-layout checkpoints are built here with torch from the parameters of small models of danet_reference /
bert_reference (random values, never zero), renamed to the reference repo's module names by tables written out
by hand below (independently of the converter's own rules), saved with torch.save in the layouts the reference
produces (DeepSpeed folder, plain state dicts, bf16), converted by running the script as a user does, and read
back with safetensors_io. When build/apps/dense-train and dense-prep exist, one converted file is also loaded by
`dense-train --init-from` (one step at learning rate 0) and the checkpoint it writes must hold the same values.

Plain asserts; prints one line per test and "N passed, M failed"; exits non-zero on any failure.
"""

import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import bert_reference as br  # noqa: E402
import danet_reference as dr  # noqa: E402
from safetensors_io import load_file  # noqa: E402

SCRIPT = os.path.join(REPO, "scripts", "convert_reference_checkpoint.py")
# ctest passes the binaries of its build tree; run by hand, the Release build's are used when present.
DENSE_TRAIN = os.environ.get("DENSE_TRAIN_BIN") or os.path.join(REPO, "build", "apps", "dense-train")
DENSE_PREP = os.environ.get("DENSE_PREP_BIN") or os.path.join(REPO, "build", "apps", "dense-prep")
# dense-eval is built beside dense-train.
DENSE_EVAL = os.environ.get("DENSE_EVAL_BIN") or os.path.join(os.path.dirname(DENSE_TRAIN), "dense-eval")
SMALL_VOCAB = os.path.join(REPO, "tests", "fixtures", "wordpiece_vocab_small.txt")
TEST_CORPUS = os.path.join(REPO, "tests", "fixtures", "corpus")

TMP = tempfile.mkdtemp(prefix="dense_convert_test_")

# ------------------------------------------------------------------------------------------------
# Models and the reference repo's names for their parameters (hand-written, 2 layers)
# ------------------------------------------------------------------------------------------------

# Every optional DANet tensor present: gains in every norm, segment embeddings, final norm, pooler norm,
# classifier bias. Vocabulary 560 = the small test WordPiece vocab, so dense-train can run it.
DANET_MODEL = {
    "model_type": "danet", "vocab_size": 560, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
    "intermediate_size": 2, "max_position_embeddings": 16, "pos_emb_type": "learned",
    "pre_attn_ln_type": "scaled_max_norm", "post_attn_ln_type": "prescaled_max_norm",
    "embedding_ln_type": "standard_ln", "final_ln_type": "uncentered_ln", "lm_head_ln_type": "standard_ln",
    "pooler_function": "first", "pooler_act": "tanh", "pooler_ln_type": "standard_ln",
    "token_type_embeddings": True, "classifier_bias": True, "num_labels": 3, "initializer_range": 0.02,
}

# densetrain name -> reference name, for DANetForPreTraining (`self.bert = DANetModel`, `self.cls =
# BertPreTrainingHeads`) as DeepSpeed saves it.
DANET_PRETRAINING_NAMES = {
    "embeddings.word_embeddings.weight": "bert.embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight": "bert.embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight": "bert.embeddings.token_type_embeddings.weight",
    "embeddings.norm.weight": "bert.embeddings.LayerNorm.weight",
    "encoder.layer.0.pre_norm.weight": "bert.encoder.layer.0.activation.weight",
    "encoder.layer.0.attention.queries": "bert.encoder.layer.0.attention.queries",
    "encoder.layer.0.ffn.w1": "bert.encoder.layer.0.ffn.expanding_weight",
    "encoder.layer.0.ffn.w2": "bert.encoder.layer.0.ffn.contracting_weight",
    "encoder.layer.0.post_norm.weight": "bert.encoder.layer.0.ffn_activation.weight",
    "encoder.layer.1.pre_norm.weight": "bert.encoder.layer.1.activation.weight",
    "encoder.layer.1.attention.queries": "bert.encoder.layer.1.attention.queries",
    "encoder.layer.1.ffn.w1": "bert.encoder.layer.1.ffn.expanding_weight",
    "encoder.layer.1.ffn.w2": "bert.encoder.layer.1.ffn.contracting_weight",
    "encoder.layer.1.post_norm.weight": "bert.encoder.layer.1.ffn_activation.weight",
    "encoder.final_norm.weight": "bert.encoder.FinalLayerNorm.weight",
    "lm_head.transform.dense.weight": "cls.predictions.transform.dense_act.weight",
    "lm_head.transform.norm.weight": "cls.predictions.transform.LayerNorm.weight",
    "lm_head.bias": "cls.predictions.bias",
    "pooler.dense.weight": "bert.pooler.dense_act.weight",
    "pooler.norm.weight": "bert.pooler.layer_norm.weight",
    "classifier.weight": "cls.seq_relationship.weight",
    "classifier.bias": "cls.seq_relationship.bias",
}

# DANET_MODEL as the reference repo writes it: a whole run config (configs/bert/*.json) whose model_config uses
# the reference's ModelConfig spellings. Left out on purpose, so that the reference's defaults must be filled
# in: attention_complexity (auto), relpe_scheme (qkv), local_* and the dropouts (0). hidden_act and
# default_ffn_norm are reference keys with no densetrain model counterpart.
REFERENCE_RUN_CONFIG = {
    "name": "dense_attention_bert",
    "model_config": {
        "vocab_size_or_config_json_file": 560, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 2, "default_ffn_norm": 0.05, "hidden_act": "gelu", "max_position_embeddings": 16,
        "pos_emb_type": "learned", "pre_attn_ln_type": "scaled_max_norm", "post_attn_ln_type": "prescaled_max_norm",
        "embedding_ln_type": "standard_ln", "final_ln_type": "uncentered_ln", "lm_head_act": "gelu",
        "lm_head_ln_type": "standard_ln", "pooler_function": "first", "pooler_no_dense": False, "pooler_act": "tanh",
        "pooler_ln_type": "standard_ln", "token_type_embeddings": True, "type_vocab_size": 2,
        "classifier_bias": True, "initializer_range": 0.02, "relpe_type": None,
    },
    "data": {"training": {"input_files_path": "sentence_512/final_data"}},
    "training": {"learning_rate": 4e-4, "lr_schedule": "cosine"},
}
# What the translation must give: every key written out (the heads' num_labels from cls.seq_relationship).
REFERENCE_TRANSLATED = {
    "model_type": "danet", "vocab_size": 560, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
    "intermediate_size": 2, "max_position_embeddings": 16, "initializer_range": 0.02, "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0, "embedding_dropout": 0.0, "classifier_bias": True, "swiglu_ffn": False,
    "attention_complexity": "auto", "pre_attn_ln_type": "scaled_max_norm", "post_attn_ln_type": "prescaled_max_norm",
    "embedding_ln_type": "standard_ln", "lm_head_ln_type": "standard_ln", "final_ln_type": "uncentered_ln",
    "pooler_ln_type": "standard_ln", "token_type_embeddings": True, "type_vocab_size": 2, "pos_emb_type": "learned",
    "relpe_type": None, "relpe_scheme": "qkv", "pooler_function": "first", "pooler_no_dense": False,
    "pooler_act": "tanh", "lm_head_act": "gelu", "causal": False, "chunk_size": 1024, "local_attention": False,
    "window_size": 1024, "local_relpe": True, "local_scheme": "l_sl_g", "num_labels": 3,
}

# A fine-tuned SwiGLU DANet (BertForSequenceClassification: no MLM head, classifier without bias).
DANET_SWIGLU_MODEL = {
    "model_type": "danet", "vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 1,
    "intermediate_size": 2, "max_position_embeddings": 16, "swiglu_ffn": True, "pos_emb_type": "relpe",
    "relpe_type": "rope", "relpe_scheme": "q,k", "pre_attn_ln_type": "scaled_max_norm",
    "embedding_ln_type": "max_norm", "pooler_function": "first", "pooler_act": "tanh", "num_labels": 2,
}
DANET_SEQCLS_SWIGLU_NAMES = {
    "embeddings.word_embeddings.weight": "bert.embeddings.word_embeddings.weight",
    "encoder.layer.0.pre_norm.weight": "bert.encoder.layer.0.activation.weight",
    "encoder.layer.0.attention.queries": "bert.encoder.layer.0.attention.queries",
    "encoder.layer.0.ffn.up.weight": "bert.encoder.layer.0.ffn.c_up.weight",
    "encoder.layer.0.ffn.proj.weight": "bert.encoder.layer.0.ffn.c_proj.weight",
    "encoder.layer.1.pre_norm.weight": "bert.encoder.layer.1.activation.weight",
    "encoder.layer.1.attention.queries": "bert.encoder.layer.1.attention.queries",
    "encoder.layer.1.ffn.up.weight": "bert.encoder.layer.1.ffn.c_up.weight",
    "encoder.layer.1.ffn.proj.weight": "bert.encoder.layer.1.ffn.c_proj.weight",
    "pooler.dense.weight": "bert.pooler.dense_act.weight",
    "classifier.weight": "classifier.weight",
}

# LRA Retrieval (BertForAANMatching): dense (4d -> d) + classifier, no MLM head.
DANET_AAN_MODEL = {
    "model_type": "danet", "vocab_size": 48, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 2, "max_position_embeddings": 16, "pos_emb_type": "relpe", "relpe_type": "cosine",
    "embedding_ln_type": "max_norm", "pooler_function": "first", "pair_matching": True, "num_labels": 2,
}
DANET_AAN_NAMES = {
    "embeddings.word_embeddings.weight": "bert.embeddings.word_embeddings.weight",
    "encoder.layer.0.attention.queries": "bert.encoder.layer.0.attention.queries",
    "encoder.layer.0.ffn.w1": "bert.encoder.layer.0.ffn.expanding_weight",
    "encoder.layer.0.ffn.w2": "bert.encoder.layer.0.ffn.contracting_weight",
    "encoder.layer.1.attention.queries": "bert.encoder.layer.1.attention.queries",
    "encoder.layer.1.ffn.w1": "bert.encoder.layer.1.ffn.expanding_weight",
    "encoder.layer.1.ffn.w2": "bert.encoder.layer.1.ffn.contracting_weight",
    "pooler.dense.weight": "bert.pooler.dense_act.weight",
    "matching.dense.weight": "dense.weight",
    "matching.classifier.weight": "classifier.weight",
}

BERT_MODEL = {
    "model_type": "bert", "vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
    "intermediate_size": 32, "max_position_embeddings": 16, "num_labels": 2,
}
# TransformerForPreTraining (src/other_models/modeling.py of the reference).
BERT_PRETRAINING_NAMES = {
    "embeddings.word_embeddings.weight": "bert.embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight": "bert.embeddings.position_embeddings.weight",
    "embeddings.norm.weight": "bert.embeddings.LayerNorm.weight",
    "embeddings.norm.bias": "bert.embeddings.LayerNorm.bias",
    "encoder.layer.0.attention_norm.weight": "bert.encoder.layer.0.PreAttentionLayerNorm.weight",
    "encoder.layer.0.attention_norm.bias": "bert.encoder.layer.0.PreAttentionLayerNorm.bias",
    "encoder.layer.0.attention.query.weight": "bert.encoder.layer.0.attention.self.query.weight",
    "encoder.layer.0.attention.query.bias": "bert.encoder.layer.0.attention.self.query.bias",
    "encoder.layer.0.attention.key.weight": "bert.encoder.layer.0.attention.self.key.weight",
    "encoder.layer.0.attention.key.bias": "bert.encoder.layer.0.attention.self.key.bias",
    "encoder.layer.0.attention.value.weight": "bert.encoder.layer.0.attention.self.value.weight",
    "encoder.layer.0.attention.value.bias": "bert.encoder.layer.0.attention.self.value.bias",
    "encoder.layer.0.attention.output.weight": "bert.encoder.layer.0.attention.output.dense.weight",
    "encoder.layer.0.attention.output.bias": "bert.encoder.layer.0.attention.output.dense.bias",
    "encoder.layer.0.ffn_norm.weight": "bert.encoder.layer.0.PostAttentionLayerNorm.weight",
    "encoder.layer.0.ffn_norm.bias": "bert.encoder.layer.0.PostAttentionLayerNorm.bias",
    "encoder.layer.0.ffn.dense_in.weight": "bert.encoder.layer.0.intermediate.dense.weight",
    "encoder.layer.0.ffn.dense_in.bias": "bert.encoder.layer.0.intermediate.dense.bias",
    "encoder.layer.0.ffn.dense_out.weight": "bert.encoder.layer.0.output.dense.weight",
    "encoder.layer.0.ffn.dense_out.bias": "bert.encoder.layer.0.output.dense.bias",
    "encoder.layer.1.attention_norm.weight": "bert.encoder.layer.1.PreAttentionLayerNorm.weight",
    "encoder.layer.1.attention_norm.bias": "bert.encoder.layer.1.PreAttentionLayerNorm.bias",
    "encoder.layer.1.attention.query.weight": "bert.encoder.layer.1.attention.self.query.weight",
    "encoder.layer.1.attention.query.bias": "bert.encoder.layer.1.attention.self.query.bias",
    "encoder.layer.1.attention.key.weight": "bert.encoder.layer.1.attention.self.key.weight",
    "encoder.layer.1.attention.key.bias": "bert.encoder.layer.1.attention.self.key.bias",
    "encoder.layer.1.attention.value.weight": "bert.encoder.layer.1.attention.self.value.weight",
    "encoder.layer.1.attention.value.bias": "bert.encoder.layer.1.attention.self.value.bias",
    "encoder.layer.1.attention.output.weight": "bert.encoder.layer.1.attention.output.dense.weight",
    "encoder.layer.1.attention.output.bias": "bert.encoder.layer.1.attention.output.dense.bias",
    "encoder.layer.1.ffn_norm.weight": "bert.encoder.layer.1.PostAttentionLayerNorm.weight",
    "encoder.layer.1.ffn_norm.bias": "bert.encoder.layer.1.PostAttentionLayerNorm.bias",
    "encoder.layer.1.ffn.dense_in.weight": "bert.encoder.layer.1.intermediate.dense.weight",
    "encoder.layer.1.ffn.dense_in.bias": "bert.encoder.layer.1.intermediate.dense.bias",
    "encoder.layer.1.ffn.dense_out.weight": "bert.encoder.layer.1.output.dense.weight",
    "encoder.layer.1.ffn.dense_out.bias": "bert.encoder.layer.1.output.dense.bias",
    "encoder.final_norm.weight": "bert.encoder.FinalLayerNorm.weight",
    "encoder.final_norm.bias": "bert.encoder.FinalLayerNorm.bias",
    "lm_head.transform.dense.weight": "cls.predictions.transform.dense.weight",
    "lm_head.transform.dense.bias": "cls.predictions.transform.dense.bias",
    "lm_head.transform.norm.weight": "cls.predictions.transform.LayerNorm.weight",
    "lm_head.transform.norm.bias": "cls.predictions.transform.LayerNorm.bias",
    "lm_head.bias": "cls.predictions.bias",
    "pooler.dense.weight": "bert.pooler.dense.weight",
    "pooler.dense.bias": "bert.pooler.dense.bias",
    "classifier.weight": "cls.seq_relationship.weight",
    "classifier.bias": "cls.seq_relationship.bias",
}


def random_params(shapes, seed):
    """Random values, never exactly zero, distinct per tensor."""
    g = torch.Generator().manual_seed(seed)
    out = collections.OrderedDict()
    for i, (name, shape) in enumerate(shapes.items()):
        t = torch.randn(*shape, generator=g, dtype=torch.float32) * 0.5 + 0.01 * (i + 1)
        t[t == 0] = 0.25
        out[name] = t
    return out


def danet_params(model, seed):
    return random_params(dr.danet_param_shapes(dr.resolve_danet_config(model)), seed)


def to_reference(params, names, prefix=""):
    assert set(names) == set(params), ("test table out of date", set(names) ^ set(params))
    return collections.OrderedDict((prefix + names[k], v.clone()) for k, v in params.items())


def add_tied_decoder(sd, prefix=""):
    # The same tensor object, as in the reference (decoder.weight = word_embeddings.weight): torch.save keeps it shared.
    sd[prefix + "cls.predictions.decoder.weight"] = sd[prefix + "bert.embeddings.word_embeddings.weight"]


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)


def write_yaml_config(path, model_include, extra_model="", data_dir=None):
    """A dense-train config whose model section includes a JSON model file and overrides one key on top."""
    data = ""
    if data_dir:
        data = (f"data:\n  train: {data_dir}\n  vocab: {SMALL_VOCAB}\n  seq_len: 16\n"
                f"training:\n  max_steps: 1\n  global_batch: 4\n  threads: 1\n"
                f"  optimizer:\n    learning_rate: 0.0\n"
                f"checkpoint:\n  every_steps: 0\nlogging:\n  every_steps: 1\n  progress: false\n")
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"name: convert-test\nmodel:\n  include: {model_include}\n{extra_model}{data}")


def run(*args):
    r = subprocess.run([sys.executable, SCRIPT, *[str(a) for a in args]], capture_output=True, text=True,
                       timeout=300)
    return r.returncode, r.stdout, r.stderr


def assert_clean_error(rc, out, err, *needles):
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in err and "Traceback" not in out, err
    assert err.startswith("convert_reference_checkpoint: error: "), err
    for n in needles:
        assert n in err, (n, err)


def assert_same(got, want, what=""):
    assert list(got) == list(want) or set(got) == set(want), (what, set(got) ^ set(want))
    for k, v in want.items():
        g = got[k]
        assert g.dtype == torch.float32, (what, k, g.dtype)
        assert tuple(g.shape) == tuple(v.shape), (what, k, tuple(g.shape), tuple(v.shape))
        assert torch.equal(g, v.to(torch.float32)), (what, k, (g - v).abs().max().item())


def new_dir(name):
    d = os.path.join(TMP, name)
    os.makedirs(d)
    return d


# ------------------------------------------------------------------------------------------------
# The DANet pretraining checkpoint in DeepSpeed's folder layout (shared by several tests)
# ------------------------------------------------------------------------------------------------

_DS = {}


def deepspeed_case():
    if _DS:
        return _DS
    d = new_dir("deepspeed")
    params = danet_params(DANET_MODEL, seed=1)
    sd = to_reference(params, DANET_PRETRAINING_NAMES, prefix="module.")
    add_tied_decoder(sd, prefix="module.")
    sd["module.bert.encoder.rope_cache.rel_pos_emb"] = torch.rand(1, 16, 16) + 0.5   # a RelPE buffer
    ckpt = os.path.join(d, "ckpt")
    for tag, values in (("global_step3", {k: torch.full_like(v, 7.0) for k, v in sd.items()}),   # older, a decoy
                        ("global_step7", sd)):
        os.makedirs(os.path.join(ckpt, tag))
        # What DeepSpeed writes next to the weights, a set included (torch 1.13's weights_only refuses sets).
        torch.save({"module": collections.OrderedDict(values), "buffer_names": ["bert.encoder.rope_cache.rel_pos_emb"],
                    "optimizer": None, "lr_scheduler": None, "sparse_tensor_module_names": set(),
                    "skipped_steps": 0, "global_steps": 7, "global_samples": 28, "dp_world_size": 1,
                    "mp_world_size": 1, "ds_config": {"train_batch_size": 4, "bf16": {"enabled": True}},
                    "ds_version": "0.14.0", "epoch": 0, "last_global_step": 7, "last_global_data_samples": 28},
                   os.path.join(ckpt, tag, "mp_rank_00_model_states.pt"))
    with open(os.path.join(ckpt, "latest"), "w", encoding="utf-8") as f:
        f.write("global_step7\n")
    write_json(os.path.join(d, "danet_model.json"), DANET_MODEL)
    cfg = os.path.join(d, "run.yaml")
    write_yaml_config(cfg, "danet_model.json")
    _DS.update(dir=d, params=params, sd=sd, ckpt=ckpt, cfg=cfg)
    return _DS


# ------------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------------

def test_deepspeed_folder_f32():
    c = deepspeed_case()
    out_dir = new_dir("ds_out")
    out = os.path.join(out_dir, "model.safetensors")
    rc, so, se = run(c["ckpt"], out, "--model-config", c["cfg"], "--strict")
    assert rc == 0, (rc, so, se)
    assert se == "", se
    got, meta = load_file(out)
    want = c["params"]
    assert list(got) == list(want), "not in densetrain's parameter order"
    assert_same(got, want, "deepspeed f32")
    assert meta["reference_model"] == "danet" and meta["converted_from"].endswith(
        os.path.join("global_step7", "mp_rank_00_model_states.pt")), meta
    assert os.listdir(out_dir) == ["model.safetensors"], os.listdir(out_dir)   # no temporary left behind
    # The table and the dropped list.
    assert "bert.encoder.layer.1.ffn.contracting_weight" in so and "encoder.layer.1.ffn.w2" in so, so
    line = next(ln for ln in so.splitlines() if ln.startswith("cls.seq_relationship.weight"))
    assert "-> classifier.weight" in line and "[3, 16]" in line, line
    dropped = so[so.index("dropped (2):"):]
    assert "cls.predictions.decoder.weight [560, 16]: tied MLM decoder" in dropped, dropped
    assert "bert.encoder.rope_cache.rel_pos_emb [1, 16, 16]: RelPE cos/sin cache" in dropped, dropped
    assert "restricted unpickler" in so and "set" in so, so   # the fallback was used and said so


def test_end_to_end_dense_train_init_from():
    """dense-train --init-from loads the converted file; one step at learning rate 0 keeps every value."""
    if not (os.access(DENSE_TRAIN, os.X_OK) and os.access(DENSE_PREP, os.X_OK)):
        print("  SKIP: no build/apps/dense-train or dense-prep")
        return
    c = deepspeed_case()
    d = new_dir("e2e")
    shards = os.path.join(d, "shards")
    r = subprocess.run([DENSE_PREP, "-q", "-j", "1", "pretrain", TEST_CORPUS, "--vocab", SMALL_VOCAB, "-o", shards,
                        "-N", "16", "--format", "packed"], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        print(f"  SKIP: dense-prep could not make the test shards: {r.stderr.strip()[:200]}")
        return
    shutil.copy(os.path.join(c["dir"], "danet_model.json"), os.path.join(d, "danet_model.json"))
    cfg = os.path.join(d, "train.yaml")
    write_yaml_config(cfg, "danet_model.json", data_dir=shards)
    out = os.path.join(d, "converted.safetensors")
    rc, so, se = run(c["ckpt"], out, "--model-config", cfg, "--strict", "-q")
    assert rc == 0 and so == "" and se == "", (rc, so, se)
    run_dir = os.path.join(d, "run")
    env = dict(os.environ, DENSE_NUM_THREADS="1")
    r = subprocess.run([DENSE_TRAIN, "--config", cfg, "--init-from", out, "--resume", "none", "--run-dir", run_dir,
                        "-q"], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert "not a parameter" not in r.stderr, r.stderr
    ck = os.path.join(run_dir, "checkpoints", "step-00000001", "model.safetensors")
    got, _ = load_file(ck)
    assert_same(got, c["params"], "after dense-train --init-from")
    if not os.access(DENSE_EVAL, os.X_OK):
        print("  SKIP (dense-eval part): no dense-eval beside dense-train")
        return
    # The converted weights scored as docs/checkpoints.md shows: dense-eval mlm --checkpoint X.safetensors
    # --config CFG, CFG written by --write-config from the reference's own model config (+ the vocabulary, so
    # that the masks are drawn as in the run). Then the run folder itself: its newest checkpoint holds the same
    # weights (learning rate 0) and its config.yaml the same model, so the loss must be the same double.
    ref_json = os.path.join(d, "reference_run.json")
    write_json(ref_json, REFERENCE_RUN_CONFIG)
    out2, cfg2 = os.path.join(d, "converted2.safetensors"), os.path.join(d, "converted.yaml")
    rc, so, se = run(c["ckpt"], out2, "--reference-config", ref_json, "--write-config", cfg2, "-q")
    assert rc == 0 and se == "", (rc, so, se)

    def mlm(checkpoint, *extra):
        js = os.path.join(d, f"mlm{len(os.listdir(d))}.json")
        # One batch size for both: the configs' micro batches differ, and so would the float sums.
        r = subprocess.run([DENSE_EVAL, "mlm", "--checkpoint", checkpoint, "--data", shards, "--json", js,
                            "--batch", "4", *extra],
                           capture_output=True, text=True, timeout=600, env=env)
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        with open(js, encoding="utf-8") as f:
            return json.load(f), r.stdout

    by_file, screen = mlm(out2, "--config", cfg2, "--set", f"data.vocab={SMALL_VOCAB}")
    assert by_file["masked_tokens"] > 0 and 0 < by_file["loss"] < 20, by_file
    # Six significant digits on screen; the JSON keeps the exact double (shortest round-trip text).
    assert f"loss {by_file['loss']:.6g}, accuracy {by_file['accuracy']:.6g}" in screen, (screen, by_file)
    by_run, screen = mlm(run_dir)
    assert "checkpoint: " + os.path.join(run_dir, "checkpoints", "step-00000001") in screen, screen
    assert by_run["loss"] == by_file["loss"] and by_run["accuracy"] == by_file["accuracy"], (by_run, by_file)


def test_reference_config_translation():
    """--reference-config: the reference's ModelConfig JSON becomes the densetrain model section (every key,
    reference defaults included) that the weights are checked against, and --write-config writes it."""
    c = deepspeed_case()
    d = new_dir("refcfg")
    ref_json = os.path.join(d, "bert_large_seq512.json")
    write_json(ref_json, REFERENCE_RUN_CONFIG)
    out, written = os.path.join(d, "model.safetensors"), os.path.join(d, "model.json")
    rc, so, se = run(c["ckpt"], out, "--reference-config", ref_json, "--write-config", written, "--strict")
    assert rc == 0 and se == "", (rc, so, se)
    got, meta = load_file(out)
    assert list(got) == list(c["params"]), "not in densetrain's parameter order"
    assert_same(got, c["params"], "with --reference-config")
    assert meta["reference_config"] == os.path.abspath(ref_json), meta
    with open(written, encoding="utf-8") as f:
        section = json.load(f)
    assert section == REFERENCE_TRANSLATED, {k: (section.get(k), REFERENCE_TRANSLATED.get(k))
                                             for k in set(section) | set(REFERENCE_TRANSLATED)
                                             if section.get(k) != REFERENCE_TRANSLATED.get(k)}
    assert "note: default_ffn_norm 0.05" in so and "note: hidden_act 'gelu'" in so, so
    # The written section is a densetrain --model-config that agrees with the reference config.
    rc, so, se = run(c["ckpt"], os.path.join(d, "again.safetensors"), "--model-config", written,
                     "--reference-config", ref_json, "--strict", "-q")
    assert rc == 0 and se == "", (rc, so, se)
    # A bare model_config works as well; the YAML form is a dense-train / dense-eval config.
    bare = os.path.join(d, "bare.json")
    write_json(bare, REFERENCE_RUN_CONFIG["model_config"])
    yaml_out = os.path.join(d, "model.yaml")
    rc, so, se = run(c["ckpt"], os.path.join(d, "bare.safetensors"), "--reference-config", bare, "--write-config",
                     yaml_out, "-q")
    assert rc == 0, (rc, so, se)
    import yaml
    with open(yaml_out, encoding="utf-8") as f:
        assert yaml.safe_load(f) == {"model": REFERENCE_TRANSLATED}

    def with_model(**changes):
        cfg = json.loads(json.dumps(REFERENCE_RUN_CONFIG))
        cfg["model_config"].update(changes)
        path = os.path.join(d, f"changed{len(os.listdir(d))}.json")
        write_json(path, cfg)
        return path

    # Invisible in the weights, so only the configs can tell: 4 heads of 4 instead of 2 of 8.
    rc, so, se = run(c["ckpt"], os.path.join(d, "x.safetensors"), "--reference-config",
                     with_model(num_attention_heads=4), "--model-config", c["cfg"])
    assert_clean_error(rc, so, se, "differs from the reference config", "num_attention_heads: ", "gives 4", "has 2")
    rc, so, se = run(c["ckpt"], os.path.join(d, "x.safetensors"), "--reference-config",
                     with_model(local_attention=True, window_size=8), "--model-config", c["cfg"])
    assert_clean_error(rc, so, se, "local_attention: ", "window_size: ")
    # Unknown keys and values densetrain cannot reproduce name the key.
    for changes, needles in (({"vocab_sise": 560}, ("vocab_sise: not a key", "did you mean 'vocab_size'")),
                             ({"relpe_type": "learned"}, ("relpe_type: 'learned'",)),
                             ({"hybrid": True}, ("hybrid: true",)),
                             ({"pooler_act": "swish"}, ("pooler_act: 'swish' is not supported", "gelu_tanh")),
                             ({"pos_emb_type": "alibi"}, ("pos_emb_type: 'alibi'",)),
                             ({"local_scheme": "l_x_g"}, ("local_scheme: 'l_x_g'",)),
                             ({"num_attention_heads": 3}, ("num_attention_heads 3 does not divide hidden_size 16",)),
                             ({"vocab_size_or_config_json_file": "bert_config.json"},
                              ("vocab_size_or_config_json_file: expected the vocabulary size",))):
        out_x = os.path.join(d, "x.safetensors")
        rc, so, se = run(c["ckpt"], out_x, "--reference-config", with_model(**changes))
        assert_clean_error(rc, so, se, *needles)
        assert not os.path.exists(out_x)
    rc, so, se = run(c["ckpt"], os.path.join(d, "x.safetensors"), "--write-config", os.path.join(d, "w.json"))
    assert_clean_error(rc, so, se, "--write-config needs --reference-config")
    rc, so, se = run(c["ckpt"], os.path.join(d, "x.safetensors"), "--reference-config", ref_json, "--write-config",
                     os.path.join(d, "w.txt"))
    assert_clean_error(rc, so, se, "w.txt", ".json", ".yaml")


def test_bf16_state_dict_swiglu_and_missing_heads():
    d = new_dir("bf16")
    params = danet_params(DANET_SWIGLU_MODEL, seed=2)
    params = collections.OrderedDict((k, v) for k, v in params.items() if not k.startswith("lm_head."))
    sd = to_reference(params, DANET_SEQCLS_SWIGLU_NAMES)
    sd = collections.OrderedDict((k, v.to(torch.bfloat16)) for k, v in sd.items())
    src = os.path.join(d, "pytorch_model.bin")
    torch.save(sd, src)
    write_json(os.path.join(d, "model.json"), DANET_SWIGLU_MODEL)
    out = os.path.join(d, "out.safetensors")
    want = collections.OrderedDict((k, v.to(torch.bfloat16).to(torch.float32)) for k, v in params.items())

    # Without a config: every tensor converted, bf16 -> f32 exactly.
    rc, so, se = run(src, out)
    assert rc == 0, (rc, so, se)
    got, _ = load_file(out)
    assert_same(got, want, "bf16")
    assert "(from bfloat16)" in so, so
    # The fine-tuned model has no MLM head, which a densetrain model always has.
    rc, so, se = run(src, out, "--model-config", os.path.join(d, "model.json"))
    assert_clean_error(rc, so, se, "missing: lm_head.transform.dense.weight [16, 16]", "missing: lm_head.bias [40]",
                       "--init-missing-heads")
    rc, so, se = run(src, out, "--model-config", os.path.join(d, "model.json"), "--init-missing-heads", "--seed", "3")
    assert rc == 0, (rc, so, se)
    got, meta = load_file(out)
    heads = [k for k in dr.danet_param_shapes(dr.resolve_danet_config(DANET_SWIGLU_MODEL)) if k.startswith("lm_head.")]
    assert meta["initialised_heads"].split(",") == heads, meta
    assert_same({k: v for k, v in got.items() if k in want}, want, "bf16 with heads")
    assert torch.equal(got["lm_head.bias"], torch.zeros(40)), "MLM bias starts at 0"
    assert torch.equal(got["lm_head.transform.norm.weight"], torch.ones(16)), "norm gain starts at 1"
    w = got["lm_head.transform.dense.weight"]
    assert w.abs().max() <= 0.02 and w.abs().min() > 0 and w.std() > 0.005, "Uniform(-r0, r0), r0 = 0.02"


def test_swiglu_old_two_input_halves():
    d = new_dir("swiglu_old")
    g = torch.Generator().manual_seed(4)
    fc1, fc2, proj = torch.randn(128, 16, generator=g), torch.randn(128, 16, generator=g), torch.randn(16, 128, generator=g)
    words, queries = torch.randn(40, 16, generator=g), torch.randn(16, 16, generator=g)
    sd = collections.OrderedDict([
        ("bert.embeddings.word_embeddings.weight", words),
        ("bert.encoder.layer.0.attention.queries", queries),
        ("bert.encoder.layer.0.ffn.c_fc1.weight", fc1),
        ("bert.encoder.layer.0.ffn.c_fc2.weight", fc2),
        ("bert.encoder.layer.0.ffn.c_proj.weight", proj),
    ])
    src = os.path.join(d, "old.pt")
    torch.save({"model": sd}, src)
    out = os.path.join(d, "out.safetensors")
    rc, so, se = run(src, out)
    assert rc == 0, (rc, so, se)
    got, _ = load_file(out)
    assert torch.equal(got["encoder.layer.0.ffn.up.weight"], torch.cat([fc1, fc2], 0)), "a rows first, then b"
    assert torch.equal(got["encoder.layer.0.ffn.proj.weight"], proj)
    del sd["bert.encoder.layer.0.ffn.c_fc2.weight"]
    torch.save({"model": sd}, src)
    rc, so, se = run(src, out)
    assert_clean_error(rc, so, se, "bert.encoder.layer.0.ffn.c_fc1.weight", "bert.encoder.layer.0.ffn.c_fc2.weight")


def test_aan_matching_model():
    d = new_dir("aan")
    params = danet_params(DANET_AAN_MODEL, seed=5)
    params = collections.OrderedDict((k, v) for k, v in params.items() if not k.startswith("lm_head."))
    sd = to_reference(params, DANET_AAN_NAMES, prefix="module.")
    src = os.path.join(d, "mp_rank_00_model_states.pt")
    torch.save({"module": sd}, src)
    write_json(os.path.join(d, "aan.json"), DANET_AAN_MODEL)
    out = os.path.join(d, "out.safetensors")
    rc, so, se = run(d, out, "--model-config", os.path.join(d, "aan.json"), "--init-missing-heads", "--strict")
    assert rc == 0, (rc, so, se)
    got, _ = load_file(out)
    assert_same({k: v for k, v in got.items() if not k.startswith("lm_head.")}, params, "aan")
    assert "classifier.weight" in so and "-> matching.classifier.weight" in so, so


def test_bert_baseline_state_dict_key():
    d = new_dir("bert")
    params = random_params(br.bert_param_shapes(br.resolve_bert_config(BERT_MODEL)), seed=6)
    sd = to_reference(params, BERT_PRETRAINING_NAMES)
    add_tied_decoder(sd)
    src = os.path.join(d, "bert.pt")
    torch.save({"state_dict": sd, "epoch": 2}, src)
    write_json(os.path.join(d, "bert.json"), BERT_MODEL)
    out = os.path.join(d, "out.safetensors")
    rc, so, se = run(src, out, "--model-config", os.path.join(d, "bert.json"), "--strict")
    assert rc == 0, (rc, so, se)
    got, meta = load_file(out)
    assert list(got) == list(params)
    assert_same(got, params, "bert")
    assert meta["reference_model"] == "bert"
    # The same tensors are not a DANet.
    write_json(os.path.join(d, "danet.json"), dict(DANET_MODEL, vocab_size=40))
    rc, so, se = run(src, out, "--model-config", os.path.join(d, "danet.json"))
    assert_clean_error(rc, so, se, "bert model", "danet model was asked for")


def test_drop_cls_head():
    c = deepspeed_case()
    out = os.path.join(new_dir("dropcls"), "model.safetensors")
    rc, so, se = run(c["ckpt"], out, "--drop-cls-head")
    assert rc == 0, (rc, so, se)
    got, _ = load_file(out)
    assert "classifier.weight" not in got and "classifier.bias" not in got
    assert "cls.seq_relationship.weight [3, 16]: classification (NSP) head" in so, so
    assert "cls.seq_relationship.bias [3]: classification (NSP) head" in so, so
    # A densetrain model needs a classifier: missing, unless initialised.
    rc, so, se = run(c["ckpt"], out, "--drop-cls-head", "--model-config", c["cfg"])
    assert_clean_error(rc, so, se, "missing: classifier.weight [3, 16]", "missing: classifier.bias [3]")
    cfg5 = os.path.join(c["dir"], "five_labels.yaml")
    write_yaml_config(cfg5, "danet_model.json", extra_model="  num_labels: 5\n")
    rc, so, se = run(c["ckpt"], out, "--drop-cls-head", "--model-config", cfg5, "--init-missing-heads")
    assert rc == 0, (rc, so, se)
    got, _ = load_file(out)
    assert tuple(got["classifier.weight"].shape) == (5, 16) and torch.equal(got["classifier.bias"], torch.zeros(5))
    # Without --drop-cls-head the 3-label head does not fit a 5-label model; the message names it.
    rc, so, se = run(c["ckpt"], out, "--model-config", cfg5)
    assert_clean_error(rc, so, se, "shape: classifier.weight (from cls.seq_relationship.weight) is [3, 16], "
                                   "the model needs [5, 16]")


def test_materialize_ffn_scaling():
    c = deepspeed_case()
    out = os.path.join(new_dir("ffnscale"), "model.safetensors")
    rc, so, se = run(c["ckpt"], out, "--materialize-ffn-scaling", "0.05")
    assert rc == 0, (rc, so, se)
    got, _ = load_file(out)
    for name, t in c["params"].items():
        if name.endswith((".ffn.w1", ".ffn.w2")):
            rho = min(1.0, 0.05 / float(t.abs().max()))
            assert rho < 1.0
            assert torch.equal(got[name], t * rho), name
        else:
            assert torch.equal(got[name], t), name


def test_error_unknown_tensors():
    c = deepspeed_case()
    d = new_dir("unknown")
    sd = collections.OrderedDict(c["sd"])
    sd["module.foo.bar"] = torch.ones(3)
    sd["module.bert.encoder.layer.0.attention.self.query.weight"] = torch.ones(16, 16)
    src = os.path.join(d, "ck.pt")
    torch.save({"module": sd}, src)
    out = os.path.join(d, "model.safetensors")
    rc, so, se = run(src, out)
    assert_clean_error(rc, so, se, "2 tensor(s) with no densetrain counterpart", "foo.bar [3]",
                       "bert.encoder.layer.0.attention.self.query.weight [16, 16]", "hybrid DANet", "--allow-unknown")
    assert not os.path.exists(out)
    rc, so, se = run(src, out, "--allow-unknown")
    assert rc == 0, (rc, so, se)
    assert "warning: unknown tensor 'foo.bar' [3] dropped" in se, se
    assert "foo.bar [3]: unknown name, dropped by --allow-unknown" in so, so
    rc, so, se = run(src, os.path.join(d, "strict.safetensors"), "--allow-unknown", "--strict")
    assert_clean_error(rc, so, se, "--strict", "foo.bar")
    assert not os.path.exists(os.path.join(d, "strict.safetensors"))


def test_error_shape_and_vocab_mismatch():
    c = deepspeed_case()
    d = c["dir"]
    out = os.path.join(new_dir("mismatch"), "model.safetensors")
    cfg = os.path.join(d, "r3.yaml")
    write_yaml_config(cfg, "danet_model.json", extra_model="  intermediate_size: 3\n")
    rc, so, se = run(c["ckpt"], out, "--model-config", cfg)
    assert_clean_error(rc, so, se, "shape: encoder.layer.0.ffn.w1 (from bert.encoder.layer.0.ffn.expanding_weight) "
                                   "is [16, 32], the model needs [16, 48]", "encoder.layer.1.ffn.w2")
    cfg = os.path.join(d, "v600.yaml")
    write_yaml_config(cfg, "danet_model.json", extra_model="  vocab_size: 597\n")
    rc, so, se = run(c["ckpt"], out, "--model-config", cfg)
    assert_clean_error(rc, so, se, "vocabulary", "have 560 rows", "vocab_size 597 gives 600")
    assert "lm_head.bias" not in se, se   # one message for the vocabulary, not one per table
    # A model without the final norm: the checkpoint's gain is extra (a warning; an error under --strict).
    cfg = os.path.join(d, "nofinal.yaml")
    write_yaml_config(cfg, "danet_model.json", extra_model="  final_ln_type: none\n")
    rc, so, se = run(c["ckpt"], out, "--model-config", cfg)
    assert rc == 0 and "warning: encoder.final_norm.weight (from bert.encoder.FinalLayerNorm.weight) is not a " \
                       "parameter of the model" in se, (rc, se)
    rc, so, se = run(c["ckpt"], out, "--model-config", cfg, "--strict")
    assert_clean_error(rc, so, se, "--strict", "encoder.final_norm.weight")
    # A tensor missing from the checkpoint.
    sd = collections.OrderedDict((k, v) for k, v in c["sd"].items() if "layer.1.attention.queries" not in k)
    src = os.path.join(d, "no_q1.pt")
    torch.save({"module": sd}, src)
    rc, so, se = run(src, out, "--model-config", c["cfg"], "--init-missing-heads")
    assert_clean_error(rc, so, se, "missing: encoder.layer.1.attention.queries [16, 16]")


def test_error_bad_inputs():
    d = new_dir("bad")
    out = os.path.join(d, "model.safetensors")
    text = os.path.join(d, "notes.txt")
    with open(text, "w", encoding="utf-8") as f:
        f.write("this is not a checkpoint\n")
    rc, so, se = run(text, out)
    assert_clean_error(rc, so, se, text, "not a PyTorch checkpoint")
    torch.save([torch.ones(2)], os.path.join(d, "list.pt"))
    rc, so, se = run(os.path.join(d, "list.pt"), out)
    assert_clean_error(rc, so, se, "list.pt: holds a list")
    torch.save({"epoch": 3, "args": "x"}, os.path.join(d, "nosd.pt"))
    rc, so, se = run(os.path.join(d, "nosd.pt"), out)
    assert_clean_error(rc, so, se, "nosd.pt: no state dict", "'module'", "'epoch'")
    torch.save({"module": {"bert.embeddings.word_embeddings.weight": torch.ones(8, 4), "step": 3}},
               os.path.join(d, "mixed.pt"))
    rc, so, se = run(os.path.join(d, "mixed.pt"), out)
    assert_clean_error(rc, so, se, "key 'module'", "entry 'step' is a int")
    torch.save({"module": None}, os.path.join(d, "zero3.pt"))
    rc, so, se = run(os.path.join(d, "zero3.pt"), out)
    assert_clean_error(rc, so, se, "key 'module' is empty", "zero_to_fp32.py")
    rc, so, se = run(os.path.join(d, "missing.pt"), out)
    assert_clean_error(rc, so, se, "missing.pt: no such file or folder")
    rc, so, se = run(d, out)   # a folder that is no DeepSpeed checkpoint
    assert_clean_error(rc, so, se, "mp_rank_00_model_states.pt")
    # Two tags and no `latest`.
    c = deepspeed_case()
    two = os.path.join(d, "two_tags")
    shutil.copytree(c["ckpt"], two)
    os.remove(os.path.join(two, "latest"))
    rc, so, se = run(two, out)
    assert_clean_error(rc, so, se, "global_step3, global_step7", "no 'latest' file")
    # An untied decoder cannot be represented.
    sd = collections.OrderedDict(c["sd"])
    sd["module.cls.predictions.decoder.weight"] = sd["module.bert.embeddings.word_embeddings.weight"] + 1.0
    torch.save({"module": sd}, os.path.join(d, "untied.pt"))
    rc, so, se = run(os.path.join(d, "untied.pt"), out)
    assert_clean_error(rc, so, se, "'cls.predictions.decoder.weight' differs from", "ties the MLM decoder")
    # A vocabulary that is not a multiple of 8 fits no densetrain model.
    sd = collections.OrderedDict([("bert.embeddings.word_embeddings.weight", torch.randn(37, 16)),
                                  ("bert.encoder.layer.0.attention.queries", torch.randn(16, 16))])
    torch.save(sd, os.path.join(d, "v37.pt"))
    rc, so, se = run(os.path.join(d, "v37.pt"), out)
    assert_clean_error(rc, so, se, "37 rows, not a multiple of 8", "37 -> 40")
    # Integer tensors are not weights.
    sd["bert.encoder.layer.0.attention.queries"] = torch.ones(16, 16, dtype=torch.int64)
    sd["bert.embeddings.word_embeddings.weight"] = torch.randn(40, 16)
    torch.save(sd, os.path.join(d, "ints.pt"))
    rc, so, se = run(os.path.join(d, "ints.pt"), out)
    assert_clean_error(rc, so, se, "'bert.encoder.layer.0.attention.queries' has dtype int64")
    # A config file that does not parse, and one with a bad model section.
    bad_cfg = os.path.join(d, "bad.yaml")
    with open(bad_cfg, "w", encoding="utf-8") as f:
        f.write("model: [unclosed\n")
    rc, so, se = run(c["ckpt"], out, "--model-config", bad_cfg)
    assert_clean_error(rc, so, se, "bad.yaml: not valid YAML/JSON")
    with open(bad_cfg, "w", encoding="utf-8") as f:
        f.write("model:\n  model_type: danet\n  hiden_size: 16\n")
    rc, so, se = run(c["ckpt"], out, "--model-config", bad_cfg)
    assert_clean_error(rc, so, se, "bad.yaml: model section", "hiden_size")
    assert not os.path.exists(out)


def main():
    tests = [(n, f) for n, f in globals().items() if n.startswith("test_") and callable(f)]
    passed = failed = 0
    try:
        for name, fn in tests:
            try:
                fn()
                passed += 1
                print(f"PASS {name}", flush=True)
            except Exception:  # noqa: BLE001 - report every failure, keep going
                failed += 1
                print(f"FAIL {name}", flush=True)
                traceback.print_exc()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
