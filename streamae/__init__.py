"""streamae: real-time audio denoising and machine-sound anomaly alerts.

The runtime (this package, minus `streamae.train`) needs numpy, onnxruntime, soundfile
and soxr only: it never imports torch.
"""
from .denoiser import Denoiser, DenoiserStream
from .errors import StreamaeError

__version__ = "0.1.0"
__all__ = ["Denoiser", "DenoiserStream", "StreamaeError", "__version__"]
