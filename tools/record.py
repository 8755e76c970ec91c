#!/usr/bin/env python3
"""Reruns the measurements recorded in a results document and writes their output back into it.

A recorded block in a Markdown file (docs/benchmarks.md) is everything between

    <!-- record NAME FORMAT CLASS: COMMAND -->
    ...
    <!-- end record NAME -->

where FORMAT is `text` (the output goes into a fenced block, as a terminal shows it) or `markdown`
(the output is Markdown, a table, and goes in as it is), and CLASS says on which adapters the
block is measured: `cpu` (a CPU adapter: lavapipe, WARP), `gpu` (any other) or `any`. The block's content is replaced by one line
that says what gave it (the command, the date, the adapter and its driver, the CPU) and the
command's standard output. Nothing else in the file changes, and nothing changes at all unless
every command asked for succeeded: a failing command is reported with its standard error and the
file is left as it was.

    python3 tools/record.py                          # every block of docs/benchmarks.md for this adapter
    python3 tools/record.py docs/benchmarks.md profile-lavapipe tune-lavapipe   # some of them
    python3 tools/record.py --list                   # the blocks and their commands

COMMAND runs with bash (pipefail: a pipeline fails when any part does) in the repository root,
with the release build of sn-wgpu first on PATH (built first; SN_WGPU_BIN names another binary),
with an empty kernel-choice cache of its own (SN_WGPU_TUNE_CACHE), so that what is recorded is what
a user gets on a fresh machine, tuning included, and with SCRATCH naming an empty folder for what it
writes, removed afterwards. The adapter is the one `sn-wgpu info` chooses; WGPU_BACKEND and SN_WGPU_ADAPTER pick
another, as for every command.
"""
import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DOC = ROOT / "docs" / "benchmarks.md"
BEGIN = re.compile(r"^<!-- record (?P<name>[a-z0-9-]+) (?P<format>text|markdown) (?P<cls>cpu|gpu|any): (?P<command>.+?) -->$")
END = "<!-- end record {} -->"


class RecordError(Exception):
    pass


def blocks(lines, path):
    """(name, format, class, command, begin line index, end line index) of each block, in order."""
    found, seen = [], set()
    i = 0
    while i < len(lines):
        m = BEGIN.match(lines[i])
        if m:
            name = m["name"]
            if name in seen:
                raise RecordError(f"{path}:{i + 1}: a second block named {name}")
            seen.add(name)
            end = next((j for j in range(i + 1, len(lines)) if lines[j] == END.format(name)), None)
            if end is None:
                raise RecordError(f"{path}:{i + 1}: block {name} has no line `{END.format(name)}`")
            found.append((name, m["format"], m["cls"], m["command"], i, end))
            i = end
        elif lines[i].startswith("<!-- record") or lines[i].startswith("<!-- end record"):
            raise RecordError(f"{path}:{i + 1}: not a record line of the form `<!-- record NAME text|markdown cpu|gpu|any: COMMAND -->`")
        i += 1
    return found


def sn_wgpu_bin():
    given = os.environ.get("SN_WGPU_BIN")
    if given:
        return Path(given).resolve()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    return ROOT / "target" / "release" / "sn-wgpu"


def environment(binary):
    env = dict(os.environ)
    env["PATH"] = f"{binary.parent}{os.pathsep}{env.get('PATH', '')}"
    if not env.get("XDG_RUNTIME_DIR"):
        runtime = Path(f"/tmp/xdg-runtime-{os.getuid()}")
        runtime.mkdir(mode=0o700, exist_ok=True)
        env["XDG_RUNTIME_DIR"] = str(runtime)
    return env


