#!/usr/bin/env bash
# Sets up .venv for SDE Workbench, then launches the app (default) or runs the test suite.
#   bash packaging/bootstrap.sh          # set up and open the GUI with the default experiment
#   bash packaging/bootstrap.sh test     # set up and run lint + the whole test suite
# torch comes first: with no NVIDIA GPU the CPU build (torch==2.13.0) is installed so that the
# bare "torch" requirement never pulls a multi-GB CUDA build. Set TORCH_INDEX_URL to take torch
# from another index (e.g. PyTorch's CPU wheel index on a machine without a local wheel).
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
    index_args=()
    [ -n "${TORCH_INDEX_URL:-}" ] && index_args=(--index-url "$TORCH_INDEX_URL")
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        python -m pip install "${index_args[@]}" torch
    else
        python -m pip install "${index_args[@]}" "torch==2.13.0"
    fi
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
        exec python -m pytest "$@"
        ;;
    *)
        echo "usage: bash packaging/bootstrap.sh [app|test] [args...]" >&2
        exit 2
        ;;
esac
