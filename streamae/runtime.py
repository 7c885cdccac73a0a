"""ONNX Runtime sessions and model metadata: the one place that knows about providers."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import onnxruntime as ort

from .errors import StreamaeError

MODELS_ENV = "STREAMAE_MODELS"
# The shipped denoisers by name: `live` keeps latency at 10 ms for calls and streaming, `quality`
# takes 32 ms for the better score (files, where latency does not matter).
DENOISERS = {"live": "denoiser-v2.onnx", "quality": "denoiser-v3-quality.onnx"}


def models_dir() -> Path:
    """Shipped models: $STREAMAE_MODELS, the repo's models/ (source checkout), or the install's share/."""
    candidates = [os.environ.get(MODELS_ENV), Path(__file__).resolve().parent.parent / "models",
                  Path(sys.prefix) / "share" / "streamae" / "models"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    raise StreamaeError(f"no shipped models found; set {MODELS_ENV} or pass a model path")


def denoiser_path(model: str | Path) -> Path:
    """A shipped denoiser's name (`live`, `quality`) or a path -> the model's path."""
    if isinstance(model, str) and model in DENOISERS:
        return models_dir() / DENOISERS[model]
    if isinstance(model, str) and not model.endswith(".onnx") and not Path(model).exists():
        raise StreamaeError(f"no shipped denoiser is named {model!r} ({', '.join(DENOISERS)}) "
                            "and there is no such file")
    return Path(model)


def session(path: str | Path, threads: int = 1, device: str = "cpu") -> ort.InferenceSession:
    """threads=0 lets onnxruntime pick; device 'cuda' needs onnxruntime-gpu and says so if missing."""
    path = Path(path)
    if not path.is_file():
        raise StreamaeError("model file not found", path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise StreamaeError("--device cuda: this onnxruntime has no CUDA provider "
                                "(install onnxruntime-gpu with a matching CUDA)")
        providers.insert(0, "CUDAExecutionProvider")
    elif device != "cpu":
        raise StreamaeError(f"unknown device '{device}' (use cpu or cuda)")
    try:
        return ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as e:  # onnxruntime raises several private exception types
        raise StreamaeError(f"not a loadable ONNX model ({str(e).splitlines()[0]})", path) from None


def metadata(sess: ort.InferenceSession) -> dict:
    """The model's `streamae.*` metadata, JSON values decoded."""
    out = {}
    for key, value in sess.get_modelmeta().custom_metadata_map.items():
        if key.startswith("streamae."):
            try:
                out[key[len("streamae."):]] = json.loads(value)
            except json.JSONDecodeError:
                out[key[len("streamae."):]] = value
    return out
