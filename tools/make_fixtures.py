#!/usr/bin/env python3
"""Regenerates every PyTorch golden fixture in kernels-tests/fixtures/.

    pip install torch safetensors numpy
    python3 tools/make_fixtures.py            # all families
    python3 tools/make_fixtures.py conv1d     # just one

Each family lives in tools/fixtures/<family>.py with a `make()` that returns the fixture's
tensors and metadata, or in a module that makes several (SHARED), whose `make(family)` is told
which; this driver writes them to kernels-tests/fixtures/<family>.safetensors.
Inputs are seeded random f32; PyTorch computes outputs and gradients in float64 from exactly
those f32 values, and they are stored as f32. The fixtures are small and committed, so tests
need no PyTorch.
"""
import importlib
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FAMILIES = ["relu", "conv1d", "batchnorm", "maxpool1d", "bn_relu_pool", "kl_div", "l2_prob", "adam", "train_step", "pretrained"]
# Families made by one module for several (they differ only in one function).
SHARED = {"kl_div": "teacher_loss", "l2_prob": "teacher_loss"}


def main(names):
    sys.path.insert(0, str(ROOT / "tools"))
    from fixtures.common import save

    for name in names or FAMILIES:
        if name in SHARED:
            tensors, metadata = importlib.import_module(f"fixtures.{SHARED[name]}").make(name)
        else:
            tensors, metadata = importlib.import_module(f"fixtures.{name}").make()
        path = save(ROOT / "kernels-tests" / "fixtures" / f"{name}.safetensors", tensors, metadata)
        print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main(sys.argv[1:])
