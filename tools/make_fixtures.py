#!/usr/bin/env python3
"""Regenerates every PyTorch golden fixture in tests/fixtures/.

    pip install torch safetensors numpy
    python3 tools/make_fixtures.py            # all families
    python3 tools/make_fixtures.py conv1d     # just one

Each fixture is made by tools/fixtures/<name>.py, found by its file, with a `make()` that returns
the fixture's tensors and metadata, or by a module that makes several (SHARED), whose
`make(name)` is told which; this driver writes them to tests/fixtures/<name>.safetensors. The
fixtures each op family uses are listed beside it in `sn_wgpu::ops::FAMILIES`.
Inputs are seeded random f32; PyTorch computes outputs and gradients in float64 from exactly
those f32 values, and they are stored as f32. The fixtures are small and committed, so tests
need no PyTorch.
"""
import importlib
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Fixtures made by one module for several (they differ only in one function).
SHARED = {"kl_div": "teacher_loss", "l2_prob": "teacher_loss"}


def all_fixtures():
    """Every fixture: one per module of tools/fixtures/, or those SHARED names for it."""
    modules = sorted(p.stem for p in (ROOT / "tools" / "fixtures").glob("*.py") if p.stem not in ("__init__", "common"))
    names = []
    for module in modules:
        names.extend([f for f, m in SHARED.items() if m == module] or [module])
    return names


def main(names):
    sys.path.insert(0, str(ROOT / "tools"))
    from fixtures.common import save

    for name in names or all_fixtures():
        if name in SHARED:
            tensors, metadata = importlib.import_module(f"fixtures.{SHARED[name]}").make(name)
        else:
            tensors, metadata = importlib.import_module(f"fixtures.{name}").make()
        path = save(ROOT / "tests" / "fixtures" / f"{name}.safetensors", tensors, metadata)
        print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main(sys.argv[1:])
