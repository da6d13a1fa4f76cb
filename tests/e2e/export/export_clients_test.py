#!/usr/bin/python3
"""Exports checked by real clients (issue #22): onnxruntime-node and Transformers.js against densetrain.

    /usr/bin/python3 tests/e2e/export/export_clients_test.py [--bin BUILD/apps] [--only NAME]

1. Every DANet variant configs/models uses (shrunk), extra variants (causal, sinusoidal, token types, other
   poolers) and the BERT baseline, with random weights: scripts/export_onnx.py's graph run by onnxruntime-node
   against the PyTorch references (tests/reference, float64) on padded batches of several lengths (shorter than
   half a window, not a multiple of it, several windows): MLM and classifier logits within 1e-4.
2. Unsupported options fail with an error naming them (pair_matching, sparse attention, the 'sw' layer code).
3. densetrain -> Hugging Face layout -> densetrain is bit-identical (DANet in the reference repository's names,
   BERT in BertForMaskedLM's), and the DANet file is what scripts/convert_reference_checkpoint.py converts back.
4. A DANet and a BERT trained a few steps by dense-train on WikiText-2 with the small WordPiece vocabulary,
   exported with scripts/export_hf.py: Transformers.js `pipeline('fill-mask', folder)` offline; its tokenizer's
   ids equal dense-prep's on the same sentences, its logits (and onnxruntime's) equal `dense-eval logits`' (float32)
   and the reference's on them within 1e-4, its top-k scores the softmax of those logits; onnxruntime on the rows
   `dense-eval mlm --dump-logits` wrote reproduces its logits at the masked positions.
5. `dense-eval glue --save-weights --dump-logits` fine-tunes a classifier on a small single-sentence task (rows
   from WikiText-2); exported, `pipeline('text-classification', folder)` gives the labels of dense-eval's
   dev_predictions.tsv, the logits of `dense-eval logits` on the saved weights and the reference's softmax scores;
   onnxruntime on the dumped dev rows gives the dumped logits.
5b. With the real BERT uncased vocabulary (data/vocab from scripts/fetch_vocab.sh, or $DENSE_VOCAB_DIR; skipped
   with a message without it): Transformers.js's tokenizer on an exported folder gives dense-prep's WordPiece ids
   (`dense-eval logits`' input_ids) on WikiText-2 sentences and texts exercising every tokenizer step, and the
   classifier logits of random-weight DANet and BERT models equal dense-eval's.
6. HF BERT import: checkpoints with standard names built with torch (with / without `bert.`, safetensors and
   pytorch_model.bin) are read by `dense-train --init-from` and `dense-eval glue --init-from`; RoBERTa and
   DistilBERT layouts fail with an error naming them.

Prints `N passed, M failed`. The clients come from tests/e2e/export/node_modules (npm install --ignore-scripts,
done here when missing); DENSE_SKIP_EXPORT_CLIENTS=1 skips the client checks with a message instead of failing
when npm cannot be reached.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(REPO, "tests", "reference"))
sys.path.insert(0, os.path.join(REPO, "scripts"))

import danet_reference as dr  # noqa: E402
import bert_reference as br  # noqa: E402
import safetensors_io as sio  # noqa: E402
import export_onnx  # noqa: E402
import export_hf  # noqa: E402

PY = "/usr/bin/python3"
TOL = 1e-4
NODE_PACKAGES = {"onnxruntime-node": "1.30.0", "@huggingface/transformers": "4.3.1"}
SMALL_VOCAB = os.path.join(REPO, "tests", "fixtures", "wordpiece_vocab_small.txt")
WORK = tempfile.mkdtemp(prefix="dense-export-")
RESULTS = {"passed": 0, "failed": 0}
MEASURED = {}


def ok(name):
    RESULTS["passed"] += 1
    print(f"ok   {name}", flush=True)


def bad(name, why):
    RESULTS["failed"] += 1
    print(f"FAIL {name}\n     | " + "\n     | ".join(str(why).splitlines()[-40:]), flush=True)


def check(name, fn):
    try:
        fn()
    except Exception as e:  # every failure is reported, and the other checks still run
        bad(name, "".join(traceback.format_exception(type(e), e, e.__traceback__))[-3000:])
        return
    ok(name)


def measure(key, diff):
    MEASURED[key] = max(MEASURED.get(key, 0.0), float(diff))


# ------------------------------------------------------------------------------------------------
# The node clients
# ------------------------------------------------------------------------------------------------

def installed_versions():
    got = {}
    for pkg in NODE_PACKAGES:
        pj = os.path.join(HERE, "node_modules", *pkg.split("/"), "package.json")
        if os.path.isfile(pj):
            with open(pj, encoding="utf-8") as f:
                got[pkg] = json.load(f).get("version")
    return got


def ensure_clients():
    """npm install --ignore-scripts when the pinned versions are not installed (idempotent). Returns None when the
    clients are ready, else the reason they are not."""
    import fcntl
    # ctest runs the export tests in parallel: one npm install at a time in the shared folder.
    os.makedirs(os.path.join(HERE, "node_modules"), exist_ok=True)
    with open(os.path.join(HERE, "node_modules", ".densetrain-install.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _install_locked()


def _install_locked():
    if installed_versions() == NODE_PACKAGES:
        return None
    if shutil.which("npm") is None or shutil.which("node") is None:
        return "node / npm not found (Node 20 is needed: apt-get install nodejs npm)"
    # --ignore-scripts: onnxruntime-node's postinstall downloads CUDA binaries from outside the registry; the
    # CPU runtime bundled in the package works without it.
    r = subprocess.run(["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=HERE,
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        return f"npm install --ignore-scripts in {HERE} failed (rc {r.returncode}):\n{r.stderr[-2000:]}"
    got = installed_versions()
    if got != NODE_PACKAGES:
        return f"npm installed {got}, expected {NODE_PACKAGES}"
    return None


def node(script, *args, timeout=600):
    r = subprocess.run(["node", os.path.join(HERE, script), *args], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"node {script} failed (rc {r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    return r.stdout


def ort_run(runs):
    """runs: [(model, {name: int array})] -> [logits float32 array] from onnxruntime-node."""
    req = {"runs": []}
    outs = []
    for i, (model, inputs) in enumerate(runs):
        out = os.path.join(WORK, f"ort-{len(os.listdir(WORK))}-{i}.f32")
        req["runs"].append({"model": model, "out": out,
                            "inputs": {k: {"dims": list(v.shape), "data": [int(x) for x in v.reshape(-1)]}
                                       for k, v in inputs.items()}})
        outs.append(out)
    path = os.path.join(WORK, f"ort-req-{len(os.listdir(WORK))}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(req, f)
    node("ort_run.cjs", path)
    res = []
    for out in outs:
        with open(out + ".json", encoding="utf-8") as f:
            dims = json.load(f)["dims"]
        res.append(np.fromfile(out, dtype="<f4").reshape(dims))
    return res


# ------------------------------------------------------------------------------------------------
# References
# ------------------------------------------------------------------------------------------------

def ref_model(section):
    return br.BertReference(section) if section.get("model_type") == "bert" else dr.DANetReference(section)


def ref_logits(section, params, ids, mask, head, token_types=None):
    """float64 reference logits: [B, N, V] for mlm, [B, num_labels] for classifier."""
    m = ref_model(section)
    p = {k: torch.as_tensor(np.asarray(v), dtype=torch.float64) for k, v in params.items()}
    ids_t, mask_t = torch.as_tensor(ids), torch.as_tensor(mask)
    B, N = ids.shape
    labels = torch.zeros(B, N, dtype=torch.long)   # every row scored: the MLM head on all positions
    with torch.no_grad():
        if section.get("model_type") == "bert":
            out = m.forward(p, ids_t, mask_t, mlm_labels=labels if head == "mlm" else None)
        else:
            out = m.forward(p, ids_t, mask_t, None if token_types is None else torch.as_tensor(token_types),
                            mlm_labels=labels if head == "mlm" else None)
    if head == "mlm":
        return out["mlm_logits"].reshape(B, N, -1).numpy()
    return out["class_logits"].numpy()


def random_params(section, seed):
    m = ref_model(section)
    g = np.random.default_rng(seed)
    params = {}
    for name, shape in m.param_shapes().items():
        if len(shape) == 1 and (name.endswith("norm.weight")):
            params[name] = (1.0 + 0.1 * g.standard_normal(shape)).astype(np.float32)
        elif len(shape) == 1:
            params[name] = (0.1 * g.standard_normal(shape)).astype(np.float32)
        else:
            fan_in = shape[-1] if not name.endswith(("ffn.w1", "ffn.w2")) else shape[0]
            params[name] = (g.standard_normal(shape) / math.sqrt(fan_in)).astype(np.float32)
    if "embeddings.word_embeddings.weight" in params:
        params["embeddings.word_embeddings.weight"] *= 4.0
    return params


def padded_batch(lengths, N, vocab, seed):
    g = np.random.default_rng(seed)
    ids = np.zeros((len(lengths), N), dtype=np.int64)
    mask = np.zeros((len(lengths), N), dtype=np.int64)
    for b, n in enumerate(lengths):
        ids[b, :n] = g.integers(5, vocab, size=n)
        mask[b, :n] = 1
    return ids, mask


def write_case(name, section, params):
    d = os.path.join(WORK, name)
    os.makedirs(d, exist_ok=True)
    sio.save_file({k: torch.as_tensor(v) for k, v in params.items()}, os.path.join(d, "model.safetensors"))
    with open(os.path.join(d, "model.json"), "w", encoding="utf-8") as f:
        json.dump(section, f)
    return d


# ------------------------------------------------------------------------------------------------
# 1-2. Every variant, random weights
# ------------------------------------------------------------------------------------------------

def shrink(section):
    """A configs/models section at test size: d 16, 3 layers (covers l, sl, g), window 8, 64 positions."""
    s = dict(section)
    s.update(vocab_size=45, hidden_size=16, num_hidden_layers=3, max_position_embeddings=64)
    if s.get("model_type") == "bert":
        s.update(num_attention_heads=2, intermediate_size=24)
        return s
    s["num_attention_heads"] = min(int(s.get("num_attention_heads", 1)), 4)
    s["intermediate_size"] = min(int(s.get("intermediate_size", 4)), 2)
    if s.get("local_attention"):
        s["window_size"] = 8
    s.pop("chunk_size", None)
    return s


def variant_sections():
    out = []
    models = os.path.join(REPO, "configs", "models")
    for fn in sorted(os.listdir(models)):
        with open(os.path.join(models, fn), encoding="utf-8") as f:
            sec = json.load(f)
        out.append((fn[:-5], shrink(sec)))
    base = shrink(json.load(open(os.path.join(models, "lra_listops.json"), encoding="utf-8")))
    out.append(("causal_local", dict(base, causal=True, local_scheme="l_g", pooler_function="max")))
    out.append(("sinusoidal_tokentypes", dict(shrink({"model_type": "danet"}), pos_emb_type="sinusoidal",
                                              token_type_embeddings=True, pooler_function="masked_mean",
                                              pooler_ln_type="standard_ln", lm_head_act="gelu_tanh")))
    out.append(("cos_minus_sin_global_relpe", dict(base, relpe_type="cos_minus_sin", local_relpe=False,
                                                   relpe_scheme="q,v", attention_complexity="quadratic")))
    out.append(("rope_qk_linear", dict(base, relpe_type="rope", relpe_scheme="q,k", local_attention=False,
                                       attention_complexity="linear", swiglu_ffn=True, pooler_no_dense=True)))
    return out


def test_variants():
    lengths_by_N = {3: [3, 2, 1], 11: [11, 7, 2], 27: [27, 20, 4]}
    for name, section in variant_sections():
        def run(name=name, section=section):
            if section.get("pair_matching"):
                d = write_case(name, section, random_params(section, 7))
                try:
                    export_onnx.export(os.path.join(d, "model.safetensors"), os.path.join(d, "x.onnx"), "classifier",
                                       os.path.join(d, "model.json"))
                except export_onnx.ExportError as e:
                    assert "pair_matching" in str(e), e
                    return
                raise AssertionError("a pair_matching model was exported")
            params = random_params(section, 7)
            d = write_case(name, section, params)
            onnx_files = {}
            for head in ("mlm", "classifier"):
                onnx_files[head] = os.path.join(d, f"{head}.onnx")
                export_onnx.export(os.path.join(d, "model.safetensors"), onnx_files[head], head,
                                   os.path.join(d, "model.json"))
            cfg = ref_model(section).cfg
            runs, want = [], []
            for N, lens in lengths_by_N.items():
                ids, mask = padded_batch(lens, N, 45, N)
                inputs = {"input_ids": ids, "attention_mask": mask}
                tt = None
                if section.get("token_type_embeddings"):
                    tt = (np.arange(N)[None, :] >= N // 2).astype(np.int64).repeat(len(lens), 0)
                    inputs["token_type_ids"] = tt
                for head in ("mlm", "classifier"):
                    runs.append((onnx_files[head], inputs))
                    want.append((head, N, ref_logits(cfg if False else section, params, ids, mask, head, tt)))
            got = ort_run(runs)
            for g_, (head, N, w) in zip(got, want):
                assert g_.shape == w.shape, (head, N, g_.shape, w.shape)
                diff = float(np.max(np.abs(g_.astype(np.float64) - w)))
                measure(f"random weights, onnxruntime vs reference ({head})", diff)
                assert diff <= TOL, f"{name} {head} N={N}: max |onnxruntime - reference| = {diff:.3g} > {TOL}"
        check(f"onnx export of {name}: refused, naming pair_matching" if section.get("pair_matching") else
              f"onnx export of {name} (random weights) = reference on padded batches, N in 3/11/27", run)


def test_unsupported():
    def sparse():
        section = dict(shrink({"model_type": "danet"}), attention={"type": "sparse", "pattern": "fixed"})
        d = write_case("sparse", section, random_params(shrink({"model_type": "danet"}), 1))
        try:
            export_onnx.export(os.path.join(d, "model.safetensors"), os.path.join(d, "x.onnx"), "mlm",
                               os.path.join(d, "model.json"))
        except export_onnx.ExportError as e:
            assert "model.attention" in str(e) and "sparse" in str(e), e
            return
        raise AssertionError("a sparse-attention model was exported")

    def sliding():
        section = dict(shrink({"model_type": "danet"}), causal=True, local_attention=True, window_size=8,
                       local_scheme="sw_g")
        d = write_case("sw", section, random_params(section, 1))
        r = subprocess.run([PY, os.path.join(REPO, "scripts", "export_onnx.py"), os.path.join(d, "model.safetensors"),
                            os.path.join(d, "x.onnx"), "--config", os.path.join(d, "model.json")],
                           capture_output=True, text=True)
        assert r.returncode == 2 and "export_onnx: error:" in r.stderr and "'sw'" in r.stderr, (r.returncode, r.stderr)
        assert not os.path.exists(os.path.join(d, "x.onnx"))

    check("export_onnx: sparse attention is refused, naming model.attention", sparse)
    check("export_onnx: the causal sliding-window code 'sw' is refused (CLI, exit 2, no file)", sliding)


# ------------------------------------------------------------------------------------------------
# 3. Round trips of the Hugging Face layout
# ------------------------------------------------------------------------------------------------

def test_round_trips():
    for name, section in (("danet_glue", shrink(json.load(open(os.path.join(REPO, "configs", "models",
                                                                          "danet_bert_large_glue.json"))))),
                          ("danet_listops", shrink(json.load(open(os.path.join(REPO, "configs", "models",
                                                                             "lra_listops.json"))))),
                          ("bert", shrink(json.load(open(os.path.join(REPO, "configs", "models",
                                                                    "bert_large_baseline.json")))))):
        def run(name=name, section=section):
            params = random_params(section, 3)
            d = write_case("rt-" + name, section, params)
            hf = os.path.join(d, "hf")
            export_hf.export_folder(os.path.join(d, "model.safetensors"), hf, head="classifier", vocab=None,
                                    config=os.path.join(d, "model.json"), with_onnx=False)
            hf_tensors, _ = sio.load_file(os.path.join(hf, "model.safetensors"))
            if section.get("model_type") == "bert":
                assert "bert.encoder.layer.0.attention.self.query.weight" in hf_tensors, list(hf_tensors)[:8]
                assert "cls.predictions.transform.LayerNorm.bias" in hf_tensors
            else:
                assert "bert.encoder.layer.0.attention.queries" in hf_tensors, list(hf_tensors)[:8]
                # What the reference converter reads back: the same tensors, bit for bit.
                conv = export_onnx.converter()
                out, _, fam = conv.convert(hf_tensors, hf, "auto", False, False, [])
                assert fam == "danet"
                assert set(out) == set(params), set(out) ^ set(params)
                for k, v in params.items():
                    assert np.array_equal(out[k].tensor.numpy(), v), k
            back = os.path.join(d, "back.safetensors")
            export_hf.import_folder(hf, back)
            got, _ = sio.load_file(back)
            assert list(got) == list(params), (list(got)[:5], list(params)[:5])
            for k, v in params.items():
                a = got[k].numpy()
                assert a.dtype == v.dtype and a.shape == v.shape and a.tobytes() == v.tobytes(), k
        check(f"densetrain -> Hugging Face layout -> densetrain is bit-identical ({name})", run)


# ------------------------------------------------------------------------------------------------
# 4-5. Trained models through the real clients
# ------------------------------------------------------------------------------------------------

WIKITEXT = os.path.join(REPO, "..", "shared", "data", "wikitext-2", "valid.txt")
CORPUS_FALLBACK = os.path.join(REPO, "tests", "fixtures", "corpus", "wiki_sample.tokens")

DANET_MODEL = """  model_type: danet
  vocab_size: 560
  hidden_size: 32
  num_hidden_layers: 3
  num_attention_heads: 2
  intermediate_size: 2
  max_position_embeddings: 128
  pos_emb_type: relpe
  relpe_type: cosine
  relpe_scheme: qkv
  local_attention: true
  local_scheme: l_sl_g
  window_size: 16
  embedding_ln_type: max_norm
  final_ln_type: max_norm
  lm_head_ln_type: standard_ln
  pooler_function: masked_mean
  pooler_act: tanh
  classifier_bias: true
