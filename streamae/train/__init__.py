"""Training and ONNX export (needs the `train` extra: torch, onnx, onnxscript).

The runtime never imports torch from here: the CLI reads only the torch-free option and
config modules (`options`, `config`), and loads a trainer only when one is asked for.
"""
