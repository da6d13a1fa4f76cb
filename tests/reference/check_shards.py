#!/usr/bin/env python3
"""Cross-checks densetrain's HDF5 shards with h5py, independently of the C++ reader.

  check_shards.py check-bert FILE [--vocab-hash H] [--seq-len N] [--max-pred P]
      Reads FILE exactly as the NVIDIA/LDDL BERT loader does (h5py, the six datasets read whole, the
      masked_lm_labels vector built from masked_lm_positions up to the first 0) and checks the layout:
      dataset names, dtypes (int32 / int8), shapes, gzip chunking, densetrain's attributes, and the row
      invariants ([CLS] first, input_mask = filled_lengths ones then zeros, positions ascending then 0-padded,
      inside the real tokens). Prints "label_checksum <n>" (see label_checksum) for the C++ test to compare.
  check_shards.py check-packed FILE [--vocab-hash H] [--seq-len N]
  check_shards.py check-classification FILE [--vocab-hash H] [--seq-len N]
  check_shards.py write-lddl FILE [--rows n] [--seq-len N] [--max-pred P]
      Writes an LDDL-layout file (gzip datasets, no densetrain attributes) with a fixed pattern that the C++
      test recomputes, and prints its label_checksum.

Exit status 0 when every check passes, 1 with a message otherwise, 2 when h5py or numpy is missing.
Runs with Debian's /usr/bin/python3 (python3-h5py).
"""
import argparse
import json
import sys

try:
    import h5py
    import numpy as np
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}")
    sys.exit(2)

LDDL_KEYS = ["input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids",
             "next_sentence_labels"]
LDDL_DTYPES = {"input_ids": "int32", "input_mask": "int8", "segment_ids": "int8", "masked_lm_positions": "int32",
               "masked_lm_ids": "int32", "next_sentence_labels": "int8", "filled_lengths": "int32"}
MERSENNE61 = (1 << 61) - 1


class CheckError(Exception):
    pass


def require(cond, msg):
    if not cond:
        raise CheckError(msg)


def label_checksum(labels):
    """h = (h * 1000003 + (label + 2)) mod (2^61 - 1) over the labels in row-major order."""
    h = 0
    for v in np.asarray(labels, dtype=np.int64).ravel().tolist():
        h = (h * 1000003 + (v + 2)) % MERSENNE61
    return h


def lddl_masked_lm_labels(inputs, max_pred_length):
    """The NVIDIA BERT pretraining_dataset.__getitem__ label construction, in numpy, for every row."""
    input_ids, _, _, masked_lm_positions, masked_lm_ids, _ = inputs
    out = np.full(input_ids.shape, -1, dtype=np.int64)
    for i in range(len(input_ids)):
        positions = masked_lm_positions[i].astype(np.int64)
        ids = masked_lm_ids[i].astype(np.int64)
        index = max_pred_length
        padded = np.nonzero(positions == 0)[0]
        if len(padded) != 0:
            index = int(padded[0])
        out[i][positions[:index]] = ids[:index]
    return out


def attr_str(f, name):
    v = f.attrs[name]
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    return str(v)


def check_attributes(f, fmt, args, seq_len):
    for name in ["format", "format_version", "vocab_hash", "seq_len", "prep_config"]:
        require(name in f.attrs, f"attribute '{name}' missing")
    require(isinstance(f.attrs["format"], str), "attribute 'format' is not read as str (want a UTF-8 vlen string)")
    require(attr_str(f, "format") == fmt, f"attribute 'format' is {attr_str(f, 'format')!r}, expected {fmt!r}")
    require(int(f.attrs["format_version"]) == 1, f"attribute 'format_version' is {f.attrs['format_version']}")
    require(np.asarray(f.attrs["seq_len"]).dtype.kind == "i", "attribute 'seq_len' is not an integer")
    require(int(f.attrs["seq_len"]) == seq_len, f"attribute 'seq_len' {f.attrs['seq_len']} != {seq_len}")
    json.loads(attr_str(f, "prep_config"))
    if args.vocab_hash is not None:
        require(attr_str(f, "vocab_hash") == args.vocab_hash,
                f"attribute 'vocab_hash' is {attr_str(f, 'vocab_hash')!r}, expected {args.vocab_hash!r}")


