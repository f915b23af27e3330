#!/usr/bin/env bash
# Freezes SDE Workbench with PyInstaller into dist/sde-workbench/ (folder mode), in a fresh
# virtual environment so the bundle holds only what the app needs.
#   bash packaging/build.sh                     # CPU build of torch (default, ~1 GB bundle)
#   TORCH_VARIANT=cuda bash packaging/build.sh  # CUDA build of torch (several GB)
# TORCH_INDEX_URL: where torch comes from (e.g. PyTorch's CPU or CUDA wheel index); without it
# pip's default index is used, which on Linux serves the CUDA build for a bare "torch".
# BUILD_VENV: the environment to (re)create (default build/freeze-venv); KEEP_VENV=1 reuses it.
# Then check the bundle: python packaging/check_frozen.py
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${BUILD_VENV:-build/freeze-venv}"
variant="${TORCH_VARIANT:-cpu}"
python="${PYTHON:-python3}"

if [ "${KEEP_VENV:-0}" != 1 ] || [ ! -x "$venv/bin/python" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"
index_args=()
[ -n "${TORCH_INDEX_URL:-}" ] && index_args=(--index-url "$TORCH_INDEX_URL")
case "$variant" in
    cpu) python -m pip install "${index_args[@]}" "torch==2.13.0" ;;
    cuda) python -m pip install "${index_args[@]}" torch ;;
    *)
        echo "TORCH_VARIANT must be cpu or cuda, not $variant" >&2
        exit 2
        ;;
esac
# the app itself (not editable: the bundle must not point back at the checkout) and PyInstaller
python -m pip install . "pyinstaller>=6.10"

start=$(date +%s)
pyinstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller \
    packaging/sde-workbench.spec
echo "built dist/sde-workbench in $(($(date +%s) - start)) s (torch: $variant)"
du -sh dist/sde-workbench
