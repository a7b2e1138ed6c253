"""Minimal .safetensors reader for the PyTorch reference, independent of cleave's C++.

Format: an 8-byte little-endian header length N, N bytes of JSON mapping each tensor
name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the end
of the header; an optional "__metadata__" entry), then the raw little-endian data.
A sharded checkpoint lists its tensors in model.safetensors.index.json
({"weight_map": {name: file}}).
"""

import json
import mmap
import os
import struct

import numpy as np
import torch

# safetensors dtype -> (numpy dtype used to read the bytes, torch dtype it stands for).
# BF16 has no numpy type: its bits are read as int16 and reinterpreted by torch.
_DTYPES = {
    "F64": (np.float64, torch.float64),
    "F32": (np.float32, torch.float32),
    "F16": (np.float16, torch.float16),
    "BF16": (np.int16, torch.bfloat16),
    "I64": (np.int64, torch.int64),
    "I32": (np.int32, torch.int32),
    "I16": (np.int16, torch.int16),
    "I8": (np.int8, torch.int8),
    "U8": (np.uint8, torch.uint8),
    "BOOL": (np.bool_, torch.bool),
}

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


class SafetensorsError(ValueError):
    pass


def read_header(path):
    """Returns (header dict without __metadata__, offset where the data starts)."""
    with open(path, "rb") as f:
        raw_len = f.read(8)
        if len(raw_len) != 8:
            raise SafetensorsError(f"{path}: shorter than the 8-byte header length")
        (n,) = struct.unpack("<Q", raw_len)
        size = os.fstat(f.fileno()).st_size
        if n > size - 8:
            raise SafetensorsError(f"{path}: header length {n} runs past the file ({size} bytes)")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SafetensorsError(f"{path}: header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    header.pop("__metadata__", None)
    return header, 8 + n


def load_file(path, names=None):
    """Reads a .safetensors file into {name: torch.Tensor} (all tensors, or `names`).

    The file is mapped copy-on-write, so tensors share pages with the file until written.
    """
    header, data_start = read_header(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) if size > 0 else b""
    out = {}
    for name, info in header.items():
        if names is not None and name not in names:
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise SafetensorsError(f"{path}: tensor {name}: malformed entry {info!r}") from None
        if dtype not in _DTYPES:
            raise SafetensorsError(f"{path}: tensor {name}: unsupported dtype {dtype}")
        np_dtype, torch_dtype = _DTYPES[dtype]
        count = 1
        for d in shape:
            if not isinstance(d, int) or d < 0:
                raise SafetensorsError(f"{path}: tensor {name}: bad shape {shape}")
            count *= d
        nbytes = count * np.dtype(np_dtype).itemsize
        if not (0 <= begin <= end) or end - begin != nbytes:
            raise SafetensorsError(
                f"{path}: tensor {name}: data_offsets {[begin, end]} hold {end - begin} bytes, "
                f"{dtype}{shape} needs {nbytes}")
        if data_start + end > size:
            raise SafetensorsError(f"{path}: tensor {name}: data runs past the end of the file")
        arr = np.frombuffer(mm, dtype=np.dtype(np_dtype).newbyteorder("<"), count=count,
                            offset=data_start + begin)
        t = torch.from_numpy(arr.astype(np_dtype, copy=False)).reshape(shape)
        if torch_dtype == torch.bfloat16:
            t = t.view(torch.bfloat16)
        out[name] = t
    if names is not None:
        missing = set(names) - set(out)
        if missing:
            raise SafetensorsError(f"{path}: missing tensors {sorted(missing)}")
    return out


def load_checkpoint(model_dir):
    """All tensors of a checkpoint directory: model.safetensors, else the sharded index."""
    single = os.path.join(model_dir, SINGLE_FILE)
    if os.path.exists(single):
        return load_file(single)
    index_path = os.path.join(model_dir, INDEX_FILE)
    if not os.path.exists(index_path):
        raise SafetensorsError(f"{model_dir}: neither {SINGLE_FILE} nor {INDEX_FILE}")
    with open(index_path) as f:
        try:
            weight_map = json.load(f)["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise SafetensorsError(f"{index_path}: no weight_map: {e}") from None
    by_file = {}
    for name, file in weight_map.items():
        by_file.setdefault(file, set()).add(name)
    out = {}
    for file, names in sorted(by_file.items()):
        out.update(load_file(os.path.join(model_dir, file), names))
    return out

