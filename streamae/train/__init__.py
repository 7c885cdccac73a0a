"""Training and ONNX export (needs the `train` extra: torch, onnx, onnxscript).

Nothing outside this package imports it when loading (tests/test_torch_boundary.py checks): the
command layer loads a trainer only when one is asked for.
"""
