"""Port GTCRN's published weights into streamae's own GTCRNet, prove the port, ship it.

    python -m scripts.release.port_gtcrn --anchor ../shared/anchors/gtcrn --data ../shared/data \
        --out models/gtcrn-dns3.onnx

1. Loads the authors' DNS3-trained state dict (MIT, Rong Xiaobin 2024) into GTCRNet
   (streamae/train/gtcrn.py: our code, from the paper and the weights' names and shapes).
2. Proves it: on every mixture of the seeded dev mix, our model's output and the authors'
   streaming ONNX (gtcrn_simple.onnx, run frame by frame as they run it) must agree within
   1e-4, first as the PyTorch model on the whole signal, then as our exported step graph streamed
   by the runtime in 10 ms chunks. It stops with an error if either does not.
3. Writes OUT (whole-signal graph), OUT.step.onnx, OUT.pt (the weights in our checkpoint format,
   for `streamae train denoiser --init`), with the weights' source, commit and licence in the
   graphs' metadata.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from streamae import Denoiser
from streamae.anchors import GTCRNReference
from streamae.evaluation import make_test_mix
from streamae.train.export import code_sparsity, export_denoiser
from streamae.train.gtcrn import GTCRNet, from_published
from streamae.train.model import count_parameters

TOLERANCE = 1e-4
SOURCE = {"weights": "GTCRN, Rong et al., ICASSP 2024: stream/onnx_models/model_trained_on_dns3.tar",
          "repository": "https://github.com/Xiaobin-Rong/gtcrn",
          "commit": "3862c44808dca492ea5a8a145d2dc2a1028d08c8",
          "licence": "MIT, Copyright (c) 2024 Rong Xiaobin",
          "trained_on": "DNS Challenge 3 data, by the authors",
          "changed": "nothing: the same weights in streamae's own code and step graph"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--anchor", default="../shared/anchors/gtcrn",
                   help="folder with the authors' .tar and ONNX")
    p.add_argument("--data", default="../shared/data", help="for the dev mix (speech/dev, noise/dev)")
    p.add_argument("--out", default="models/gtcrn-dns3.onnx")
    args = p.parse_args()
    anchor = Path(args.anchor)
    tar = anchor / "model_trained_on_dns3.tar"
    published = torch.load(tar, map_location="cpu", weights_only=False)["model"]
    net = from_published(published).eval()
    reference = GTCRNReference(anchor / "gtcrn_simple.onnx")
    mixes = make_test_mix(Path(args.data) / "speech" / "dev", Path(args.data) / "noise" / "dev")
    references = [reference.run(m.noisy)[0] for m in mixes]

    torch_error = max(_torch_error(net, m.noisy, r) for m, r in zip(mixes, references))
    print(f"PyTorch port vs the authors' ONNX, {len(mixes)} dev mixtures: max |difference| {torch_error:.2e}")
    _check(torch_error, "the PyTorch port")

    out = Path(args.out)
    probe = torch.from_numpy(np.stack([m.noisy[:64000] for m in mixes[:16] if len(m.noisy) >= 64000]))
    sparsity = code_sparsity(net, probe)
    export_denoiser(net, out, {"source": SOURCE, "sparsity": sparsity, "parameters": count_parameters(net),
                               "training": {"note": SOURCE["changed"]}})
    torch.save({"model": net.state_dict(), "config": net.config.to_dict(), "step": 0, "source": SOURCE},
               out.with_suffix(".pt"))
    denoiser = Denoiser(out, threads=1)
    stream_error = max(_stream_error(denoiser, m.noisy, r) for m, r in zip(mixes, references))
    print(f"exported step graph streamed in 10 ms chunks vs the authors' ONNX: "
          f"max |difference| {stream_error:.2e}")
    _check(stream_error, "the exported step graph")
    differences = {"pytorch": torch_error, "step_graph": stream_error, "mixtures": len(mixes)}
    print(json.dumps({"port_max_abs_difference": differences, "sparsity": sparsity}))


def _torch_error(net: GTCRNet, x: np.ndarray, reference: np.ndarray) -> float:
    """Ours is time-aligned; the authors' loop lags one hop, and we feed whole hops only."""
    hop = net.config.hop
    n = len(x) // hop * hop
    with torch.no_grad():
        ours = net(torch.from_numpy(x[:n])[None])[0].numpy()
    return float(np.abs(ours[: n - hop] - reference[hop:n]).max())


def _stream_error(denoiser: Denoiser, x: np.ndarray, reference: np.ndarray) -> float:
    """Our stream lags `latency_samples`, the authors' one hop; compare where both are final."""
    stream = denoiser.stream(denoiser.sample_rate)
    ours = np.concatenate([stream.process(x[i:i + 160]) for i in range(0, len(x), 160)])
    ours = ours[denoiser.latency_samples:]
    theirs = reference[denoiser.hop:]
    n = min(len(ours), len(theirs)) - denoiser.hop
    return float(np.abs(ours[:n] - theirs[:n]).max())


def _check(error: float, what: str) -> None:
    if not error <= TOLERANCE:
        raise SystemExit(f"port not proven: {what} differs from the authors' ONNX by {error:.2e} "
                         f"> {TOLERANCE}")


if __name__ == "__main__":
    main()
