"""The denoiser runtime: the ONNX step graph driven by numpy, whole-signal and streaming.

Every path (whole signal, file, live chunks) runs the same streaming core, so they agree
sample for sample; `process()` is a stream fed everything at once.
"""
from __future__ import annotations

from functools import lru_cache
from math import gcd
from pathlib import Path

import numpy as np
import onnxruntime as ort

from . import runtime
from .errors import BadArgument, BadArgumentType, StreamaeError
from .resample import StreamResampler

DEFAULT_MODEL = "live"  # a name in runtime.DENOISERS, or a path
MAX_BLOCK_FRAMES = 128  # frames per onnxruntime call when a lot of audio is waiting: small enough that a
# call's tensors stay in cache (quality: 82x real time a whole file at 128, 65x at 2000)
MAX_CHANNELS = 64  # more is almost surely [samples, channels] (soundfile's layout) passed untransposed
MAX_MAGNITUDE = 1000.0  # float samples beyond this are broken, not loud (full scale is 1)
MIN_SAMPLE_RATE = 1000  # sample rates a stream accepts: telephone-band recordings (8 kHz) with room to
MAX_SAMPLE_RATE = 768000  # spare, up to the highest rate audio interfaces offer


def check_sample_rate(sample_rate: object, name: str = "sample_rate") -> int:
    """An int in [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE] (a whole-number float such as 44100.0 too),
    else a ValueError or TypeError naming the argument and the range, before anything is allocated."""
    accepted = f"an int in [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}] Hz"
    if isinstance(sample_rate, (bool, np.bool_)) or not isinstance(
        sample_rate, (int, np.integer, float, np.floating)
    ):
        raise BadArgumentType(f"{name} must be {accepted}, got {type(sample_rate).__name__} {sample_rate!r}")
    if isinstance(sample_rate, (float, np.floating)):
        if not np.isfinite(sample_rate) or not float(sample_rate).is_integer():
            raise BadArgument(f"{name} must be {accepted}, got {sample_rate!r}")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise BadArgument(f"{name} must be {accepted}, got {sample_rate!r}")
    return int(sample_rate)


def check_channels(channels: object) -> int:
    """An int in [1, MAX_CHANNELS], else a ValueError or TypeError saying so."""
    accepted = f"an int in [1, {MAX_CHANNELS}]"
    if isinstance(channels, (bool, np.bool_)) or not isinstance(channels, (int, np.integer)):
        raise BadArgumentType(f"channels must be {accepted}, got {type(channels).__name__} {channels!r}")
    if not 1 <= channels <= MAX_CHANNELS:
        raise BadArgument(f"channels must be {accepted}, got {channels!r}")
    return int(channels)


def step_graph_path(path: str | Path) -> Path:
    """`X.onnx` (whole-signal graph) -> `X.step.onnx` (streaming step graph) beside it."""
    path = Path(path)
    if path.suffix != ".onnx":
        raise StreamaeError("a denoiser model path ends in .onnx", path)
    if path.name.endswith(".step.onnx"):
        return path
    return path.with_name(path.name[: -len(".onnx")] + ".step.onnx")