def adapter_and_driver(binary, env):
    """The chosen adapter, its class (cpu or gpu) and its driver, from `sn-wgpu info`."""
    out = subprocess.run([str(binary), "info"], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RecordError(f"`sn-wgpu info` failed, so the adapter is unknown:\n{out.stderr.strip()}")
    chosen = next((l[len("chosen: "):] for l in out.stdout.splitlines() if l.startswith("chosen: ")), None)
    if chosen is None:
        raise RecordError("`sn-wgpu info` named no chosen adapter")
    name = re.sub(r" \([^()]*\)$", "", chosen)
    driver = "not reported"
    for line in out.stdout.splitlines():
        line = line.strip()
        if line.startswith(f"- {name} |") and "| driver " in line:
            driver = line.split("| driver ", 1)[1].strip()
            break
    cls = "cpu" if chosen.endswith(", Cpu)") else "gpu"
    return chosen, cls, driver


def cpu():
    model = "an unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores of {model}"


def run(name, command, env):
    with tempfile.TemporaryDirectory(prefix="sn-wgpu-record-") as tmp:
        scratch = Path(tmp) / "scratch"
        scratch.mkdir()
        block_env = dict(env, SN_WGPU_TUNE_CACHE=str(Path(tmp) / "kernel-choices.json"), SCRATCH=str(scratch))
        print(f"record {name}: {command}", file=sys.stderr, flush=True)
        out = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=ROOT, env=block_env, capture_output=True, text=True)
    if out.returncode != 0:
        tail = "\n".join(out.stderr.strip().splitlines()[-20:])
        raise RecordError(f"block {name}: `{command}` exited with status {out.returncode}:\n{tail}")
    if not out.stdout.strip():
        raise RecordError(f"block {name}: `{command}` printed nothing")
    return out.stdout.strip("\n")


def rendered(fmt, command, output, said):
    lines = [f"*Command:* `{command}`. {said}", ""]
    if fmt == "text":
        lines += ["```text", *output.splitlines(), "```"]
    else:
        lines += output.splitlines()
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("doc", nargs="?", default=str(DEFAULT_DOC), help="the Markdown file (default docs/benchmarks.md)")
    parser.add_argument("names", nargs="*", help="the blocks to rerun (default: every block)")
    parser.add_argument("--list", action="store_true", help="list the blocks and their commands, run nothing")
    args = parser.parse_args()

    path = Path(args.doc)
    try:
        text = path.read_text()
    except OSError as e:
        raise RecordError(f"{path}: cannot read: {e.strerror}")
    lines = text.split("\n")
    found = blocks(lines, path)
    if args.list:
        for name, fmt, cls, command, _, _ in found:
            print(f"{name:28} {fmt:9} {cls:4} {command}")
        return
    unknown = sorted(set(args.names) - {b[0] for b in found})
    if unknown:
        raise RecordError(f"{path}: no block named {', '.join(unknown)} (it has: {', '.join(b[0] for b in found) or 'none'})")

    binary = sn_wgpu_bin()
    env = environment(binary)
    adapter, adapter_cls, driver = adapter_and_driver(binary, env)
    if args.names:
        wanted = args.names
        for name, _, cls, _, _, _ in found:
            if name in wanted and cls not in ("any", adapter_cls):
                raise RecordError(f"block {name} is measured on a {cls.upper()} adapter, and {adapter} is not one")
    else:
        wanted = [b[0] for b in found if b[2] in ("any", adapter_cls)]
        if not wanted:
            raise RecordError(f"{path}: no block is measured on a {adapter_cls.upper()} adapter like {adapter}")
    said = (f"*Date:* {datetime.date.today().isoformat()}. *Adapter:* {adapter}. *Driver:* {driver}. "
            f"*Host:* {cpu()}.")
    outputs = {name: run(name, command, env) for name, _, _, command, _, _ in found if name in wanted}

    # Replace from the last block up, so the earlier blocks' line numbers hold.
    for name, fmt, _, command, begin, end in reversed(found):
        if name in outputs:
            lines[begin + 1:end] = rendered(fmt, command, outputs[name], said)
    tmp = path.with_name(f".{path.name}.record-tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)
    print(f"{path}: {len(outputs)} block(s) rewritten: {', '.join(outputs)}", file=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    except RecordError as e:
        print(f"record.py: {e}", file=sys.stderr)
        sys.exit(1)
    except subprocess.CalledProcessError as e:
        print(f"record.py: `{' '.join(map(str, e.cmd))}` failed with status {e.returncode}", file=sys.stderr)
        sys.exit(1)
