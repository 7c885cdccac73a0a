"""Model hyper-parameters: plain data, importable without torch (the command layer reads its
defaults when a training run starts)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..audio import SAMPLE_RATE

STOI_BANDS = 15  # one-third-octave bands from 150 Hz: STOI looks at nothing above 4.3 kHz
LOW_BAND_HZ = (
    4000.0  # the phase input and the deep filter work on the bins up to here, where speech has its harmonics
)


@dataclass(frozen=True)
class DenoiserConfig:
    sample_rate: int = SAMPLE_RATE
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
    # Phase input (spectral front end only): the mask network also sees how each bin below
    # LOW_BAND_HZ advanced in phase since the last frame, which tells a steady harmonic from noise
    # where magnitudes cannot. Its weights start at zero: a model grown this way computes the same.
    phase_input: bool = False
    # Deep filter (implies the phase input): besides the mask, a complex filter of this many taps
    # over the current and past frames of the same bins, so the output can use phase, which a mask
    # cannot (after DeepFilterNet, Schroeter et al. 2022). Its taps start at zero too. 0: none.
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
        if not self.phase_input:
            unused.add("phase_input")
        return {k: v for k, v in self.to_dict().items() if k not in unused}

    @classmethod
    def from_dict(cls, d: dict) -> "DenoiserConfig":
        d = dict(d)
        d["dilations"] = tuple(d["dilations"])
        return cls(**d)  # fields added later keep their defaults for older models

    def uses_phase(self) -> bool:
        return self.phase_input or self.deep_filter > 0

    def low_band_bins(self) -> int:
        """How many of the spectral front end's bins, from DC up, the phase input and deep filter see."""
        return int(LOW_BAND_HZ * self.analysis_window / self.sample_rate) + 1

    def past_frames(self) -> int:
        """Frames of the low band carried between steps: one for the phase advance, taps - 1 for the
        filter."""
        return max(self.deep_filter - 1, 1) if self.uses_phase() else 0


@dataclass(frozen=True)
class GTCRNConfig:
    """GTCRN's shape (Rong et al., ICASSP 2024): a 512-point STFT whose 257 bins are merged into 129
    (65 low bins as they are, 64 ERB bands above), a small conv encoder/decoder over frequency,
    grouped temporal conv blocks with temporal attention, and two dual-path grouped GRUs; the output
    is a complex ratio mask. `window` is the synthesis window: 512 with `hop` 256 is the published
    model (sqrt-Hann analysis and synthesis, 32 ms latency); a shorter one makes the analysis window
    asymmetric (DenoiserConfig's trick), so latency is window - 1 with the same 257 bins."""
    family: str = "gtcrn"
    sample_rate: int = 16000
    fft: int = 512  # analysis window and FFT length
    window: int = 512  # synthesis window: latency window - 1
    hop: int = 256
    channels: int = 16
    low_bins: int = 65  # bins kept as they are; the rest are merged into erb_bands
    erb_bands: int = 64
    dilations: tuple[int, ...] = (1, 2, 5)  # the temporal conv blocks', in frames
    rnn_width: int = 33  # frequency points after the encoder's two stride-2 convs

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dilations"] = list(self.dilations)
        return d

    def architecture(self) -> dict:
        return self.to_dict()

    @classmethod
    def from_dict(cls, d: dict) -> "GTCRNConfig":
        d = dict(d)
        d["dilations"] = tuple(d["dilations"])
        return cls(**d)


def config_from_dict(d: dict) -> "DenoiserConfig | GTCRNConfig":
    """A model's config, of the family its dict names (DenoiserConfig's dicts name none)."""
    return GTCRNConfig.from_dict(d) if d.get("family") == "gtcrn" else DenoiserConfig.from_dict(d)
