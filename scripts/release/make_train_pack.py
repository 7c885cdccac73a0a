"""Pack training audio into a few compact files, to carry it to a training machine.

Each group of sources becomes one long 16 kHz OGG/Vorbis file (Vorbis keeps the waveform:
about 28 dB waveform SNR at quality 0.2, where Opus resamples internally and scores 14 dB).
`streamae train denoiser` reads the pack like any other audio folder.

The current pack (59.8 MiB, under the device's 64 MiB carry limit with .whl/), one group
per run because each gets its own quality. dev_speech.ogg and dev_noise.ogg (1.7 and 1.4 min
excerpts of speech/dev and noise/dev, for the training's dev check) and rir/ (a copy of
../shared/data/rir) are kept from the first pack, so dev checks stay comparable across runs.

    python scripts/release/make_train_pack.py --out .pack --quality 0.3 \
        --group speech ../shared/data/speech/train data/extra/speech/speechocean762:every=8
    python scripts/release/make_train_pack.py --out .pack --quality 0.5 \
        --group noise ../shared/data/noise/train data/extra/noise
    python scripts/release/make_train_pack.py --out .pack --quality 0.8 \
        --group noise_nc data/extra/noise-nc/urbansound8k:every=3

`noise_nc` is UrbanSound8K (CC BY-NC 3.0: a model trained with it is for non-commercial use),
classes 0, 1, 2, 4, 5, 7, 8 only (no dog bark, gun shot or street music): 2,179 clips,
extracted from the `fetch`ed snapshot of Alejandro-131004/AC-II with

    python scripts/release/extract_extra_audio.py --git /work/.mirror/Alejandro-131004+AC-II/repo \
        --commit 8f8b8f2 --out data/extra/noise-nc/urbansound8k \
        --pattern 'UrbanSound8K/audio/fold*/[0-9]*-[0124578]-[0-9]*-[0-9]*.wav'
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf

from streamae.audio import SAMPLE_RATE as RATE
from streamae.audio import audio_files, read_audio, resample


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--group", nargs="+", action="append", required=True, metavar=("NAME", "SOURCE"),
                   help="a group name then sources (files/folders; SOURCE:every=N keeps one file in N)")
    p.add_argument("--quality", type=float, default=0.2, help="Vorbis compression level 0 (best) .. 1")
    p.add_argument("--gap", type=float, default=0.1, help="seconds of silence between files")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, *sources in args.group:
        clips = []
        for source in sources:
            path, _, opt = source.partition(":every=")
            for f in audio_files([path])[:: int(opt or 1)]:
                audio, rate = read_audio(f)
                clips.append(np.pad(resample(audio[0], rate, RATE), (0, int(args.gap * RATE))))
        joined = np.concatenate(clips)
        joined /= max(1.0, float(np.abs(joined).max()) / 0.99)
        target = out / f"{name}.ogg"
        # libsndfile's Vorbis encoder crashes on very large single writes: feed it in blocks
        with sf.SoundFile(
            target, "w", RATE, 1, format="OGG", subtype="VORBIS", compression_level=args.quality
        ) as f:
            for start in range(0, len(joined), RATE):
                f.write(joined[start:start + RATE])
        print(
            f"{target}: {len(clips)} files, {len(joined) / RATE / 60:.1f} min, "
            f"{target.stat().st_size / 2**20:.1f} MiB"
        )


if __name__ == "__main__":
    main()
