"""Independent PyTorch reference of the softmax BERT baseline (docs/model.md §1.12, docs/model-config.md 'BERT keys').

Pre-LN encoder: LayerNorm (with bias, eps layer_norm_eps) in the embeddings, before attention, before the FFN
and at the end. Multi-head softmax attention with scale 1/sqrt(e). Deliberate difference from the original
reference repo: a key padding mask IS applied (scores of keys with mask 0 become -inf before the softmax).
Learned positions, no segment embeddings. Dropout is not implemented (the reference is deterministic).
"""

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F

from danet_reference import (COMMON_DEFAULTS, ACTIVATION_NAMES, apply_activation, combined_loss,
                             padded_vocab_size, select_masked_rows)

BERT_DEFAULTS = dict(COMMON_DEFAULTS, **{
    "model_type": "bert",
    "num_attention_heads": 16,
    "intermediate_size": 4096,       # absolute FFN width for BERT
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "classifier_bias": True,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
})


def resolve_bert_config(config):
    cfg = dict(BERT_DEFAULTS)
    for k, v in config.items():
        if k not in BERT_DEFAULTS:
            raise ValueError(f"unknown BERT config key '{k}'")
        cfg[k] = v
    if cfg["model_type"] != "bert":
        raise ValueError(f"model_type must be 'bert', got {cfg['model_type']!r}")
    if cfg["hidden_size"] % cfg["num_attention_heads"] != 0:
        raise ValueError("hidden_size must be divisible by num_attention_heads")
    if cfg["hidden_act"] not in ACTIVATION_NAMES:
        raise ValueError(f"hidden_act: bad value {cfg['hidden_act']!r}")
    return cfg


def bert_param_shapes(cfg):
    d, I = cfg["hidden_size"], cfg["intermediate_size"]
    V = padded_vocab_size(cfg["vocab_size"])
    s = OrderedDict()
    s["embeddings.word_embeddings.weight"] = (V, d)
    s["embeddings.position_embeddings.weight"] = (cfg["max_position_embeddings"], d)
    s["embeddings.norm.weight"] = (d,)
    s["embeddings.norm.bias"] = (d,)
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        s[p + "attention_norm.weight"] = (d,)
        s[p + "attention_norm.bias"] = (d,)
        for proj in ("query", "key", "value", "output"):
            s[p + f"attention.{proj}.weight"] = (d, d)
            s[p + f"attention.{proj}.bias"] = (d,)
        s[p + "ffn_norm.weight"] = (d,)
        s[p + "ffn_norm.bias"] = (d,)
        s[p + "ffn.dense_in.weight"] = (I, d)
        s[p + "ffn.dense_in.bias"] = (I,)
        s[p + "ffn.dense_out.weight"] = (d, I)
        s[p + "ffn.dense_out.bias"] = (d,)
    s["encoder.final_norm.weight"] = (d,)
    s["encoder.final_norm.bias"] = (d,)
    s["lm_head.transform.dense.weight"] = (d, d)
    s["lm_head.transform.dense.bias"] = (d,)
    s["lm_head.transform.norm.weight"] = (d,)
    s["lm_head.transform.norm.bias"] = (d,)
    s["lm_head.bias"] = (V,)
    s["pooler.dense.weight"] = (d, d)
    s["pooler.dense.bias"] = (d,)
    s["classifier.weight"] = (cfg["num_labels"], d)
    if cfg["classifier_bias"]:
        s["classifier.bias"] = (cfg["num_labels"],)
    return s


def _linear(x, params, name):
    return x @ params[name + ".weight"].t() + params[name + ".bias"]


class BertReference:
    def __init__(self, config):
        self.cfg = resolve_bert_config(config)
        self.d = self.cfg["hidden_size"]
        self.H = self.cfg["num_attention_heads"]
        self.e = self.d // self.H
        self.eps = float(self.cfg["layer_norm_eps"])

    def param_shapes(self):
        return bert_param_shapes(self.cfg)

    def num_parameters(self):
        return sum(math.prod(s) for s in self.param_shapes().values())

    def _ln(self, x, params, name):
        # LayerNorm with bias, biased variance, eps inside the sqrt
        return F.layer_norm(x, (self.d,), params[name + ".weight"], params[name + ".bias"], self.eps)

    def _attention(self, h, params, p, attention_mask):
        B, N, d = h.shape
        H, e = self.H, self.e

        def heads(x):
            return x.reshape(B, N, H, e).transpose(1, 2)  # [B, H, N, e]

        q = heads(_linear(h, params, p + "attention.query"))
        k = heads(_linear(h, params, p + "attention.key"))
        v = heads(_linear(h, params, p + "attention.value"))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(e)
        key_pad = (attention_mask == 0)[:, None, None, :]  # [B, 1, 1, N]
        scores = scores.masked_fill(key_pad, float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        ctx = (probs @ v).transpose(1, 2).reshape(B, N, d)
        return _linear(ctx, params, p + "attention.output")

    def encoder(self, params, input_ids, attention_mask):
        c = self.cfg
        B, N = input_ids.shape
        if N > c["max_position_embeddings"]:
            raise ValueError("sequence longer than max_position_embeddings")
        x = params["embeddings.word_embeddings.weight"][input_ids] + \
            params["embeddings.position_embeddings.weight"][:N][None]
        x = self._ln(x, params, "embeddings.norm")
        for i in range(c["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            x = x + self._attention(self._ln(x, params, p + "attention_norm"), params, p, attention_mask)
            h = self._ln(x, params, p + "ffn_norm")
            h = apply_activation(c["hidden_act"], _linear(h, params, p + "ffn.dense_in"))
            x = x + _linear(h, params, p + "ffn.dense_out")
        return self._ln(x, params, "encoder.final_norm")

    def forward(self, params, input_ids, attention_mask=None, mlm_labels=None, class_labels=None):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        seq = self.encoder(params, input_ids, attention_mask)
        out = {"sequence_output": seq}
        mlm_logits = targets = None
        if mlm_labels is not None:
            S, targets = select_masked_rows(seq, mlm_labels)
            # MLM transform: dense (bias) + GELU (exact) + LayerNorm (bias), then the tied decoder + bias
            T = F.gelu(_linear(S, params, "lm_head.transform.dense"))
            T = self._ln(T, params, "lm_head.transform.norm")
            mlm_logits = T @ params["embeddings.word_embeddings.weight"].t() + params["lm_head.bias"]
            out["mlm_logits"] = mlm_logits
        out["pooled"] = torch.tanh(_linear(seq[:, 0], params, "pooler.dense"))
        logits = out["pooled"] @ params["classifier.weight"].t()
        if "classifier.bias" in params:
            logits = logits + params["classifier.bias"]
        out["class_logits"] = logits
        if mlm_labels is not None or class_labels is not None:
            loss, mlm_loss, cls_loss = combined_loss(mlm_logits, targets, logits, class_labels,
                                                     self.cfg["num_labels"])
            out["loss"], out["mlm_loss"], out["class_loss"] = loss, mlm_loss, cls_loss
        return out
