#!/usr/bin/env python3
"""More unlabeled audio from the audio you have: random mixtures of your clips, for distillation.

A trained SoundNet teaches any audio (`sn-wgpu teach`), so a student need not see only the clips
it was given: the sum of two clips, each at a random gain and circularly shifted by a random
offset, is a new sound the teacher labels by itself. With 400 clips there are 79,800 pairs. This
writes COUNT such mixtures as 16-bit mono WAVs; `sn-wgpu teach` then makes them a training set.
No labels are read: pairs are drawn uniformly, whatever their classes.

    python3 tools/mix_clips.py --out mixes --count 4000 clips/*.wav
    sn-wgpu teach --weights soundnet8.safetensors --out mixes-teacher mixes/*.wav

Every clip must be a mono PCM WAV at the rate of the first (the ESC-10 and `extract` outputs
are); each mixture is as long as the first clip, the other clip tiled or cut to it. A mixture is
scaled so that its peak stays inside 16 bits. The same --seed gives the same files.
"""

import argparse
import sys
import wave
from pathlib import Path

import numpy as np


def read_wav(path):
    """(samples as float64 in [-1, 1], sample rate); exits naming the file on anything else."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getnchannels() != 1 or w.getsampwidth() != 2:
                raise ValueError(f"{w.getnchannels()} channel(s) of {8 * w.getsampwidth()} bits; mono 16-bit PCM needed")
            data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768.0
            if data.size == 0:
                raise ValueError("no samples")
            return data, w.getframerate()
    except (OSError, EOFError, wave.Error, ValueError) as e:
        sys.exit(f"mix_clips.py: {path}: {e}")


def fit(x, length):
    """x tiled (repeated) or cut to `length` samples."""
    return np.resize(x, length)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="folder for mix-NNNNNN.wav (created)")
    ap.add_argument("--count", required=True, type=int, help="how many mixtures")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-gain", type=float, default=0.25, help="each part's gain is uniform in [MIN, 1]")
    ap.add_argument("clips", nargs="+", type=Path)
    args = ap.parse_args()
    if len(args.clips) < 2:
        sys.exit("mix_clips.py: give at least two clips")
    if args.count < 1 or not 0.0 <= args.min_gain <= 1.0:
        sys.exit("mix_clips.py: --count must be positive and --min-gain in [0, 1]")
    clips = [read_wav(p) for p in args.clips]
    rate = clips[0][1]
    for path, (_, r) in zip(args.clips, clips):
        if r != rate:
            sys.exit(f"mix_clips.py: {path}: {r} Hz, but {args.clips[0]} is {rate} Hz; resample first")
    length = clips[0][0].size
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(args.count):
        a, b = rng.choice(len(clips), size=2, replace=False)
        mix = np.zeros(length)
        for k in (a, b):
            gain = rng.uniform(args.min_gain, 1.0)
            mix += gain * np.roll(fit(clips[k][0], length), rng.integers(length))
        peak = np.abs(mix).max()
        if peak > 32767 / 32768:
            mix *= (32767 / 32768) / peak
        with wave.open(str(args.out / f"mix-{i:06d}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(np.round(mix * 32768).astype("<i2").tobytes())
    print(f"wrote {args.count} mixtures of {len(clips)} clips ({length / rate:.2f} s at {rate} Hz) to {args.out}")


if __name__ == "__main__":
    main()