def check_dataset(f, name, dtype, shape):
    require(name in f, f"dataset '{name}' missing")
    d = f[name]
    require(isinstance(d, h5py.Dataset), f"'{name}' is not a dataset")
    require(d.dtype == np.dtype(dtype), f"dataset '{name}' has dtype {d.dtype}, expected {dtype}")
    require(d.shape == tuple(shape), f"dataset '{name}' has shape {d.shape}, expected {tuple(shape)}")
    require(d.compression == "gzip" and d.chunks is not None, f"dataset '{name}' is not gzip-chunked")
    return d


def check_bert(args):
    with h5py.File(args.file, "r") as f:
        n, N = f["input_ids"].shape
        P = f["masked_lm_positions"].shape[1]
        if args.seq_len is not None:
            require(N == args.seq_len, f"sequence length {N}, expected {args.seq_len}")
        if args.max_pred is not None:
            require(P == args.max_pred, f"max predictions {P}, expected {args.max_pred}")
        shapes = {"input_ids": (n, N), "input_mask": (n, N), "segment_ids": (n, N), "masked_lm_positions": (n, P),
                  "masked_lm_ids": (n, P), "next_sentence_labels": (n,), "filled_lengths": (n,)}
        for name, shape in shapes.items():
            check_dataset(f, name, LDDL_DTYPES[name], shape)
        require(set(f.keys()) == set(shapes), f"unexpected datasets: {sorted(set(f.keys()) - set(shapes))}")
        check_attributes(f, "bert", args, N)
        require(int(f.attrs["max_predictions_per_seq"]) == P, "attribute 'max_predictions_per_seq' mismatch")
        # Exactly as the loader: read whole, then index.
        inputs = [np.asarray(f[key][:]) for key in LDDL_KEYS]
        filled = np.asarray(f["filled_lengths"][:])
    input_ids, input_mask, segment_ids, positions, masked_ids, nsp = inputs
    labels = lddl_masked_lm_labels(inputs, P)
    for i in range(n):
        L = int(filled[i])
        require(0 < L <= N, f"row {i}: filled length {L}")
        require(input_ids[i][0] == args.cls_id, f"row {i}: input_ids[0] = {input_ids[i][0]}, expected [CLS] = {args.cls_id}")
        require((input_mask[i][:L] == 1).all() and (input_mask[i][L:] == 0).all(), f"row {i}: input_mask")
        require((input_ids[i][L:] == 0).all() and (segment_ids[i][L:] == 0).all(), f"row {i}: padding not 0")
        require(input_ids[i][L - 1] == args.sep_id, f"row {i}: last real token is not [SEP] = {args.sep_id}")
        require(set(np.unique(segment_ids[i]).tolist()) <= {0, 1}, f"row {i}: segment ids")
        require(nsp[i] in (0, 1), f"row {i}: next_sentence_label {nsp[i]}")
        k = int(np.count_nonzero(positions[i]))
        require(k >= 1 and (positions[i][k:] == 0).all() and (masked_ids[i][k:] == 0).all(),
                f"row {i}: masked_lm_positions not 0-padded")
        p = positions[i][:k]
        require((np.diff(p) > 0).all() and p[0] >= 1 and p[-1] < L, f"row {i}: positions {p.tolist()}")
        require((labels[i][p] == masked_ids[i][:k]).all(), f"row {i}: labels")
        require(int((labels[i] != -1).sum()) == k, f"row {i}: {int((labels[i] != -1).sum())} labels, expected {k}")
    print(f"OK bert rows {n} seq_len {N} max_pred {P}")
    print(f"label_checksum {label_checksum(labels)}")


def check_packed(args):
    with h5py.File(args.file, "r") as f:
        n, N = f["input_ids"].shape
        if args.seq_len is not None:
            require(N == args.seq_len, f"sequence length {N}, expected {args.seq_len}")
        check_dataset(f, "input_ids", "int32", (n, N))
        require(set(f.keys()) == {"input_ids"}, f"unexpected datasets: {sorted(f.keys())}")
        check_attributes(f, "packed", args, N)
        ids = np.asarray(f["input_ids"][:])
    require((ids[:, 0] == args.cls_id).all(), f"a row does not start with [CLS] = {args.cls_id}")
    print(f"OK packed rows {n} seq_len {N}")


