"""Model hyper-parameters: plain data, importable without torch (the CLI parser uses it)."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DenoiserConfig:
    sample_rate: int = 16000
    window: int = 160  # analysis window W (samples); latency is W - 1
    hop: int = 80  # H
    code: int = 256  # code channels (filterbank size)
    bottleneck: int = 64
    hidden: int = 128
    kernel: int = 3
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)  # 2.5 s receptive field
    # Optional look-back spectrum: a longer window (samples) ending where each frame ends, so
    # the mask sees fine frequency detail (harmonics) at no cost in latency. 0: off (v1).
    context_window: int = 0
    context_bins: int = 128  # lowest bins kept (at 512 samples, 128 bins reach 4 kHz)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dilations"] = list(self.dilations)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DenoiserConfig":
        d = dict(d)
        d["dilations"] = tuple(d["dilations"])
        return cls(**d)  # fields added later keep their defaults for older models