class Denoiser:
    """A trained denoising autoencoder, run by onnxruntime.

    >>> d = Denoiser()                          # the shipped default model
    >>> y = d.process(x, sample_rate=44100)     # [samples] or [channels, samples]
    >>> s = d.stream(sample_rate=48000)         # chunk by chunk, fixed latency
    """

    def __init__(self, model: str | Path | None = None, threads: int = 1, device: str = "cpu",
                 atten_lim_db: float | None = None):
        """model: a shipped denoiser's name (`live`, the default, or `quality`) or an .onnx path;
        threads: onnxruntime's (0: its choice); atten_lim_db: keep the noise this many dB down
        (None: remove it)."""
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 0:
            raise (BadArgument if isinstance(threads, (int, np.integer)) else BadArgumentType)(
                f"threads must be an int >= 0 (0: onnxruntime's choice), got {threads!r}")
        if atten_lim_db is not None:
            if isinstance(atten_lim_db, bool) or not isinstance(atten_lim_db, (int, float, np.number)):
                raise BadArgumentType(f"atten_lim_db must be a number of dB or None, got {atten_lim_db!r}")
            if not np.isfinite(atten_lim_db):
                raise BadArgument(f"atten_lim_db must be a finite number of dB or None, got {atten_lim_db!r}")
        path = runtime.denoiser_path(DEFAULT_MODEL if model is None else model)
        self.path = path
        step = step_graph_path(path)
        if not step.exists() and not path.exists():  # name the model asked for, not its step graph
            raise StreamaeError("model file not found", path)
        if not step.exists():
            kind = runtime.metadata(runtime.session(path)).get("kind")
            raise StreamaeError(
                f"its streaming step graph {step.name} is missing beside it"
                if kind == "denoiser"
                else f"not a streamae denoiser (metadata streamae.kind is {kind!r})",
                path,
            )
        self.session = runtime.session(step, threads=threads, device=device)
        self.info = runtime.metadata(self.session)
        if self.info.get("kind") != "denoiser" or len(self.session.get_inputs()) < 2:
            raise StreamaeError(
                "not a streamae denoiser step graph (metadata streamae.kind, state inputs)", step
            )
        if len(self.session.get_inputs()[0].shape) != 1:
            raise StreamaeError("a step graph with a batch axis, from an older streamae: re-export it with "
                                "scripts/release/export_denoiser.py", step)
        config = self.info["config"]
        self.sample_rate: int = config["sample_rate"]
        self.hop: int = config["hop"]
        self.delay: int = int(self.info["delay"])  # step output lags its input by this much
        self._input_names = [i.name for i in self.session.get_inputs()]  # audio, then the states
        self._output_names = [o.name for o in self.session.get_outputs()]  # clean, then the states
        self._state_shapes = [i.shape for i in self.session.get_inputs()[1:]]
        self.dry_gain = 0.0 if atten_lim_db is None else 10.0 ** (-abs(atten_lim_db) / 20.0)

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency at the model's rate for any chunking: window - 1 samples."""
        return self.delay + self.hop - 1

    def initial_states(self, channels: int) -> list["_ChannelState"]:
        """Each channel's zero state: the step graph runs one channel per call."""
        return [_ChannelState(self.session, self._input_names, self._output_names, self._state_shapes)
                for _ in range(channels)]

    def run_step(
        self, audio: np.ndarray, states: list["_ChannelState"]
    ) -> tuple[np.ndarray, list["_ChannelState"]]:
        """audio [channels, T*hop] -> (clean [channels, T*hop] lagging `delay`, states), a call per channel.

        The step graph has no batch axis, so onnxruntime can fuse its MatMuls into 2-D Gemms."""
        clean = np.empty_like(audio)
        for channel, state in enumerate(states):
            state.step(audio[channel], clean[channel])
        return clean, states

    def stream(self, sample_rate: int | None = None, channels: int = 1) -> "DenoiserStream":
        """A fresh stateful stream for audio at `sample_rate` (default: the model's; else an int in
        [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]), `channels` (1 to MAX_CHANNELS) each cleaned on its own;
        its fixed delay, resampling included, is `latency_samples`."""
        return DenoiserStream(self, self.sample_rate if sample_rate is None else sample_rate, channels)

    def process(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Clean a whole signal, float32 [samples] or [channels, samples] at `sample_rate` (required:
        an int in [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]); same shape out, time-aligned.

        Impossible arguments raise ValueError or TypeError (StreamaeError too) naming the argument
        and what it accepts, before anything is allocated."""
        if sample_rate is None:
            raise BadArgumentType(f"sample_rate is required: the rate of `audio`, an int in "
                                  f"[{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}] Hz")
        check_sample_rate(sample_rate)
        x = np.asarray(audio)  # values are checked once, by the stream
        if not np.issubdtype(x.dtype, np.floating):
            raise BadArgumentType(f"audio must be float samples in [-1, 1], got dtype {x.dtype}")
        if x.ndim not in (1, 2) or x.shape[-1] == 0:
            raise BadArgument(f"expected audio of shape [samples] or [channels, samples], got {x.shape}")
        if x.ndim == 2 and x.shape[0] > MAX_CHANNELS:
            raise BadArgument(
                f"audio of shape {x.shape} would be {x.shape[0]} channels: pass [channels, samples] "
                "(soundfile reads [samples, channels]: use x.T)"
            )
        x2 = np.atleast_2d(x)
        s = self.stream(sample_rate, channels=x2.shape[0])
        out = np.concatenate([s.process(x2), np.atleast_2d(s.flush())], axis=-1)[:, s.latency_samples:]
        return out.reshape(x.shape)


class _ChannelState:
    """One channel's recurrent state, kept in onnxruntime's own buffers from call to call.

    Two sets of state buffers and two prebuilt bindings, one reading the first set and writing the
    second and one the other way round, swapped after each call: no state crosses into numpy and
    back. The audio goes in and out through two buffers bound once per call size (a live stream
    has one size), copied into and out of: rebinding on every call costs more than the copies.
    Together about a tenth of a small model's frame."""

    def __init__(self, session, input_names: list[str], output_names: list[str], shapes: list):
        self._session = session
        self._audio, self._clean = input_names[0], output_names[0]
        sets = [[ort.OrtValue.ortvalue_from_numpy(np.zeros(s, np.float32)) for s in shapes] for _ in range(2)]
        self._bindings = []
        for source, target in ((sets[0], sets[1]), (sets[1], sets[0])):
            binding = session.io_binding()
            for name, value in zip(input_names[1:], source):
                binding.bind_ortvalue_input(name, value)
            for name, value in zip(output_names[1:], target):
                binding.bind_ortvalue_output(name, value)
            self._bindings.append(binding)
        self._audio_in = self._clean_out = np.zeros(0, np.float32)

    def step(self, audio: np.ndarray, clean: np.ndarray) -> None:
        """Run whole hops of `audio` into `clean` (same shape, written in place)."""
        if audio.shape != self._audio_in.shape:
            self._audio_in, self._clean_out = np.empty_like(audio), np.empty_like(clean)
            audio_in = ort.OrtValue.ortvalue_from_numpy(self._audio_in)  # shares the numpy buffer
            clean_out = ort.OrtValue.ortvalue_from_numpy(self._clean_out)
            for binding in self._bindings:
                binding.bind_ortvalue_input(self._audio, audio_in)
                binding.bind_ortvalue_output(self._clean, clean_out)
        np.copyto(self._audio_in, audio)
        self._session.run_with_iobinding(self._bindings[0])
        np.copyto(clean, self._clean_out)
        self._bindings.reverse()


class _ModelCore:
    """Model-rate streaming: any number of samples in, every finished aligned sample out."""

    def __init__(self, denoiser: Denoiser, channels: int):
        self.d = denoiser
        self.channels = channels
        self.reset()

    def reset(self) -> None:
        self.states = self.d.initial_states(self.channels)
        self.pending = np.zeros((self.channels, 0), np.float32)  # input not yet a whole hop
        self.to_skip = self.d.delay  # leading output samples that precede time zero

    def push(self, x: np.ndarray) -> np.ndarray:
        if self.pending.shape[-1]:
            x = np.concatenate([self.pending, x], axis=-1)
        hop = self.d.hop
        usable = x.shape[-1] // hop * hop
        self.pending = x[:, usable:].copy()  # a copy: the caller may reuse its buffer (the live worker does)
        if not usable:  # a live chunk shorter than a hop: nothing to run yet
            return x[:, :0]
        block = MAX_BLOCK_FRAMES * hop
        outs = []
        for start in range(0, usable, block):
            clean, self.states = self.d.run_step(x[:, start:min(start + block, usable)], self.states)
            outs.append(clean)
        y = outs[0] if len(outs) == 1 else np.concatenate([x[:, :0], *outs], axis=-1)
        skip = min(self.to_skip, y.shape[-1])
        self.to_skip -= skip
        return y[:, skip:]


class DenoiserStream:
    """Chunk in, same-length chunk out: the cleaned signal delayed by `latency_samples`.

    Resampling to and from the model rate (`resample.StreamResampler`) happens inside; its
    delay is part of `latency_samples`, which is exact and fixed for the life of the stream.
    """

    def __init__(self, denoiser: Denoiser, sample_rate: int, channels: int = 1):
        self.denoiser = denoiser
        self.sample_rate = check_sample_rate(sample_rate)
        self.channels = check_channels(channels)
        self.latency_samples = _stream_latency(
            denoiser.sample_rate, self.sample_rate, denoiser.hop, denoiser.delay
        )
        self.reset()

    def reset(self) -> None:
        """Forget all audio: the next chunk starts a new signal (same latency)."""
        d, r, c = self.denoiser, self.sample_rate, self.channels
        self._core = _ModelCore(d, c)
        self._down = self._up = None
        if r != d.sample_rate:
            self._down, self._up = StreamResampler(r, d.sample_rate, c), StreamResampler(d.sample_rate, r, c)
        self._fifo = np.zeros((c, self.latency_samples), np.float32)
        self._dry = np.zeros((c, self.latency_samples), np.float32)  # input, delayed like the output

    @property
    def latency_ms(self) -> float:
        return 1000.0 * self.latency_samples / self.sample_rate

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """float32 [n] (mono) or [channels, n] -> the same shape."""
        x = _as_float32(chunk)
        x2 = x.reshape(1, -1) if x.ndim == 1 else x
        if x2.ndim != 2 or x2.shape[0] != self.channels:
            raise BadArgument(f"stream expects {self.channels} channel(s), got a chunk of shape {x.shape}")
        self._append(self._resample_out(self._core.push(self._resample_in(x2))))
        return self._mix_dry(self._pop(x2.shape[-1]), x2).reshape(x.shape)

    def flush(self) -> np.ndarray:
        """The last `latency_samples` of output (the input as if followed by silence); the
        stream then starts afresh."""
        out = self.process(np.zeros((self.channels, self.latency_samples), np.float32))
        self.reset()
        return out[0] if self.channels == 1 else out

    def _mix_dry(self, wet: np.ndarray, new_input: np.ndarray) -> np.ndarray:
        """--atten-lim-db: add back the input, delayed by exactly the latency, at `dry_gain`.

        Done at the stream's own rate, so the kept ambience keeps its full bandwidth."""
        gain = self.denoiser.dry_gain
        if not gain:
            return wet
        dry = np.concatenate([self._dry, new_input], axis=-1)
        self._dry = dry[:, wet.shape[-1]:]
        return wet + gain * (dry[:, : wet.shape[-1]] - wet)

    def _resample_in(self, x: np.ndarray) -> np.ndarray:
        return x if self._down is None else self._down.push(x)

    def _resample_out(self, y: np.ndarray) -> np.ndarray:
        return y if self._up is None else self._up.push(y)

    def _append(self, y: np.ndarray) -> None:
        if y.shape[-1]:
            self._fifo = np.concatenate([self._fifo, y], axis=-1)

    def _pop(self, n: int) -> np.ndarray:
        if self._fifo.shape[-1] < n:  # cannot happen if _stream_latency is right; never return short
            raise RuntimeError(f"stream underrun: {self._fifo.shape[-1]} < {n} samples ready")
        out, self._fifo = self._fifo[:, :n], self._fifo[:, n:]
        return out


@lru_cache(maxsize=32)
def _stream_latency(model_rate: int, rate: int, hop: int, delay: int) -> int:
    """The largest lag of output behind input, over every chunking, in samples at `rate`.

    Every stage's output count is a function of its input count alone (resamplers:
    `StreamResampler.available`; the model: whole hops, minus its delay), so the lag after
    n input samples is exact arithmetic; it repeats with the rate ratio's period, and two
    periods after the start-up transient cover every case.
    """
    if rate == model_rate:
        return delay + hop - 1
    down, up = StreamResampler(rate, model_rate), StreamResampler(model_rate, rate)
    period = down.down * hop // gcd(hop, down.up)  # input samples after which every stage repeats
    transient = 4 * (down.lookahead + -(-(delay + 2 * hop + up.lookahead) * rate // model_rate))
    n = np.arange(transient + 2 * period, dtype=np.int64)
    model_in = down.available(n)
    model_out = np.maximum(0, model_in // hop * hop - delay)
    return int((n - up.available(model_out)).max())


def _as_float32(audio: np.ndarray) -> np.ndarray:
    """Float audio as contiguous float32, NaN and infinities set to 0 and absurd magnitudes clipped
    to +-MAX_MAGNITUDE: one bad sample must not poison the stream's state (and so every later
    output) for the rest of the stream. Quietly: no numpy RuntimeWarning on the way."""
    x = np.asarray(audio)
    if x.dtype.kind != "f":
        raise BadArgumentType(f"expected float audio in [-1, 1], got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if _within_magnitude(x):
        return x
    return np.clip(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), -MAX_MAGNITUDE, MAX_MAGNITUDE)


def _within_magnitude(x: np.ndarray) -> bool:
    """No NaN, infinity or sample beyond +-MAX_MAGNITUDE: two reductions, no mask, no warning
    (a NaN fails both comparisons). This runs on every live chunk."""
    return x.size == 0 or bool(x.min() >= -MAX_MAGNITUDE and x.max() <= MAX_MAGNITUDE)


def count_bad_samples(x: np.ndarray) -> int:
    """How many samples `_as_float32` will zero (NaN, infinities): for a warning."""
    if _within_magnitude(x):
        return 0
    return int(np.count_nonzero(~np.isfinite(x)))