"""

BERT_MODEL = """  model_type: bert
  vocab_size: 560
  hidden_size: 32
  num_hidden_layers: 2
  num_attention_heads: 2
  intermediate_size: 64
  max_position_embeddings: 128
  hidden_dropout_prob: 0.0
  attention_probs_dropout_prob: 0.0
"""


def run_bin(args, timeout=900):
    env = dict(os.environ, DENSE_NUM_THREADS="2")
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed (rc {r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    return r


def sentences(n_min_words=6, n_max_words=24, count=80):
    """Real English sentences: WikiText-2's validation text (../shared) or the repository's sample."""
    path = WIKITEXT if os.path.isfile(WIKITEXT) else CORPUS_FALLBACK
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("="):
                continue
            for s in line.split(" . "):
                w = s.split()
                if n_min_words <= len(w) <= n_max_words and "\t" not in s:
                    out.append(" ".join(w) + " .")
                if len(out) >= count:
                    return path, out
    return path, out


class Trained:
    """The shared fixtures: shards, two pretrained runs, a fine-tuned classifier (built once, on demand)."""

    def __init__(self, bindir):
        self.bin = bindir
        self.d = os.path.join(WORK, "trained")
        os.makedirs(self.d, exist_ok=True)
        self.corpus, self.sents = sentences()
        self.runs = {}

    def exe(self, name):
        p = os.path.join(self.bin, name)
        if not os.access(p, os.X_OK):
            raise AssertionError(f"{p}: not built (give --bin BUILD/apps)")
        return p

    def shards(self):
        out = os.path.join(self.d, "shards")
        if not os.path.isdir(out):
            fmt = ["--corpus-format", "wikitext"] if self.corpus == WIKITEXT else []
            run_bin([self.exe("dense-prep"), "-q", "-j", "2", "pretrain", self.corpus, *fmt, "--vocab", SMALL_VOCAB,
                     "-o", out, "-N", "64", "--format", "packed"])
        return out

    def pretrained(self, kind):
        if kind in self.runs:
            return self.runs[kind]
        run_dir = os.path.join(self.d, f"run-{kind}")
        cfg = os.path.join(self.d, f"{kind}.yaml")
        with open(cfg, "w", encoding="utf-8") as f:
            f.write(f"name: export-{kind}\nrun_dir: {run_dir}\nmodel:\n"
                    f"{DANET_MODEL if kind == 'danet' else BERT_MODEL}"
                    f"data:\n  train: {self.shards()}\n  format: packed\n  vocab: {SMALL_VOCAB}\n  seq_len: 64\n"
                    f"training:\n  max_steps: 6\n  global_batch: 8\n  seed: 5\n  threads: 2\n"
                    f"  optimizer:\n    learning_rate: 0.003\ncheckpoint:\n  every_steps: 6\n"
                    f"logging:\n  every_steps: 1\n  progress: false\n")
        run_bin([self.exe("dense-train"), "-q", "--config", cfg])
        self.runs[kind] = (run_dir, cfg)
        return self.runs[kind]

    def glue_dir(self):
        """A single-sentence task in SST-2's layout, from real sentences (label: longer than the median sentence,
        so both labels occur and a few epochs learn it)."""
        g = os.path.join(self.d, "glue", "SST-2")
        if not os.path.isdir(g):
            os.makedirs(g)
            median = sorted(len(s.split()) for s in self.sents[:64])[32]
            rows = [(s, int(len(s.split()) > median)) for s in self.sents[:64]]
            with open(os.path.join(g, "train.tsv"), "w", encoding="utf-8") as f:
                f.write("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in rows[:48]))
            with open(os.path.join(g, "dev.tsv"), "w", encoding="utf-8") as f:
                f.write("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in rows[48:]))
            with open(os.path.join(g, "test.tsv"), "w", encoding="utf-8") as f:
                f.write("index\tsentence\n" + "".join(f"{i}\t{s}\n" for i, (s, _) in enumerate(rows[48:])))
        return os.path.dirname(g), [s for s, _ in [(s, 0) for s in self.sents[48:64]]]

    def finetuned(self, kind):
        key = "ft-" + kind
        if key in self.runs:
            return self.runs[key]
        run_dir, _ = self.pretrained(kind)
        glue, dev = self.glue_dir()
        cfg = os.path.join(self.d, f"ft-{kind}.yaml")
        with open(cfg, "w", encoding="utf-8") as f:
            f.write(f"name: export-ft-{kind}\nmodel:\n{DANET_MODEL if kind == 'danet' else BERT_MODEL}"
                    f"data:\n  vocab: {SMALL_VOCAB}\n"
                    f"training:\n  epochs: 8\n  max_steps: 1\n  global_batch: 8\n  seed: 1\n  threads: 2\n"
                    f"  optimizer:\n    type: adamw\n    learning_rate: 0.003\n")
        out = os.path.join(self.d, f"glue-{kind}")
        run_bin([self.exe("dense-eval"), "glue", "--task", "SST-2", "--data", glue, "--config", cfg, "--init-from",
                 run_dir, "-o", out, "--seeds", "1", "--save-weights", "-q", "--dump-logits",
                 os.path.join(out, "dev_logits.safetensors")])
        self.runs[key] = (out, cfg, dev)
        return self.runs[key]


def pipelines(task, folder, texts, top_k=5):
    req = os.path.join(WORK, f"pipe-{len(os.listdir(WORK))}.json")
    out = req + ".out.json"
    with open(req, "w", encoding="utf-8") as f:
        json.dump({"task": task, "folder": os.path.abspath(folder), "texts": texts, "top_k": top_k}, f)
    node("pipelines.cjs", req, out)
    with open(out, encoding="utf-8") as f:
        return json.load(f)


def as_array(t, dtype):
    return np.array(t["data"], dtype=dtype).reshape(t["dims"])


def folder_weights(folder):
    """The densetrain weights of an exported folder (through the importer) and its model section."""
    back = os.path.join(folder, "..", os.path.basename(folder) + ".densetrain.safetensors")
    export_hf.import_folder(folder, back)
    t, _ = sio.load_file(back)
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        section = json.load(f)["densetrain"]["model"]
    return {k: v.numpy() for k, v in t.items()}, section


def glue_shard_ids(glue_out):
    """dense-prep's WordPiece ids of the dev rows, from the shards dense-eval glue wrote."""
    import h5py
    found = []
    for root, _, files in os.walk(os.path.join(glue_out, "shards")):
        for fn in files:
            if fn.endswith(".hdf5") and "dev" in fn:
                found.append(os.path.join(root, fn))
    if not found:
        raise AssertionError(f"no dev shard under {glue_out}/shards: {list(os.walk(os.path.join(glue_out, 'shards')))}")
    with h5py.File(sorted(found)[0], "r") as h:
        ids = np.asarray(h["input_ids"])
        mask = np.asarray(h["attention_mask"]) if "attention_mask" in h else (ids != 0)
    return [list(map(int, row[m.astype(bool)])) for row, m in zip(ids, mask)]


