"""Audio file I/O and resampling (soundfile + soxr); arrays are float32 [channels, samples]."""
from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

from .errors import StreamaeError

SAMPLE_RATE = 16000  # every model here runs at it, and every quality score is measured at it
RESAMPLE_QUALITY = "HQ"
FILE_BLOCK_SECONDS = 10.0  # audio read from a file at a time: memory stays flat for long recordings
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif")


def open_input(path: str | Path) -> sf.SoundFile:
    """Open an audio file for block reading, turning every failure into one clear message."""
    path = Path(path)
    if not path.exists():
        raise StreamaeError("no such file", path)
    if path.is_dir():
        raise StreamaeError("is a directory, expected an audio file", path)
    if path.stat().st_size == 0:
        raise StreamaeError("file is empty", path)
    try:
        f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise StreamaeError(f"cannot read audio ({_reason(e)})", path) from None
    if f.frames == 0:
        f.close()
        raise StreamaeError("file holds no audio samples", path)
    return f


def read_blocks(f: sf.SoundFile, block: int | None = None) -> Iterator[np.ndarray]:
    """Yield float32 [channels, n] blocks of `block` frames (default FILE_BLOCK_SECONDS' worth);
    a decode error mid-file becomes a StreamaeError."""
    block = block or int(FILE_BLOCK_SECONDS * f.samplerate)
    while True:
        try:
            data = f.read(block, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise StreamaeError(f"cannot decode audio ({_reason(e)})", f.name) from None
        if len(data) == 0:
            return
        yield np.ascontiguousarray(data.T)


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Whole file -> (float32 [channels, samples], sample_rate)."""
    with open_input(path) as f:
        blocks = list(read_blocks(f, 1 << 20))
        return np.concatenate(blocks, axis=1), f.samplerate


def read_first_channel(path: str | Path, rate: int) -> np.ndarray:
    """A whole file's first channel at `rate`, float32: the speech and noise corpora's unit."""
    audio, file_rate = read_audio(path)
    return resample(audio[0], file_rate, rate).astype(np.float32)


def output_format(path: str | Path, like: sf.SoundFile | None = None) -> tuple[str, str]:
    """(format, subtype) implied by `path`'s extension, keeping `like`'s subtype if allowed."""
    ext = Path(path).suffix.lower().lstrip(".")
    formats = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "oga": "OGG", "opus": "OGG", "mp3": "MP3",
               "aiff": "AIFF", "aif": "AIFF", "au": "AU", "caf": "CAF", "w64": "W64"}
    if ext not in formats:
        raise StreamaeError(
            f"unknown output format '.{ext}' (use one of: {', '.join(sorted(formats))})", path
        )
    fmt = formats[ext]
    if ext == "opus":
        return fmt, "OPUS"
    if like is not None and like.subtype and sf.check_format(fmt, like.subtype):
        return fmt, like.subtype
    return fmt, sf.default_subtype(fmt)


class AtomicAudioWriter:
    """Writes to a hidden temporary file beside `path` and renames it on success only.

    Whatever goes wrong, `path` is either untouched or complete: never half-written.
    """

    def __init__(self, path: str | Path, sample_rate: int, channels: int, fmt: str, subtype: str):
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise StreamaeError("output folder does not exist", self.path.parent)
        self._tmp = self.path.with_name(f".{self.path.name}.partial-{os.getpid()}")
        try:
            self._file = sf.SoundFile(str(self._tmp), "w", samplerate=sample_rate, channels=channels,
                                      format=fmt, subtype=subtype)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
            self._tmp.unlink(missing_ok=True)
            raise StreamaeError(
                f"cannot write {fmt}/{subtype} at {sample_rate} Hz ({_reason(e)})", self.path
            ) from None

    def write(self, audio: np.ndarray) -> None:
        """audio: float32 [channels, n]."""
        self._file.write(np.clip(audio.T, -1.0, 1.0) if self._file.subtype.startswith("PCM") else audio.T)

    def __enter__(self) -> "AtomicAudioWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._file.close()
        if exc_type is None:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int, subtype: str | None = None) -> None:
    audio = np.atleast_2d(audio)
    fmt, default = output_format(path)
    with AtomicAudioWriter(path, sample_rate, audio.shape[0], fmt, subtype or default) as w:
        w.write(audio)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """float32 [..., samples] at from_rate -> same at to_rate (soxr, linear phase)."""
    if from_rate == to_rate:
        return audio
    x = np.atleast_2d(audio)
    y = soxr.resample(x.T, from_rate, to_rate, quality=RESAMPLE_QUALITY).T
    return np.ascontiguousarray(y.reshape(audio.shape[:-1] + y.shape[-1:]), dtype=np.float32)


def _reason(e: Exception) -> str:
    text = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
    return text.split(": ", 1)[-1] if "Error opening" in text else text


def audio_files(paths: list[str | Path]) -> list[Path]:
    """Files named directly plus the audio files under named folders (sorted, hidden ones left
    out); none is an error."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += find_audio(p)
        elif p.is_file():
            files.append(p)
        else:
            raise StreamaeError("no such file or folder", p)
    if not files:
        raise StreamaeError(f"no audio files under {', '.join(map(str, paths))}")
    return files


def find_audio(folder: str | Path, recursive: bool = True, pattern: str | None = None,
               skip: str | Path | None = None) -> list[Path]:
    """The audio files (or, with `pattern`, the files whose name matches it) in `folder` and, if
    `recursive`, its sub-folders, sorted. Hidden files and folders (._x.wav, .Trash) are left out,
    and so is the folder `skip` (an output folder inside the input, say)."""
    skip = Path(skip).resolve() if skip is not None else None
    found = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        if skip is not None and here.resolve() == skip:
            dirs.clear()
            continue
        dirs[:] = sorted(d for d in dirs if recursive and not d.startswith("."))
        found += [
            here / name
            for name in files
            if not name.startswith(".")
            and (fnmatch.fnmatch(name, pattern) if pattern else Path(name).suffix.lower() in AUDIO_SUFFIXES)
        ]
    return sorted(found)


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether both paths exist and are the same file (a link, another spelling)."""
    return Path(a).exists() and Path(b).exists() and os.path.samefile(a, b)


def check_output(source: str | Path, target: str | Path, overwrite: bool) -> None:
    """Refuse to write over a folder, or over an existing file (the input above all) unless `overwrite`."""
    target = Path(target)
    if target.is_dir():
        raise StreamaeError("is a directory, expected an output file path", target)
    if target.exists() and not overwrite:
        raise StreamaeError("is the input file; pass --overwrite to replace it" if same_file(source, target)
                            else "already exists; pass --overwrite to replace it", target)
