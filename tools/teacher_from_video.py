#!/usr/bin/env python3
"""The paper's teachers: vision networks run on a video's frames, written as an sn-wgpu dataset.

    python3 tools/teacher_from_video.py --out my-set \\
        --objects-arch resnet50 --objects-weights resnet50-imagenet.pth \\
        --scenes-arch resnet18 --scenes-weights resnet18_places365.pth.tar \\
        videos/*.mp4 [--shard K/N] [--skip-bad] [--temperature T] [--device cuda]

For each video: its audio track as 22,050 Hz mono 16-bit WAV (`OUT/audio/<stem>.wav`) and, for
each 5 s of that audio, the frame at the middle of the stretch (seconds 5r + 2.5; the last frame
where the video is shorter), resized so its shorter side is 256 and centre-cropped to 224 x 224,
normalised with ImageNet's mean and standard deviation; each network's softmax of it (of
logits / T) is row r of `OUT/teacher/<stem>.<objects|scenes>.npy`, float32 `[rows, classes]`, with
`rows = ceil(seconds / 5)`, the rows `sn-wgpu train` pairs with its output steps. `OUT/manifest.csv`
lists them (audio,objects,scenes, or one of the two columns when only one network is given).

Networks are files the user gives, never downloaded: a torchvision architecture name (any of
`torchvision.models`: resnet18, resnet50, squeezenet1_1, ...) and its weights, either a state dict
(torchvision's `.pth`, or CSAILVision's Places365 `.pth.tar` whose `state_dict` has `module.`
prefixes) or a whole pickled model. The number of classes is read from the weights (the last
`.weight` tensor's first axis): 1000 for ImageNet, 365 for Places365, any other.

Needs ffmpeg and ffprobe (Debian: apt-get install ffmpeg), torch, torchvision and numpy.
`--shard K/N` takes the videos whose path, as listed, hashes (FNV-1a 64) to K modulo N, exactly as
`sn-wgpu teach --shard` does. A video that cannot be read (no audio, no video stream, not a video)
is listed on stderr and the others are done; the exit status is then 1, or 0 with --skip-bad.
"""
import argparse
import csv
import io
import math
import pathlib
import subprocess
import sys
import wave

import numpy as np
import torch
import torchvision

RATE = 22_050
ROW_SECONDS = 5.0
CROP = 224
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def fnv1a64(data: bytes) -> int:
    """The 64-bit FNV-1a hash, as src/commands/eval/shard.rs computes it."""
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def parse_shard(text):
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard {text!r}: expected K/N with 0 <= K < N, such as 0/8")
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"--shard {text!r}: expected K/N with 0 <= K < N (shards count from 0)")
    return k, n


def load_network(arch, weights):
    """A torchvision `arch` with the classes and values of `weights`, in eval mode."""
    try:
        obj = torch.load(weights, map_location="cpu", weights_only=False)
    except Exception as e:
        sys.exit(f"{weights}: cannot load the network weights ({e})")
    if isinstance(obj, torch.nn.Module):
        return obj.eval()
    state = obj.get("state_dict", obj)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    last = [k for k, v in state.items() if k.endswith(".weight") and v.dim() >= 2][-1]
    classes = state[last].shape[0]
    if not hasattr(torchvision.models, arch):
        sys.exit(f"{arch}: not a torchvision.models architecture (such as resnet18, resnet50, squeezenet1_1)")
    model = getattr(torchvision.models, arch)(weights=None, num_classes=classes)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        sys.exit(f"{weights}: does not fit {arch} with {classes} classes ({e})")
    return model.eval()


def run(cmd):
    """Runs `cmd`; its stdout, or a ValueError with ffmpeg's last complaint."""
    done = subprocess.run(cmd, capture_output=True)
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise ValueError(lines[-1] if lines else f"{cmd[0]} failed")
    return done.stdout


def extract_audio(video, wav):
    """The audio track as 22,050 Hz mono 16-bit WAV; its length in seconds."""
    run(["ffmpeg", "-v", "error", "-y", "-i", str(video), "-vn", "-ac", "1", "-ar", str(RATE),
         "-c:a", "pcm_s16le", str(wav)])
    with wave.open(str(wav)) as w:
        frames = w.getnframes()
    if frames == 0:
        raise ValueError("no audio samples")
    return frames / RATE


def video_seconds(video):
    out = run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=duration:format=duration",
               "-of", "default=noprint_wrappers=1:nokey=1", str(video)]).decode().split()
    times = [float(t) for t in out if t not in ("N/A", "")]
    if not times:
        raise ValueError("no video stream")
    return min(times)


