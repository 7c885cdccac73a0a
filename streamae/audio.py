"""Audio file I/O and resampling (soundfile + soxr); arrays are float32 [channels, samples]."""
from __future__ import annotations

import errno
import fnmatch
import os
import re
import signal
import stat
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

from .errors import StreamaeError

SAMPLE_RATE = 16000  # every model here runs at it, and every quality score is measured at it
RESAMPLE_QUALITY = "HQ"
FILE_BLOCK_SECONDS = 10.0  # audio read from a file at a time: memory stays flat for long recordings
_PLAIN_SUBTYPES = ("PCM", "FLOAT", "DOUBLE", "ULAW", "ALAW")  # sample codings any container can hold
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif")
# s3://b/k, gs://b/k, also as pathlib spells them (s3:/b/k); a drive letter (C:/) is not one
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/+(.*)$", re.S)


def os_reason(e: OSError) -> str:
    """An OSError in a user's words, its cause first: 'disk full', 'read-only file system', ..."""
    words = {
        errno.ENOSPC: "disk full (no space left on device)",
        errno.EDQUOT: "disk quota exceeded",
        errno.EROFS: "read-only file system",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.ENOENT: "no such file or folder",
        errno.ENOTDIR: "a part of the path is not a folder",
        errno.EISDIR: "is a directory",
        errno.EIO: "input/output error (a failing disk or a lost network drive?)",
        errno.ENAMETOOLONG: "file name too long",
        errno.EFBIG: "file too large for this file system",
    }
    return words.get(e.errno, (e.strerror or str(e) or type(e).__name__).lower())


def os_error(e: OSError, path: str | Path | None = None) -> StreamaeError:
    """A StreamaeError naming the path (`e.filename` unless given) and the cause."""
    return StreamaeError(os_reason(e), path if path is not None else e.filename)


@contextmanager
def naming(path: str | Path) -> Iterator[None]:
    """Give a StreamaeError raised inside without a path (a rate the model cannot use, say) this
    file's path, so the message names the file it is about."""
    try:
        yield
    except StreamaeError as e:
        if e.path is not None:
            raise
        raise StreamaeError(str(e), path) from None


def refuse_url(path: str | Path) -> None:
    """An object store's URL (s3://, gs://, ...) is one clear error, not a missing file or, worse,
    a local folder named 's3:': files are written to a temporary name and renamed into place when
    complete, and finished ones are skipped by looking at the folder, which needs a file system.
    A bucket mounted as one (s3fs, gcsfuse) is given by its mounted path."""
    url = _URL.match(str(path))
    if url:
        raise StreamaeError(f"{url[1]}://{url[2]}: object stores are not supported; mount the bucket as a "
                            "file system (s3fs, gcsfuse) and give its mounted path")


def open_input(path: str | Path, allow_empty: bool = False) -> sf.SoundFile:
    """Open an audio file for block reading, turning every failure into one clear message.

    A valid file with no samples is refused unless `allow_empty`."""
    refuse_url(path)
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise StreamaeError("no such file", path) from None
    except OSError as e:
        raise os_error(e, path) from None
    if stat.S_ISDIR(st.st_mode):
        raise StreamaeError("is a directory, expected an audio file", path)
    if not stat.S_ISREG(st.st_mode):
        raise StreamaeError("not a regular file (a pipe or a device?): save the audio to a file first", path)
    if st.st_size == 0:
        raise StreamaeError("file is empty", path)
    try:
        with open(path, "rb"):  # the OS's reason (permission denied), which libsndfile hides
            pass
    except OSError as e:
        raise os_error(e, path) from None
    try:
        f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise StreamaeError(f"cannot read audio ({_reason(e)})", path) from None
    if f.frames == 0 and not allow_empty:
        f.close()
        raise StreamaeError("file holds no audio samples", path)
    return f


