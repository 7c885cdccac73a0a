"""Training and ONNX export (needs the `train` extra: torch, onnx, onnxscript).

Nothing under `streamae.train` is imported by the runtime.
"""
