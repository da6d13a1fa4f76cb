"""Minimal hand-written reader/writer for the safetensors format.

No `safetensors` package is available here, so the format is implemented directly:

    [8 bytes]  little-endian uint64 N = length of the JSON header in bytes
    [N bytes]  UTF-8 JSON: {name: {"dtype": ..., "shape": [...], "data_offsets": [begin, end]}, ...,
                            optional "__metadata__": {str: str}}
               padded with trailing spaces so that N is a multiple of 8 (keeps the data 8-byte aligned)
    [rest]     raw little-endian tensor bytes; offsets are relative to the start of this region

Tensors are laid out back to back in header order, with no gaps. Only the dtypes the golden files need
are supported: F64, F32, I64, I32.
"""

import json
import struct

import numpy as np
import torch

# safetensors dtype tag -> (numpy little-endian dtype, torch dtype)
_DTYPES = {
    "F64": (np.dtype("<f8"), torch.float64),
    "F32": (np.dtype("<f4"), torch.float32),
    "I64": (np.dtype("<i8"), torch.int64),
    "I32": (np.dtype("<i4"), torch.int32),
}
_TORCH_TO_TAG = {tdt: tag for tag, (_, tdt) in _DTYPES.items()}


def save_file(tensors, path, metadata=None):
    """Write `tensors` (an ordered mapping name -> torch.Tensor) to `path`.

    The data region follows the mapping's iteration order. `metadata` must map str -> str.
    """
    header = {}
    if metadata is not None:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("safetensors metadata must map str to str")
        header["__metadata__"] = dict(metadata)

    blobs = []
    offset = 0
    for name, t in tensors.items():
        if name == "__metadata__":
            raise ValueError("'__metadata__' is reserved")
        t = t.detach().cpu().contiguous()
        if t.dtype not in _TORCH_TO_TAG:
            raise TypeError(f"tensor {name}: unsupported dtype {t.dtype}")
        tag = _TORCH_TO_TAG[t.dtype]
        npdt = _DTYPES[tag][0]
        # astype to the explicit little-endian dtype so the bytes are LE on any host.
        raw = t.numpy().astype(npdt, copy=False).tobytes(order="C")
        header[name] = {
            "dtype": tag,
            "shape": list(t.shape),  # a 0-d tensor gets shape []
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)

    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * ((-len(hbytes)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for raw in blobs:
            f.write(raw)


def load_file(path):
    """Read a safetensors file. Returns (dict name -> torch.Tensor in header order, metadata dict or {})."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError(f"{path}: file too short")
    (hlen,) = struct.unpack("<Q", buf[:8])
    if 8 + hlen > len(buf):
        raise ValueError(f"{path}: header length {hlen} exceeds the file size")
    header = json.loads(buf[8:8 + hlen].decode("utf-8"))
    data = buf[8 + hlen:]

    metadata = header.pop("__metadata__", None) or {}
    tensors = {}
    covered = 0
    for name, info in header.items():
        tag = info["dtype"]
        if tag not in _DTYPES:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {tag}")
        npdt, _ = _DTYPES[tag]
        shape = [int(s) for s in info["shape"]]
        begin, end = (int(x) for x in info["data_offsets"])
        numel = int(np.prod(shape)) if shape else 1
        if not (0 <= begin <= end <= len(data)):
            raise ValueError(f"{path}: tensor {name}: offsets {begin},{end} out of range")
        if end - begin != numel * npdt.itemsize:
            raise ValueError(f"{path}: tensor {name}: {end - begin} bytes for shape {shape} {tag}")
        arr = np.frombuffer(data[begin:end], dtype=npdt).reshape(shape)
        # Copy into native byte order so torch owns writable memory.
        tensors[name] = torch.from_numpy(arr.astype(npdt.newbyteorder("="), copy=True))
        covered += end - begin
    if covered != len(data):
        raise ValueError(f"{path}: data region has {len(data)} bytes but tensors cover {covered}")
    return tensors, metadata
