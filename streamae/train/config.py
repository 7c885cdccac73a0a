"""Model hyper-parameters: plain data, importable without torch (the CLI parser uses it)."""
from __future__ import annotations

from dataclasses import asdict, dataclass


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
        return {k: v for k, v in self.to_dict().items() if k not in unused}

    @classmethod
    def from_dict(cls, d: dict) -> "DenoiserConfig":
        d = dict(d)
        d["dilations"] = tuple(d["dilations"])
        return cls(**d)  # fields added later keep their defaults for older models