def dense_eval_logits(T, checkpoint, head, texts, config=None, vocab=None):
    """dense-eval logits on `texts` (dense-prep's WordPiece): {logits (float32), input_ids, attention_mask, ...}
    as the file it wrote, and the same logits from its .npy form (checked equal)."""
    text_file = os.path.join(WORK, f"texts-{len(os.listdir(WORK))}.txt")
    with open(text_file, "w", encoding="utf-8") as f:
        f.write("".join(t + "\n" for t in texts))
    out, out_npy = text_file + ".safetensors", text_file + ".npy"
    args = [T.exe("dense-eval"), "logits", "--checkpoint", checkpoint, "--head", head, "--texts", text_file]
    args += ["--config", config] if config else []
    args += ["--vocab", vocab] if vocab else []
    run_bin(args + ["-o", out])
    run_bin(args + ["-o", out_npy])
    t, meta = sio.load_file(out)
    got = {k: v.numpy() for k, v in t.items()}
    assert got["logits"].dtype == np.float32 and meta["head"] == head, (got["logits"].dtype, meta)
    npy = np.load(out_npy)
    assert npy.dtype == np.float32 and np.array_equal(npy, got["logits"]), "the .npy and .safetensors logits differ"
    return got


def trained_groups(bindir):
    T = Trained(bindir)

    def fill_mask(kind):
        def run():
            run_dir, cfg = T.pretrained(kind)
            folder = os.path.join(WORK, f"hf-{kind}-mlm")
            export_hf.export_folder(run_dir, folder, "mlm", SMALL_VOCAB)
            for f in ("config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
                      "onnx/model.onnx"):
                assert os.path.isfile(os.path.join(folder, f)), f
            texts = []
            for s in T.sents[:6]:
                w = s.split()
                w[len(w) // 2] = "[MASK]"
                texts.append(" ".join(w))
            res = pipelines("fill-mask", folder, texts)
            params, section = folder_weights(folder)
            ids, mask = as_array(res["batch_ids"], np.int64), as_array(res["batch_mask"], np.int64)
            want = ref_logits(section, params, ids, mask, "mlm")[..., :560]
            got = as_array(res["logits"], np.float64)
            assert got.shape == want.shape, (got.shape, want.shape)
            diff = float(np.max(np.abs(got - want)))
            measure(f"trained {kind}, Transformers.js fill-mask logits vs reference", diff)
            assert diff <= TOL, f"Transformers.js logits differ from the reference by {diff:.3g}"
            # The float64 reference's logits of a checkpoint (scripts/reference_logits.py), on the
            # run folder itself, for the first sentence unpadded: its rows equal the padded batch's real rows.
            n0 = len(res["ids"][0])
            r = subprocess.run([PY, os.path.join(REPO, "scripts", "reference_logits.py"), run_dir, "--ids",
                                " ".join(map(str, res["ids"][0])), "--vocab-tokens", "560"],
                               capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, r.stderr
            cli = np.array(json.loads(r.stdout)["logits"])
            diff = float(np.max(np.abs(got[0, :n0] - cli[0])))
            measure(f"trained {kind}, Transformers.js logits vs scripts/reference_logits.py (unpadded row)", diff)
            assert cli.shape == (1, n0, 560) and diff <= TOL, (cli.shape, diff)
            (ort,) = ort_run([(os.path.join(folder, "onnx", "model.onnx"), {"input_ids": ids, "attention_mask": mask})])
            diff = float(np.max(np.abs(ort.astype(np.float64) - want)))
            measure(f"trained {kind}, onnxruntime MLM logits vs reference", diff)
            assert diff <= TOL, f"onnxruntime logits differ from the reference by {diff:.3g}"
            # densetrain's own forward pass (dense-eval logits, C++, float32) on the same texts, tokenized by
            # dense-prep's WordPiece: the same padded batch, and the clients' logits within 1e-4 in float32.
            de = dense_eval_logits(T, run_dir, "mlm", texts)
            assert np.array_equal(de["input_ids"], ids) and np.array_equal(de["attention_mask"], mask), \
                ("dense-eval's WordPiece ids differ from Transformers.js's", de["input_ids"], ids)
            assert de["logits"].shape == got.shape, (de["logits"].shape, got.shape)
            for client, logits in (("Transformers.js fill-mask", got.astype(np.float32)), ("onnxruntime-node", ort)):
                diff = float(np.max(np.abs(logits.astype(np.float32) - de["logits"])))
                measure(f"trained {kind}, {client} MLM logits vs dense-eval logits (float32)", diff)
                assert diff <= TOL, f"{client} logits differ from dense-eval's by {diff:.3g}"
            diff = float(np.max(np.abs(de["logits"].astype(np.float64) - want)))
            measure(f"trained {kind}, dense-eval MLM logits vs reference", diff)
            assert diff <= TOL, f"dense-eval's logits differ from the reference by {diff:.3g}"
            # dense-eval mlm --dump-logits: the logits its evaluation scored (masked shard rows of 64 tokens),
            # reproduced by onnxruntime from the dumped inputs.
            dump = os.path.join(WORK, f"mlm-dump-{kind}.safetensors")
            run_bin([T.exe("dense-eval"), "mlm", "--checkpoint", run_dir, "--data", T.shards(), "--batch", "4",
                     "--max-batches", "2", "--dump-logits", dump])
            t, _ = sio.load_file(dump)
            d = {k: v.numpy() for k, v in t.items()}
            assert d["input_ids"].shape == (8, 64) and d["logits"].shape[0] == len(d["positions"]) > 0, \
                {k: v.shape for k, v in d.items()}
            rows, cols = d["positions"][:, 0], d["positions"][:, 1]
            assert np.all(d["mlm_labels"][rows, cols] >= 0) and (d["mlm_labels"] >= 0).sum() == len(rows)
            (ort,) = ort_run([(os.path.join(folder, "onnx", "model.onnx"),
                               {"input_ids": d["input_ids"], "attention_mask": d["attention_mask"]})])
            width = d["logits"].shape[1]
            assert width == ort.shape[-1], (width, ort.shape)
            diff = float(np.max(np.abs(ort[rows, cols] - d["logits"])))
            measure(f"trained {kind}, onnxruntime-node vs dense-eval mlm --dump-logits (masked positions, float32)",
                    diff)
            assert diff <= TOL, f"onnxruntime's logits differ from dense-eval mlm's by {diff:.3g}"
            mask_id = 4
            for text, tids, result in zip(texts, res["ids"], res["results"]):
                tids = np.array([tids], dtype=np.int64)
                lg = ref_logits(section, params, tids, np.ones_like(tids), "mlm")[0, :, :560]
                pos = int(np.where(tids[0] == mask_id)[0][0])
                p = np.exp(lg[pos] - lg[pos].max())
                p /= p.sum()
                top = np.argsort(-p, kind="stable")[:5]
                assert [r["token"] for r in result] == [int(t) for t in top], (text, result, top)
                sd = max(abs(r["score"] - p[t]) for r, t in zip(result, top))
                measure(f"trained {kind}, fill-mask top-5 probabilities vs reference softmax", sd)
                assert sd <= TOL, (text, sd)
        return run

    def classify(kind):
        def run():
            out, cfg, dev = T.finetuned(kind)
            weights = os.path.join(out, "seed-1", "model.safetensors")
            assert os.path.isfile(weights), os.listdir(out)
            folder = os.path.join(WORK, f"hf-{kind}-cls")
            export_hf.export_folder(weights, folder, "classifier", SMALL_VOCAB, config=cfg, labels="short,long")
            res = pipelines("text-classification", folder, dev)
            # dense-prep's ids of the same sentences (dense-eval glue tokenized them into its shards)
            prep_ids = glue_shard_ids(out)
            assert len(prep_ids) == len(dev) and res["ids"] == prep_ids, \
                [(a, b) for a, b in zip(res["ids"], prep_ids) if a != b][:3]
            with open(os.path.join(out, "dev_predictions.tsv"), encoding="utf-8") as f:
                rows = [ln.split("\t") for ln in f.read().splitlines() if ln and ln[0].isdigit()]
            want_labels = [["short", "long"][int(r[1])] for r in rows]
            got_labels = [r["label"] for r in res["results"]]
            assert got_labels == want_labels, (got_labels, want_labels)
            params, section = folder_weights(folder)
            ids, mask = as_array(res["batch_ids"], np.int64), as_array(res["batch_mask"], np.int64)
            want = ref_logits(section, params, ids, mask, "classifier")
            got = as_array(res["logits"], np.float64)
            diff = float(np.max(np.abs(got - want)))
            measure(f"fine-tuned {kind}, Transformers.js classifier logits vs reference", diff)
            assert diff <= TOL, diff
            p = np.exp(want - want.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            sd = max(abs(r["score"] - p[i].max()) for i, r in enumerate(res["results"]))
            measure(f"fine-tuned {kind}, text-classification scores vs reference softmax", sd)
            assert sd <= TOL, sd
            # dense-eval logits on the saved weights and the same sentences: the same ids, labels and logits.
            de = dense_eval_logits(T, weights, "classifier", dev, config=cfg)
            assert np.array_equal(de["input_ids"], ids) and np.array_equal(de["attention_mask"], mask), \
                "dense-eval's WordPiece ids differ from Transformers.js's"
            de_labels = [["short", "long"][int(i)] for i in np.argmax(de["logits"], -1)]
            assert de_labels == got_labels == want_labels, (de_labels, got_labels, want_labels)
            diff = float(np.max(np.abs(got.astype(np.float32) - de["logits"])))
            measure(f"fine-tuned {kind}, Transformers.js classifier logits vs dense-eval logits (float32)", diff)
            assert diff <= TOL, f"Transformers.js classifier logits differ from dense-eval's by {diff:.3g}"
            # dense-eval glue --dump-logits: the dev logits fine-tuning scored (rows as in the shard, padded to its
            # length), reproduced by onnxruntime from the dumped inputs, and the labels of dev_predictions.tsv.
            t, meta = sio.load_file(os.path.join(out, "dev_logits.safetensors"))
            d = {k: v.numpy() for k, v in t.items()}
            assert d["logits"].shape == (len(dev), 2) and meta["task"] == "SST-2", (d["logits"].shape, meta)
            assert [["short", "long"][int(i)] for i in np.argmax(d["logits"], -1)] == want_labels
            (ort,) = ort_run([(os.path.join(folder, "onnx", "model.onnx"),
                               {"input_ids": d["input_ids"], "attention_mask": d["attention_mask"]})])
            diff = float(np.max(np.abs(ort - d["logits"])))
            measure(f"fine-tuned {kind}, onnxruntime-node vs dense-eval glue --dump-logits (dev rows, float32)", diff)
            assert diff <= TOL, f"onnxruntime's logits differ from dense-eval glue's by {diff:.3g}"
            # Both labels must occur, or equal labels would not show that the classifier's outputs came through.
            assert set(want_labels) == {"short", "long"}, f"dense-eval predicted one label only: {want_labels}"
            print(f"     {kind}: {len(dev)} dev sentences, {want_labels.count('long')} long / "
                  f"{want_labels.count('short')} short, the pipeline's labels = dense-eval's dev_predictions.tsv")
        return run

    def group():
        for kind in ("danet", "bert"):
            check(f"{kind} trained by dense-train: Transformers.js fill-mask and onnxruntime = dense-eval logits and "
                  f"the reference (1e-4)", fill_mask(kind))
            check(f"{kind} fine-tuned by dense-eval glue: text-classification labels and logits = dense-eval's, "
                  f"tokenizer ids = dense-prep's", classify(kind))
    return [("trained", group)]


# ------------------------------------------------------------------------------------------------
# 5b. The real BERT uncased vocabulary: Transformers.js's tokenizer = dense-prep's WordPiece
# ------------------------------------------------------------------------------------------------

# Beside WikiText's sentences, text that exercises every step of the tokenizer: accents stripped, CJK split,
# punctuation, contractions, digits, a word past the vocabulary (WordPiece pieces), one over 100 characters
# ([UNK]), control and odd whitespace characters, an emoji, and [MASK] written in the text.
TOKENIZER_TEXTS = [
    "Café au lait, naïve résumé — Ångström's façade!",
    "東京タワーは1958年に完成した。 北京 and 서울",
    "He didn't say \"hello\"; she said: 'goodbye...' (twice) [MASK] #hashtag @user $3.50 50% 1,000,000",
    "Antidisestablishmentarianism electroencephalography pneumonoultramicroscopic unbelievably",
    "x" * 120 + " after a word of 120 letters",
    "tab\u00a0non-breaking\u2003em-space\u200bzero-width\u0007bell end",
    "Emoji 🙂 and ümlaut ÜBER straße ΑΘΗΝΑ Москва",
]


def full_vocab_path():
    """The real BERT uncased vocab.txt ($DENSE_VOCAB_DIR or data/vocab, scripts/fetch_vocab.sh), or None."""
    d = os.environ.get("DENSE_VOCAB_DIR")
    p = os.path.join(d, "vocab.txt") if d else os.path.join(REPO, "data", "vocab", "vocab.txt")
    return p if os.path.isfile(p) else None


def full_vocab_groups(bindir):
    T = Trained(bindir)

    def yaml_model(section):
        return "model:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in section.items())

    def tokenizer_and_logits(kind):
        def run():
            vocab = full_vocab_path()
            with open(vocab, encoding="utf-8") as f:
                tokens = f.read().split("\n")[:-1]
            assert len(tokens) == 30522, f"{vocab}: {len(tokens)} tokens, expected BERT uncased's 30522"
            model_file = "danet_bert_large_glue.json" if kind == "danet" else "bert_large_baseline.json"
            with open(os.path.join(REPO, "configs", "models", model_file), encoding="utf-8") as f:
                section = dict(shrink(json.load(f)), vocab_size=30528, max_position_embeddings=128)
            if kind == "danet":
                # The pipeline classifies each text unpadded, the batch is padded: `mean` pooling (this config's)
                # would read the padding (docs/export.md, Limits); masked_mean does not.
                section["pooler_function"] = "masked_mean"
            params = random_params(section, 21)
            d = write_case(f"full-vocab-{kind}", section, params)
            cfg = os.path.join(d, "model.yaml")
            with open(cfg, "w", encoding="utf-8") as f:
                f.write(yaml_model(section) + "training:\n  threads: 2\n")
            folder = os.path.join(WORK, f"hf-full-vocab-{kind}")
            weights = os.path.join(d, "model.safetensors")
            export_hf.export_folder(weights, folder, "classifier", vocab, config=os.path.join(d, "model.json"),
                                    labels="negative,positive")
            texts = T.sents[:40] + TOKENIZER_TEXTS
            res = pipelines("text-classification", folder, texts)
            de = dense_eval_logits(T, weights, "classifier", texts, config=cfg, vocab=vocab)
            prep_ids = [list(map(int, row[m.astype(bool)])) for row, m in zip(de["input_ids"], de["attention_mask"])]
            differ = [(t, a, b) for t, a, b in zip(texts, res["ids"], prep_ids) if a != b]
            assert not differ, f"{len(differ)} of {len(texts)} texts tokenized differently (Transformers.js, " \
                               f"dense-prep): {differ[:3]}"
            flat = [i for row in prep_ids for i in row]
            pieces = sum(tokens[i].startswith("##") for i in flat)
            unk = flat.count(tokens.index("[UNK]"))
            assert pieces >= 10 and unk >= 1 and tokens.index("[MASK]") in flat, (pieces, unk)
            got = as_array(res["logits"], np.float32)
            assert got.shape == de["logits"].shape, (got.shape, de["logits"].shape)
            diff = float(np.max(np.abs(got - de["logits"])))
            measure(f"full vocabulary, random-weight {kind}, Transformers.js classifier logits vs dense-eval logits "
                    f"(float32)", diff)
            assert diff <= TOL, diff
            de_labels = [["negative", "positive"][int(i)] for i in np.argmax(de["logits"], -1)]
            margin = np.abs(de["logits"][:, 0] - de["logits"][:, 1])
            flips = [i for i, r in enumerate(res["results"]) if r["label"] != de_labels[i] and margin[i] > 10 * TOL]
            assert not flips, [(texts[i], res["results"][i], de["logits"][i]) for i in flips]
            print(f"     {kind}: {len(texts)} texts, {len(flat)} tokens ({pieces} ## pieces, {unk} [UNK]): "
                  f"Transformers.js ids = dense-prep's")
        return run

    def group():
        if full_vocab_path() is None:
            print("SKIP full_vocab: the BERT uncased vocab.txt is not present (run scripts/fetch_vocab.sh data/vocab "
                  "or set DENSE_VOCAB_DIR)")
            return
        for kind in ("danet", "bert"):
            check(f"real BERT uncased vocabulary ({kind} classifier, random weights): Transformers.js tokenizer ids "
                  f"= dense-prep's WordPiece on {40 + len(TOKENIZER_TEXTS)} texts, logits = dense-eval's (1e-4)",
                  tokenizer_and_logits(kind))
    return [("full_vocab", group)]


# ------------------------------------------------------------------------------------------------
# 6. Hugging Face BERT checkpoints -> dense-train / dense-eval --init-from
# ------------------------------------------------------------------------------------------------

HF_CONFIG = {"model_type": "bert", "architectures": ["BertForPreTraining"], "vocab_size": 555, "hidden_size": 32,
             "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
             "max_position_embeddings": 128, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "type_vocab_size": 2,
             "position_embedding_type": "absolute"}


def hf_state_dict(prefix, seed, with_heads=True, vocab=None):
    """A BertForPreTraining state dict with the standard names, built with torch (no network)."""
    g = torch.Generator().manual_seed(seed)
    c = HF_CONFIG
    d, I, V, L = c["hidden_size"], c["intermediate_size"], vocab or c["vocab_size"], c["num_hidden_layers"]
    sd = {}

    def lin(name, o, i):
        sd[name + ".weight"] = torch.randn(o, i, generator=g) * 0.05
        sd[name + ".bias"] = torch.randn(o, generator=g) * 0.01

    def ln(name):
        sd[name + ".weight"] = 1 + 0.1 * torch.randn(d, generator=g)
        sd[name + ".bias"] = 0.1 * torch.randn(d, generator=g)

    sd[prefix + "embeddings.word_embeddings.weight"] = torch.randn(V, d, generator=g) * 0.05
    sd[prefix + "embeddings.position_embeddings.weight"] = torch.randn(c["max_position_embeddings"], d, generator=g) * 0.05
    sd[prefix + "embeddings.token_type_embeddings.weight"] = torch.randn(2, d, generator=g) * 0.05
    sd[prefix + "embeddings.position_ids"] = torch.arange(c["max_position_embeddings"])[None]
    ln(prefix + "embeddings.LayerNorm")
    for i in range(L):
        p = f"{prefix}encoder.layer.{i}."
        for q in ("query", "key", "value"):
            lin(p + f"attention.self.{q}", d, d)
        lin(p + "attention.output.dense", d, d)
        ln(p + "attention.output.LayerNorm")
        lin(p + "intermediate.dense", I, d)
        lin(p + "output.dense", d, I)
        ln(p + "output.LayerNorm")
    if with_heads:
        lin(prefix + "pooler.dense", d, d)
        lin("cls.predictions.transform.dense", d, d)
        ln("cls.predictions.transform.LayerNorm")
        sd["cls.predictions.bias"] = torch.randn(V, generator=g) * 0.01
        sd["cls.predictions.decoder.weight"] = sd[prefix + "embeddings.word_embeddings.weight"]
        sd["cls.predictions.decoder.bias"] = sd["cls.predictions.bias"]
        lin("cls.seq_relationship", 2, d)
    return sd


def write_hf(folder, sd, conf=None, fmt="safetensors"):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as f:
        json.dump(conf or HF_CONFIG, f)
    if fmt == "safetensors":
        sio.save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(folder, "model.safetensors"))
    else:
        torch.save(sd, os.path.join(folder, "pytorch_model.bin"))
    return folder


def hf_import_groups(bindir):
    T = Trained(bindir)
    model_yaml = BERT_MODEL.replace("vocab_size: 560", "vocab_size: 555")

    def train_from(init, name, expect_ok=True):
        cfg = os.path.join(WORK, f"{name}.yaml")
        run_dir = os.path.join(WORK, f"run-{name}")
        with open(cfg, "w", encoding="utf-8") as f:
            f.write(f"name: {name}\nrun_dir: {run_dir}\nmodel:\n{model_yaml}"
                    f"data:\n  train: {T.shards()}\n  format: packed\n  seq_len: 64\n"
                    f"training:\n  max_steps: 1\n  global_batch: 4\n  threads: 2\n"
                    f"  optimizer:\n    learning_rate: 0.0\n    weight_decay: 0.0\ncheckpoint:\n  every_steps: 1\n"
                    f"logging:\n  every_steps: 1\n  progress: false\n")
        env = dict(os.environ, DENSE_NUM_THREADS="2")
        r = subprocess.run([T.exe("dense-train"), "--config", cfg, "--init-from", init, "--resume", "none"],
                           capture_output=True, text=True, timeout=600, env=env)
        if not expect_ok:
            return r
        assert r.returncode == 0, (r.returncode, r.stdout[-1500:], r.stderr[-3000:])
        got, _ = sio.load_file(os.path.join(run_dir, "checkpoints", "step-00000001", "model.safetensors"))
        with open(os.path.join(run_dir, "train.log"), encoding="utf-8") as f:
            return {k: v.numpy() for k, v in got.items()}, f.read()

    def standard(prefix, fmt):
        def run():
            sd = hf_state_dict(prefix, 11)
            folder = write_hf(os.path.join(WORK, f"hf-std-{prefix or 'bare'}-{fmt}"), sd, fmt=fmt)
            if fmt == "bin":
                r = train_from(folder, f"bin-{prefix or 'bare'}", expect_ok=False)
                assert r.returncode != 0 and f"scripts/export_hf.py bin-to-safetensors {folder}" in r.stderr, \
                    (r.returncode, r.stderr[-2000:])
                rc = export_hf.main(["bin-to-safetensors", folder])
                assert rc == 0
            got, log = train_from(folder, f"std-{prefix or 'bare'}-{fmt}")
            # The Python mapping (scripts/export_hf.py) is written separately from src/train/hf_import.cpp: both
            # must give the same tensors, bit for bit.
            want, _ = export_hf.from_hf_bert({k: v.float().numpy() for k, v in sd.items()}, folder)
            assert set(got) == set(want), set(got) ^ set(want)
            for k in got:
                assert got[k].shape == want[k].shape and got[k].tobytes() == want[k].tobytes(), k
            assert np.array_equal(got["encoder.layer.1.attention_norm.weight"],
                                  sd[prefix + "encoder.layer.0.output.LayerNorm.weight"].numpy())
            assert "initialised weights from the Hugging Face checkpoint" in log, log[-2000:]
            assert "segment embedding row 0" in log and "padded from 555 to 560" in log, log[-2000:]
        return run

    def own_export_round_trip():
        run_dir, _ = T.pretrained("bert")
        folder = os.path.join(WORK, "hf-bert-own")
        export_hf.export_folder(run_dir, folder, "mlm", SMALL_VOCAB)
        # dense-train reads the exported folder as a Hugging Face checkpoint: the weights come back bit for bit.
        cfg = os.path.join(WORK, "own.yaml")
        rd = os.path.join(WORK, "run-own")
        with open(cfg, "w", encoding="utf-8") as f:
            f.write(f"name: own\nrun_dir: {rd}\nmodel:\n{BERT_MODEL}data:\n  train: {T.shards()}\n  format: packed\n"
                    f"  seq_len: 64\ntraining:\n  max_steps: 1\n  global_batch: 4\n  threads: 2\n  optimizer:\n"
                    f"    learning_rate: 0.0\n    weight_decay: 0.0\ncheckpoint:\n  every_steps: 1\n"
                    f"logging:\n  every_steps: 1\n  progress: false\n")
        run_bin([T.exe("dense-train"), "-q", "--config", cfg, "--init-from", folder, "--resume", "none"])
        got, _ = sio.load_file(os.path.join(rd, "checkpoints", "step-00000001", "model.safetensors"))
        orig_dir = os.path.join(run_dir, "checkpoints")
        orig, _ = sio.load_file(os.path.join(orig_dir, sorted(os.listdir(orig_dir))[-1], "model.safetensors"))
        assert set(got) == set(orig), set(got) ^ set(orig)
        for k in orig:
            assert got[k].numpy().tobytes() == orig[k].numpy().tobytes(), k

    def finetune_from_hf():
        # BertModel: no heads at all; the small vocabulary's 560 tokens, which dense-eval glue checks.
        sd = hf_state_dict("bert.", 12, with_heads=False, vocab=560)
        folder = write_hf(os.path.join(WORK, "hf-bertmodel"), sd, dict(HF_CONFIG, vocab_size=560))
        glue, _ = T.glue_dir()
        cfg = os.path.join(WORK, "ft-hf.yaml")
        with open(cfg, "w", encoding="utf-8") as f:
            f.write(f"name: ft-hf\nmodel:\n{BERT_MODEL}data:\n  vocab: {SMALL_VOCAB}\n"
                    f"training:\n  epochs: 1\n  max_steps: 1\n  global_batch: 8\n  seed: 1\n  threads: 2\n")
        out = os.path.join(WORK, "glue-hf")
        r = run_bin([T.exe("dense-eval"), "glue", "--task", "SST-2", "--data", glue, "--config", cfg, "--init-from",
                     folder, "-o", out, "--seeds", "1"])
        assert "pooler.dense.weight (the model's initialisation)" in r.stderr, r.stderr[-2000:]
        assert os.path.isfile(os.path.join(out, "dev_predictions.tsv"))

    def refused():
        for mt, sd_prefix, needle in (("roberta", "roberta.", "a RoBERTa"), ("distilbert", "distilbert.", "a DistilBERT")):
            sd = {k.replace("bert.", sd_prefix, 1): v for k, v in hf_state_dict("bert.", 13).items()}
            folder = write_hf(os.path.join(WORK, f"hf-{mt}"), sd, dict(HF_CONFIG, model_type=mt))
            r = train_from(folder, f"refuse-{mt}", expect_ok=False)
            assert r.returncode != 0 and needle in r.stderr and "only BERT checkpoints" in r.stderr, r.stderr[-1500:]
            try:
                export_hf.import_folder(folder, os.path.join(WORK, f"{mt}.safetensors"))
            except export_hf.HfError as e:
                assert "only BERT" in str(e), e
            else:
                raise AssertionError(f"export_hf import took a {mt} folder")
        bad = write_hf(os.path.join(WORK, "hf-bad-size"), hf_state_dict("bert.", 14), dict(HF_CONFIG, hidden_size=48))
        r = train_from(bad, "refuse-size", expect_ok=False)
        assert r.returncode != 0 and "model.hidden_size: the config has 32" in r.stderr, r.stderr[-1500:]

    def group():
        for prefix in ("bert.", ""):
            check(f"dense-train --init-from a Hugging Face BERT folder (standard names, prefix {prefix!r}, "
                  f"safetensors) = scripts/export_hf.py's mapping, bit for bit", standard(prefix, "safetensors"))
        check("pytorch_model.bin: a clear error naming bin-to-safetensors, then the converted folder loads",
              standard("bert.", "bin"))
        check("dense-train --init-from the exported BERT folder restores the trained weights bit for bit",
              own_export_round_trip)
        check("dense-eval glue --init-from a BertModel folder (no heads): heads from the model's init", finetune_from_hf)
        check("RoBERTa / DistilBERT layouts and a size mismatch are refused, naming them", refused)
    return [("hf_import", group)]


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "apps"), help="folder of dense-train/prep/eval")
    ap.add_argument("--only", default="", help="comma-separated: run only the groups whose name contains one of "
                    "these (variants, unsupported, round_trips, trained, full_vocab, hf_import)")
    ap.add_argument("--shared", help="the shared folder holding data/wikitext-2 (default: ../shared beside the "
                                     "repository; tests/fixtures/corpus when absent)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    a = ap.parse_args()
    global WIKITEXT
    if a.shared:
        WIKITEXT = os.path.join(a.shared, "data", "wikitext-2", "valid.txt")
    # (name, function, needs the node clients)
    groups = [("variants", test_variants, True), ("unsupported", lambda: test_unsupported(), False),
              ("round_trips", test_round_trips, False)]
    groups += [(n, f, True) for n, f in trained_groups(a.bin) + full_vocab_groups(a.bin)]
    groups += [(n, f, False) for n, f in hf_import_groups(a.bin)]
    wanted = [w for w in a.only.split(",") if w]
    groups = [g for g in groups if not wanted or any(w in g[0] for w in wanted)]
    clients = True
    if any(g[2] for g in groups):
        why = ensure_clients()
        if why is not None:
            if os.environ.get("DENSE_SKIP_EXPORT_CLIENTS") == "1":
                print(f"SKIP the client checks (DENSE_SKIP_EXPORT_CLIENTS=1): {why}")
                clients = False
            else:
                bad("the node clients are installed (npm install --ignore-scripts)",
                    why + "\n(DENSE_SKIP_EXPORT_CLIENTS=1 skips the client checks where npm cannot be reached)")
                print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
                return 1
    try:
        for gname, fn, needs in groups:
            if needs and not clients:
                print(f"SKIP {gname}: needs onnxruntime-node / Transformers.js")
                continue
            fn()
    finally:
        if not a.keep:
            shutil.rmtree(WORK, ignore_errors=True)
        else:
            print(f"work folder kept: {WORK}")
    for k, v in sorted(MEASURED.items()):
        print(f"measured: max |difference| {k}: {v:.3g}")
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
