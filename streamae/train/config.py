"""Model hyper-parameters: plain data, importable without torch (the CLI parser uses it)."""
from __future__ import annotations

from dataclasses import asdict, dataclass


DEEP_FILTER_HZ = 4000.0  # the deep filter works on the bins up to here, where speech has its harmonics


@dataclass(frozen=True)
class DenoiserConfig:
    sample_rate: int = 16000
    window: int = 160  # synthesis window W (samples; also the learned analysis window); latency W - 1
    hop: int = 80  # H
    code: int = 256  # learned filterbank size (the spectral front end's code is its bins instead)
    bottleneck: int = 64
    hidden: int = 128
    kernel: int = 3
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)  # 2.5 s receptive field
    # Spectral front end: an asymmetric STFT whose analysis window (samples) is longer than the
    # synthesis `window`, reaching only into the past. The mask then works on fine frequency
    # bins (pitch harmonics) while latency stays window - 1. 0: the learned filterbank (v1).
    analysis_window: int = 0
    # Recurrent mask network: this many GRU layers of width `hidden` replace the dilated blocks
    # (whose `kernel` and `dilations` are then unused); its state is one vector per layer, where a
    # dilated block carries its whole receptive field. 0: the dilated conv blocks (v1).
    recurrent: int = 0
    # Deep filter (spectral front end only): besides the mask, a complex filter of this many taps
    # over the current and past frames of each bin below DEEP_FILTER_HZ, fed the phase advance of
    # those bins from frame to frame, so the network can use phase, which a mask cannot (after
    # DeepFilterNet, Schroeter et al. 2022). Its taps start at zero: a mask-only model grown this way
    # computes the same as before. 0: the mask alone (v1, v2).
    deep_filter: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dilations"] = list(self.dilations)
        return d

    def architecture(self) -> dict:
        """to_dict() without the keys this shape leaves unused: the spectral front end has no
        learned code width, and GRU layers replace the dilated blocks' kernel and dilations."""
        unused = set()
        if self.analysis_window > self.window:
            unused.add("code")
        if self.recurrent:
            unused |= {"kernel", "dilations"}
        if not self.deep_filter:
            unused.add("deep_filter")
        return {k: v for k, v in self.to_dict().items() if k not in unused}

    @classmethod
    def from_dict(cls, d: dict) -> "DenoiserConfig":
        d = dict(d)
        d["dilations"] = tuple(d["dilations"])
        return cls(**d)  # fields added later keep their defaults for older models

    def deep_filter_bins(self) -> int:
        """How many of the spectral front end's bins, from DC up, the deep filter works on."""
        return int(DEEP_FILTER_HZ * self.analysis_window / self.sample_rate) + 1
