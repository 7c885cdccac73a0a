#!/usr/bin/env bash
# Wheels for the packages streamae's training needs that a GPU machine without internet may lack
# (its image has torch, numpy and onnx, but not soundfile or soxr), for CPython 3.12 on x86-64
# manylinux. Carry the folder with the training pack (scripts/release/make_train_pack.py) and, there, run
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
#   export PYTHONPATH=/tmp/site:$PWD
# before scripts/release/train_denoiser_gpu.sh.
#   bash scripts/release/device_wheels.sh [DIR=.whl] [PYTHON_VERSION=3.12]
set -euo pipefail
DIR=${1:-.whl}; PY=${2:-3.12}
mkdir -p "$DIR"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
# soundfile ships libsndfile inside its wheel; cffi and pycparser are what it loads it with
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" --implementation cp \
  "${platforms[@]}" -d "$DIR" soundfile==0.14.0 soxr==1.1.0 cffi==2.1.1 pycparser==3.12
ls -l "$DIR"