def check_classification(args):
    with h5py.File(args.file, "r") as f:
        n, N = f["input_ids"].shape
        if args.seq_len is not None:
            require(N == args.seq_len, f"sequence length {N}, expected {args.seq_len}")
        check_dataset(f, "input_ids", "int32", (n, N))
        check_dataset(f, "attention_mask", "int8", (n, N))
        expected = {"input_ids", "attention_mask", "labels"}
        if "token_type_ids" in f:
            check_dataset(f, "token_type_ids", "int8", (n, N))
            expected.add("token_type_ids")
        if "input_ids2" in f:
            check_dataset(f, "input_ids2", "int32", (n, N))
            check_dataset(f, "attention_mask2", "int8", (n, N))
            expected |= {"input_ids2", "attention_mask2"}
        require(f["labels"].dtype in (np.dtype("int64"), np.dtype("float32")), f"labels dtype {f['labels'].dtype}")
        check_dataset(f, "labels", f["labels"].dtype, (n,))
        require(set(f.keys()) == expected, f"unexpected datasets: {sorted(set(f.keys()) - expected)}")
        check_attributes(f, "classification", args, N)
        require(int(f.attrs["num_labels"]) >= 1, "attribute 'num_labels'")
        mask = np.asarray(f["attention_mask"][:])
    require(set(np.unique(mask).tolist()) <= {0, 1}, "attention_mask values")
    print(f"OK classification rows {n} seq_len {N}")


def write_lddl(args):
    """Rows i: length L = 10 + 7i mod 100; ids [CLS], 1000 + 3i + j, 0-padded; segment 1 from L//2;
    masked positions 1 + 5k (k < 1 + i mod 19, inside L) with ids 7000 + position; NSP label i mod 2."""
    n, N, P = args.rows, args.seq_len, args.max_pred
    input_ids = np.zeros((n, N), np.int32)
    input_mask = np.zeros((n, N), np.int8)
    segment_ids = np.zeros((n, N), np.int8)
    positions = np.zeros((n, P), np.int32)
    masked_ids = np.zeros((n, P), np.int32)
    nsp = np.zeros((n,), np.int8)
    filled = np.zeros((n,), np.int32)
    for i in range(n):
        L = 10 + (i * 7) % 100
        input_ids[i, :L] = 1000 + i * 3 + np.arange(L)
        input_ids[i, 0] = 101
        input_mask[i, :L] = 1
        segment_ids[i, L // 2:L] = 1
        pos = [1 + 5 * k for k in range(1 + i % 19) if 1 + 5 * k < L][:P]
        positions[i, :len(pos)] = pos
        masked_ids[i, :len(pos)] = [7000 + p for p in pos]
        nsp[i] = i % 2
        filled[i] = L
    data = {"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids,
            "masked_lm_positions": positions, "masked_lm_ids": masked_ids, "next_sentence_labels": nsp,
            "filled_lengths": filled}
    with h5py.File(args.file, "w") as f:
        for name, value in data.items():
            f.create_dataset(name, data=value, dtype=LDDL_DTYPES[name], compression="gzip")
    inputs = [data[k] for k in LDDL_KEYS]
    print(f"OK wrote {n} rows")
    print(f"label_checksum {label_checksum(lddl_masked_lm_labels(inputs, P))}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["check-bert", "check-packed", "check-classification", "write-lddl"])
    ap.add_argument("file")
    ap.add_argument("--vocab-hash")
    ap.add_argument("--seq-len", type=int)
    ap.add_argument("--max-pred", type=int)
    ap.add_argument("--sep-id", type=int, default=102, help="id of [SEP] (102 in the BERT vocab)")
    ap.add_argument("--cls-id", type=int, default=101, help="id of [CLS] (101 in the BERT vocab)")
    ap.add_argument("--rows", type=int, default=100)
    args = ap.parse_args()
    try:
        if args.command == "write-lddl":
            args.seq_len = args.seq_len or 128
            args.max_pred = args.max_pred or 20
            write_lddl(args)
        else:
            {"check-bert": check_bert, "check-packed": check_packed,
             "check-classification": check_classification}[args.command](args)
    except (CheckError, KeyError, OSError, ValueError) as e:
        print(f"FAIL {args.file}: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
