#!/usr/bin/env bash
# Downloads, on a machine with PyPI, the wheels that a GPU machine without PyPI lacks for the training
# scripts: gymnax, jumanji and tyro, and those of their dependencies that a CUDA image with jax, flax,
# optax, chex, tensorboard, matplotlib and numpy does not hold. Python 3.12 manylinux wheels, without
# their dependencies (--no-deps): the list below is the whole set, about 3 MB. experiments/gpu.sh
# installs them offline when an import fails:
#   pip install --no-index --no-deps --target runs/gpu/site DIR/*.whl
# Usage: experiments/gpu_wheels.sh [DIR=wheels]   (wheels/ is git-ignored; copy it to the GPU machine)
set -euo pipefail
(( $# <= 1 )) || { echo "error: at most 1 argument (DIR), got $#" >&2; exit 2; }
dir=${1:-$(dirname "$0")/../wheels}
# The versions of requirements.txt (gymnax, jumanji, tyro, six) and, for their dependencies, the
# versions this project's CPU environment runs (pip list, 2026-12-01).
packages=(
  gymnax==1.0.1 jumanji==1.1.2 tyro==1.0.17 six==1.17.0
  gymnasium==1.3.0 farama-notifications==0.0.6    # gymnax, jumanji
  dm-env==1.6 dm-tree==0.1.10 esquilax==2.1.0 jax-tqdm==0.4.0   # jumanji
  docstring-parser==0.18.0 typeguard==4.6.1       # tyro
)
mkdir -p "$dir"
python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  -d "$dir" "${packages[@]}"
echo "$(ls "$dir"/*.whl | wc -l) wheels, $(du -sh "$dir" | cut -f1) in $dir"
