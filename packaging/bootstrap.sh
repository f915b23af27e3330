#!/usr/bin/env bash
# Sets up .venv for SDE Workbench, then launches the app (default) or runs the test suite.
#   bash packaging/bootstrap.sh          # set up and open the GUI with the default experiment
#   bash packaging/bootstrap.sh test     # set up and run lint, mypy + the whole test suite
# torch comes first: with no NVIDIA GPU, torch==2.13.0 from pip's configured index, which is the
# CPU build where that index or a local wheel folder serves one (plain PyPI serves the CUDA build
# on Linux). Set TORCH_INDEX_URL to take torch from PyTorch's index for one build instead; that
# index then decides the version:
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 bash packaging/bootstrap.sh  # CUDA 12.6
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash packaging/bootstrap.sh    # CPU only
# torch is installed once: to switch builds later, remove .venv (or pip uninstall torch) first.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-app}"
[ $# -gt 0 ] && shift

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate

if ! python -c "import torch" >/dev/null 2>&1; then
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
        python -m pip install --index-url "$TORCH_INDEX_URL" torch
    elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        python -m pip install torch
    else
        python -m pip install "torch==2.13.0"
    fi
elif [ -n "${TORCH_INDEX_URL:-}" ]; then
    echo "bootstrap.sh: torch $(python -c 'import torch; print(torch.__version__)') is already in" \
        ".venv, so TORCH_INDEX_URL is not used; remove .venv (or pip uninstall torch) to switch" >&2
fi

case "$mode" in
    app)
        python -m pip install -e ".[images]"
        exec sde-workbench "$@"
        ;;
    test)
        python -m pip install -e ".[test]"
        ruff check .
        ruff format --check .
        mypy
        # two workers, a test file each at a time (its module fixtures stay in one process):
        # the 2-core machines this runs on finish the suite in ~8 minutes instead of ~10
        exec python -m pytest -n 2 --dist loadfile "$@"
        ;;
    *)
        echo "usage: bash packaging/bootstrap.sh [app|test] [args...]" >&2
        exit 2
        ;;
esac