def header_frames(f: sf.SoundFile) -> int:
    """The frames a file's header promises: more than `f.frames` when the file was cut short
    (libsndfile counts what is there and notes the header's figure in its log: WAV and the like)."""
    log = f.extra_info
    data = re.search(r"^data\s*:\s*(\d+)\s*\(should be \d+\)", log, re.M)
    align = re.search(r"Block Align\s*:\s*(\d+)", log)
    if data and align and int(align.group(1)) > 0:
        return max(f.frames, int(data.group(1)) // int(align.group(1)))
    return f.frames


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
    if like is not None and like.subtype and sf.check_format(fmt, like.subtype) and (
        like.format == fmt or like.subtype.startswith(_PLAIN_SUBTYPES)
    ):  # a codec (MP3 in a WAV, say) libsndfile may list but cannot write: the format's default
        return fmt, like.subtype
    return fmt, sf.default_subtype(fmt)


def _open_temp(path: Path):
    """The temporary file's handle (tests swap in one that fails like a full disk)."""
    return open(path, "w+b", buffering=1 << 20)


class _Sink:
    """The file libsndfile writes through (its virtual I/O): every OSError is kept, with its errno,
    instead of libsndfile's 'System error.', and turns every later call into a no-op."""

    def __init__(self, path: Path):
        self.file = _open_temp(path)
        self.error: OSError | None = None

    def _guard(self, op, *args):
        if self.error is None:
            try:
                return op(*args)
            except OSError as e:
                self.error = e
        return None

    def write(self, data) -> int:
        return len(data) if self._guard(self.file.write, data) is not None else 0

    def seek(self, offset: int, whence: int = 0) -> int:
        pos = self._guard(self.file.seek, offset, whence)
        return pos if pos is not None else -1

    def tell(self) -> int:
        pos = self._guard(self.file.tell)
        return pos if pos is not None else -1

    def read(self, n: int = -1) -> bytes:
        return self._guard(self.file.read, n) or b""

    def close(self) -> None:
        if self.file.closed:
            return
        self._guard(self.file.flush)
        try:
            self.file.close()
        except OSError as e:
            self.error = self.error or e


def remove_stale_partials(target: str | Path) -> None:
    """Temporary files a killed run left beside `target` (their writer's PID is gone)."""
    target = Path(target)
    _remove_stale(target.parent, f".{target.name}.partial-*")


def remove_stale_partials_in(folder: str | Path) -> None:
    """Every temporary file a killed run left in `folder` (one listing for a whole batch's folder)."""
    _remove_stale(Path(folder), ".*.partial-*")


def _remove_stale(folder: Path, pattern: str) -> None:
    try:
        for tmp in folder.glob(pattern):
            pid = tmp.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                tmp.unlink(missing_ok=True)
    except OSError:  # a read-only or unreadable folder: the write itself will say why
        pass


def partial_path(target: str | Path, pid: int | None = None) -> Path:
    """Where `pid` (default: this process) writes `target` until it is complete."""
    target = Path(target)
    return target.with_name(f".{target.name}.partial-{os.getpid() if pid is None else pid}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_DEFERRED = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM while libsndfile runs: it calls back into Python (the _Sink), and
    an exception a signal handler raised inside a callback would be swallowed by cffi, with a
    traceback. A signal that comes meanwhile is recorded and handled (KeyboardInterrupt and the
    like) the moment this block ends. Python runs signal handlers in the main thread only; in
    others there is nothing to do. (pthread_sigmask would not do: another thread takes the signal.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in _DEFERRED}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        if caught:
            handler = previous[caught[0]]
            if callable(handler):
                handler(caught[0], None)
            elif handler in (signal.SIG_DFL, None):
                os.kill(os.getpid(), caught[0])


class AtomicAudioWriter:
    """Writes to a hidden temporary file beside `path` and renames it on success only.

    Whatever goes wrong (a full disk, a read-only or vanished folder, Ctrl-C, SIGTERM), `path` is
    either untouched or complete, never half-written, the temporary file is removed, and the
    error is a StreamaeError naming `path` and the OS's reason. Temporary files that killed
    runs left beside `path` are removed first.
    """

    def __init__(self, path: str | Path, sample_rate: int, channels: int, fmt: str, subtype: str,
                 clear_stale: bool = True):
        """clear_stale=False: the caller cleared the folder already (a batch, once per folder)."""
        self.path = Path(path)
        try:
            if not self.path.parent.is_dir():
                raise StreamaeError("output folder does not exist", self.path.parent)
        except OSError as e:
            raise os_error(e, self.path.parent) from None
        if clear_stale:
            remove_stale_partials(self.path)
        self._tmp = partial_path(self.path)
        self._sink: _Sink | None = None
        self._file: sf.SoundFile | None = None
        try:
            with _signals_deferred():
                self._sink = _Sink(self._tmp)
                self._file = sf.SoundFile(self._sink, "w", samplerate=sample_rate, channels=channels,
                                          format=fmt, subtype=subtype)
        except OSError as e:  # creating the temporary file
            self._discard()
            raise os_error(e, self.path) from None
        except Exception as e:  # libsndfile's errors, or its assertions after a failed write
            self._discard()
            if self._sink is not None and self._sink.error is not None:
                raise os_error(self._sink.error, self.path) from None
            raise StreamaeError(
                f"cannot write {fmt}/{subtype} at {sample_rate} Hz ({_reason(e)})", self.path
            ) from None
        except BaseException:  # Ctrl-C, SIGTERM: no temporary file left
            self._discard()
            raise

    def write(self, audio: np.ndarray) -> None:
        """audio: float32 [channels, n]."""
        frames = np.clip(audio.T, -1.0, 1.0) if self._file.subtype.startswith("PCM") else audio.T
        try:
            with _signals_deferred():
                self._file.write(frames)
        except Exception as e:
            if self._sink.error is None:
                raise StreamaeError(f"cannot write audio ({_reason(e)})", self.path) from None
        if self._sink.error is not None:
            raise os_error(self._sink.error, self.path)

    def commit(self) -> None:
        """Finish the file and publish it under its name."""
        try:
            with _signals_deferred():
                self._file.close()
                self._sink.close()
        except Exception as e:
            if self._sink.error is None:
                self._discard()
                raise StreamaeError(f"cannot finish the file ({_reason(e)})", self.path) from None
        except BaseException:
            self._discard()
            raise
        if self._sink.error is not None:
            self._discard()
            raise os_error(self._sink.error, self.path)
        try:
            os.replace(self._tmp, self.path)
        except OSError as e:
            self._discard()
            raise os_error(e, self.path) from None
        except BaseException:
            self._discard()
            raise

    def discard(self) -> None:
        """Drop the temporary file; `path` stays as it was."""
        self._discard()

    def _discard(self) -> None:
        with _signals_deferred():  # a second Ctrl-C must not leave the file behind either
            try:
                if self._file is not None and not self._file.closed:
                    self._file.close()
            except Exception:  # closing after a failed write: the file is dropped anyway
                pass
            if self._sink is not None:
                self._sink.close()
            try:
                self._tmp.unlink(missing_ok=True)
            except OSError:  # a read-only folder: then nothing was written there either
                pass

    def __enter__(self) -> "AtomicAudioWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self._discard()


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
        kind = path_kind(p)
        if kind == "folder":
            files += find_audio(p)
        elif kind == "file":
            files.append(p)
        else:
            raise StreamaeError("no such file or folder", p)
    if not files:
        raise StreamaeError(f"no audio files under {', '.join(map(str, paths))}")
    return files


def path_kind(path: str | Path) -> str | None:
    """'folder', 'file' (anything else that exists) or None; a path the user may not look at is
    a StreamaeError saying so (pathlib's is_dir() raises PermissionError)."""
    refuse_url(path)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise os_error(e, path) from None
    return "folder" if stat.S_ISDIR(st.st_mode) else "file"


def find_audio(folder: str | Path, recursive: bool = True, pattern: str | None = None,
               skip: str | Path | None = None) -> list[Path]:
    """The audio files (or, with `pattern`, the files whose name matches it) in `folder` and, if
    `recursive`, its sub-folders, sorted. Hidden files and folders (._x.wav, .Trash) are left out,
    and so is the folder `skip` (an output folder inside the input, say)."""
    skip = Path(skip).resolve() if skip is not None else None
    found = []
    if not os.access(folder, os.R_OK | os.X_OK):
        raise StreamaeError("permission denied (cannot list this folder)", folder)

    def fail(e: OSError) -> None:
        raise os_error(e)

    for root, dirs, files in os.walk(folder, onerror=fail):
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
    refuse_url(target)
    target = Path(target)
    if target.is_dir():
        raise StreamaeError("is a directory, expected an output file path", target)
    if target.exists() and not overwrite:
        raise StreamaeError("is the input file; pass --overwrite to replace it" if same_file(source, target)
                            else "already exists; pass --overwrite to replace it", target)