def frame_at(video, seconds):
    """The frame at `seconds`, shorter side scaled to 256, centre 224 x 224 crop, as [3, 224, 224] in [0, 1]."""
    scale = f"scale=w='if(lt(iw,ih),256,-2)':h='if(lt(iw,ih),-2,256)',crop={CROP}:{CROP}"
    raw = run(["ffmpeg", "-v", "error", "-ss", f"{seconds:.3f}", "-i", str(video), "-frames:v", "1", "-vf", scale,
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
    if len(raw) != CROP * CROP * 3:
        return None
    return torch.from_numpy(np.frombuffer(raw, dtype=np.uint8).copy()).view(CROP, CROP, 3).permute(2, 0, 1).float() / 255


def frames(video, rows):
    """One frame per 5 s row: the middle of the row, or the video's last frame past its end."""
    length = video_seconds(video)
    out, last = [], None
    for r in range(rows):
        t = min(r * ROW_SECONDS + ROW_SECONDS / 2, max(0.0, length - 0.05))
        f = frame_at(video, t)
        if f is None and last is None:
            raise ValueError(f"no frame at {t:.2f} s")
        last = f if f is not None else last
        out.append(last)
    return torch.stack([(f - MEAN) / STD for f in out])


def write_npy(path, rows):
    np.save(path, rows.astype(np.float32))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("videos", nargs="+", type=pathlib.Path)
    p.add_argument("--out", required=True, type=pathlib.Path)
    p.add_argument("--objects-arch")
    p.add_argument("--objects-weights", type=pathlib.Path)
    p.add_argument("--scenes-arch")
    p.add_argument("--scenes-weights", type=pathlib.Path)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--shard", type=parse_shard)
    p.add_argument("--skip-bad", action="store_true")
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    if not (a.temperature > 0 and math.isfinite(a.temperature)):
        sys.exit(f"--temperature {a.temperature} must be a positive number")
    heads = []
    for name, arch, weights in [("objects", a.objects_arch, a.objects_weights), ("scenes", a.scenes_arch, a.scenes_weights)]:
        if (arch is None) != (weights is None):
            sys.exit(f"--{name}-arch and --{name}-weights go together")
        if arch:
            heads.append((name, load_network(arch, weights).to(a.device)))
    if not heads:
        sys.exit("no teacher: give --objects-arch/--objects-weights, --scenes-arch/--scenes-weights or both")
    videos = [v for v in a.videos if a.shard is None or fnv1a64(str(v).encode()) % a.shard[1] == a.shard[0]]
    stems = {}
    for v in videos:
        if v.stem in stems:
            sys.exit(f"{stems[v.stem]} and {v} would both write {v.stem}.* in {a.out}")
        stems[v.stem] = v
    (a.out / "audio").mkdir(parents=True, exist_ok=True)
    (a.out / "teacher").mkdir(parents=True, exist_ok=True)
    lines, bad = [["audio"] + [n for n, _ in heads]], []
    for video in videos:
        wav = a.out / "audio" / f"{video.stem}.wav"
        try:
            seconds = extract_audio(video, wav)
            rows = max(1, math.ceil(seconds / ROW_SECONDS - 1e-9))
            x = frames(video, rows).to(a.device)
        except (ValueError, OSError) as e:
            bad.append(f"{video}: {e}")
            wav.unlink(missing_ok=True)
            continue
        fields = [f"audio/{wav.name}"]
        with torch.no_grad():
            for name, net in heads:
                probs = torch.softmax(net(x).double() / a.temperature, dim=1).cpu().numpy()
                write_npy(a.out / "teacher" / f"{video.stem}.{name}.npy", probs)
                fields.append(f"teacher/{video.stem}.{name}.npy")
        lines.append(fields)
        print(f"{video}: {rows} row(s), {seconds:.2f} s")
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(lines)
    (a.out / "manifest.csv").write_text(text.getvalue())
    print(f"wrote {a.out / 'manifest.csv'} with {len(lines) - 1} video(s), {' and '.join(n for n, _ in heads)}; "
          f"{len(a.videos) - len(videos)} belong to other shards")
    if bad:
        print(f"{len(bad)} of {len(videos)} videos could not be read:", file=sys.stderr)
        for b in bad:
            print(f"  {b}", file=sys.stderr)
        if not a.skip_bad:
            sys.exit(1)


if __name__ == "__main__":
    main()
