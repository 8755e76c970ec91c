#!/usr/bin/env python3
"""Times the training step `sn-wgpu profile` times, in PyTorch, for the sn-wgpu / PyTorch ratio.

    python3 tools/time_pytorch.py --model soundnet8 --batch 1 --seconds 20 [--device cuda] [--threads N]
        [--precision fp32|tf32|bf16|fp16] [--compile]

Same step: SoundNet-8 or SoundNet-5 (or soundnet8-narrowN / soundnet5-narrowN: body channels / N,
full heads; the layer tables of src/model/arch.rs), batchnorm in training mode, KL(teacher || softmax(logits)) per head averaged
over batch and output steps, the two heads summed, torch.optim.Adam (lr 1e-3, PyTorch defaults),
input uniform in [-256, 256] and uniform teachers as the profiler uses; on CUDA each step ends
with a synchronize. Prints the mean time per step over --steps steps after --warmup untimed ones,
and clips per second.

--precision says what a PyTorch user would run:
  fp32  strict float32: TF32 off for convolutions and matmuls (what sn-wgpu computes);
  tf32  PyTorch's defaults: on CUDA its convolutions use TF32 (torch.backends.cudnn.allow_tf32 is
        True unless a user turns it off), matmuls stay float32; on a CPU the same as fp32;
  bf16, fp16  torch.autocast to that type (float32 weights and Adam; fp16 with a GradScaler).
--compile runs the model through torch.compile first (its compilation happens in the warm-up).
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# cin, cout, k, stride, pad, pool of each body layer, and the heads' k, stride, pad
# (src/model/arch.rs)
SOUNDNET8 = [
    (1, 16, 64, 2, 32, 8),
    (16, 32, 32, 2, 16, 8),
    (32, 64, 16, 2, 8, None),
    (64, 128, 8, 2, 4, None),
    (128, 256, 4, 2, 2, 4),
    (256, 512, 4, 2, 2, None),
    (512, 1024, 4, 2, 2, None),
]
SOUNDNET8_HEADS = (8, 2, 0)
SOUNDNET5 = [
    (1, 32, 64, 2, 32, 8),
    (32, 64, 32, 2, 16, 8),
    (64, 128, 16, 2, 8, 8),
    (128, 256, 8, 2, 4, None),
]
SOUNDNET5_HEADS = (16, 12, 4)
CLASSES = (1000, 401)


class SoundNet(nn.Module):
    def __init__(self, layers, heads, divisor):
        super().__init__()
        body, cin = [], 1
        for _, cout, k, s, p, pool in layers:
            cout = max(cout // divisor, 1)
            body += [nn.Conv1d(cin, cout, k, s, p), nn.BatchNorm1d(cout), nn.ReLU()]
            if pool:
                body.append(nn.MaxPool1d(pool, pool))
            cin = cout
        self.body = nn.Sequential(*body)
        self.heads = nn.ModuleList(nn.Conv1d(cin, c, *heads) for c in CLASSES)

    def forward(self, x):
        h = self.body(x)
        return [head(h) for head in self.heads]


def kl(teacher, logits):
    n, _, t = logits.shape
    return F.kl_div(F.log_softmax(logits, dim=1), teacher, reduction="sum") / (n * t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="soundnet8")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, help="CPU threads (default: PyTorch's, one per core)")
    ap.add_argument("--precision", choices=["fp32", "tf32", "bf16", "fp16"], default="fp32")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    base, _, narrow = a.model.partition("-narrow")
    tables = {"soundnet8": (SOUNDNET8, SOUNDNET8_HEADS), "soundnet5": (SOUNDNET5, SOUNDNET5_HEADS)}
    if base not in tables or (narrow and not narrow.isdigit()):
        raise SystemExit(f"--model {a.model}: expected soundnet8 or soundnet5, optionally -narrowN")
    layers, heads = tables[base]
    divisor = int(narrow) if narrow else 1
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = a.precision == "tf32"
    dev = torch.device(a.device)
    model = SoundNet(layers, heads, divisor).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    forward = torch.compile(model) if a.compile else model
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(a.precision)
    scaler = torch.amp.GradScaler(dev.type) if a.precision == "fp16" else None
    samples = round(a.seconds * 22_050)
    x = (torch.rand(a.batch, 1, samples, device=dev) * 2 - 1) * 256
    with torch.no_grad():
        steps = model(x)[0].shape[2]
    teachers = [torch.full((a.batch, c, steps), 1.0 / c, device=dev) for c in CLASSES]

    def step():
        opt.zero_grad(set_to_none=False)
        with torch.autocast(dev.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            objects, scenes = forward(x)
            loss = kl(teachers[0], objects.float()) + kl(teachers[1], scenes.float())
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    mean = sum(times) / len(times)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    how = a.precision + (", torch.compile" if a.compile else "")
    print(f"pytorch {torch.__version__} on {name}: {a.model} training step, batch {a.batch} x {a.seconds} s, {how}")
    print(f"{mean * 1e3:.1f} ms per step (mean of {a.steps}), {a.batch / mean:.2f} clips/s")


if __name__ == "__main__":
    main()
