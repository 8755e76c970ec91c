#!/usr/bin/env bash
# Makes the tiny audio fixtures of tests/data_pipeline.rs (one per container/codec the data
# pipeline decodes). Run from the repository root:
#   apt-get install -y sox libsox-fmt-all && bash tools/make_audio_fixtures.sh
# Each clip is a pure tone, so a test can check the decoded rate by counting zero crossings and the
# scale by the peak; `--no-dither` keeps 16-bit output bit-exact from run to run.
set -euo pipefail
out=tests/fixtures/audio
mkdir -p "$out"
s="sox --no-dither -V1 -n"

# 44.1 kHz stereo WAV: left a 441 Hz sine at 0.8 of full scale, right silent, so the mono mean is a
# 0.4 sine (a peak near 102.4 after scaling to +-256) and 0.25 s gives 110.25 cycles.
$s -r 44100 -c 2 -b 16 "$out/sine441_44k_stereo.wav" synth 0.25 sine 441 remix 1v0.8 0
# 8 kHz mono WAV: a 500 Hz sine at 0.99 of full scale (peaks near 253.4), 0.5 s.
$s -r 8000 -c 1 -b 16 "$out/sine500_8k_mono.wav" synth 0.5 sine 500 vol 0.99
# 48 kHz FLAC: a 1 kHz sine at half scale, 0.5 s.
$s -r 48000 -c 1 -b 16 "$out/sine1000_48k.flac" synth 0.5 sine 1000 vol 0.5
# 44.1 kHz MP3 (64 kbit/s): a 440 Hz sine at half scale, 0.5 s.
$s -r 44100 -c 1 -C 64 "$out/sine440_44k.mp3" synth 0.5 sine 440 vol 0.5
# 32 kHz stereo Ogg Vorbis: a 660 Hz sine at half scale in both channels, 0.5 s.
$s -r 32000 -c 2 "$out/sine660_32k_stereo.ogg" synth 0.5 sine 660 vol 0.5
