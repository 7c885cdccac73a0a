"""Other people's denoisers, run as their authors run them, for side-by-side benchmarks and to
prove a port of their weights (numpy + onnxruntime; the models are not shipped here)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from . import runtime


class GTCRNReference:
    """GTCRN's streaming ONNX (`gtcrn_simple.onnx`, one 512-point STFT frame per call with its
    caches), fed 10 ms chunks: every 256 samples, the sqrt-Hann-windowed rfft of the last 512
    samples in, the enhanced frame out, inverse rfft, windowed again and overlap-added. Its output
    lags its input by 256 samples (one hop), like a causal STFT's."""

    name, rate, hop, fft = "GTCRN (ONNX, 16 kHz)", 16000, 256, 512

    def __init__(self, path: str | Path):
        self.session = runtime.session(path, threads=1)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.cache_shapes = [i.shape for i in self.session.get_inputs()[1:]]
        self.window = np.sqrt(np.hanning(self.fft + 1)[:-1]).astype(np.float32)  # periodic sqrt-Hann

    def run(self, x: np.ndarray, chunk: int = 160) -> tuple[np.ndarray, float]:
        """-> (output, same length as x, lagging it by `hop`; CPU seconds spent)."""
        caches = [np.zeros(s, np.float32) for s in self.cache_shapes]
        frame, overlap = np.zeros(self.fft, np.float32), np.zeros(self.fft - self.hop, np.float32)
        pending, outs = np.zeros(0, np.float32), []
        t = time.process_time()
        for i in range(0, len(x), chunk):
            pending = np.concatenate([pending, x[i:i + chunk]])
            while len(pending) >= self.hop:
                frame = np.concatenate([frame[self.hop:], pending[:self.hop]])
                pending = pending[self.hop:]
                spec = np.fft.rfft(frame * self.window)
                mix = np.stack([spec.real, spec.imag], axis=-1).astype(np.float32)[None, :, None, :]
                enh, *caches = self.session.run(None, dict(zip(self.inputs, (mix, *caches))))
                out = np.fft.irfft(enh[0, :, 0, 0] + 1j * enh[0, :, 0, 1], self.fft) * self.window
                out[: len(overlap)] += overlap
                outs.append(out[: self.hop].astype(np.float32))
                overlap = out[self.hop:]
        y = np.concatenate(outs) if outs else np.zeros(0, np.float32)
        return np.pad(y, (0, len(x) - len(y))), time.process_time() - t
