#!/usr/bin/env bash
# Does a wheel built from this checkout reproduce a table on its own? Builds the wheel, installs it
# outside the checkout, and runs Table 1 in --smoke mode from a folder outside the repository, so only
# what the wheel ships (code and configs/ as package data) can be found.
#   bash tools/wheel_check.sh [WORK_DIR] [extra options of `python -m cmwnet.paper run 1`]
# Default: install the wheel with `pip install --no-deps --target` beside the current interpreter's
# dependencies (torch etc. are not reinstalled). WHEEL_CHECK_FRESH_VENV=1: a fresh venv with a plain
# `pip install WHEEL` (pulls torch from the package index: slow).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-python}"
work="$(mkdir -p "${1:-$(mktemp -d)}" && cd "${1:-.}" && pwd)"
shift || true
case "$work" in "$repo"|"$repo"/*) echo "error: WORK_DIR must lie outside the repository" >&2; exit 2;; esac
rm -rf "$work/wheel" "$work/site" "$work/venv" "$work/out"
echo "== building the wheel"
"$py" -m pip wheel "$repo" --no-deps --no-build-isolation -q -w "$work/wheel"
whl="$(ls "$work"/wheel/cmwnet-*.whl)"
echo "   $whl"
listing="$("$py" -m zipfile -l "$whl")"
grep -q "cmwnet/configs/table1.yaml" <<< "$listing" || { echo "error: the wheel has no configs/" >&2; exit 1; }
if [ "${WHEEL_CHECK_FRESH_VENV:-0}" = 1 ]; then
    "$py" -m venv "$work/venv"
    "$work/venv/bin/pip" install -q "$whl"
    run=("$work/venv/bin/python")
    env_path=""
else
    "$py" -m pip install -q --no-deps --no-compile --target "$work/site" "$whl"
    run=("$py")
    env_path="$work/site"
fi
cd "$work"   # outside the checkout: nothing of the repository is importable from here
where="$(PYTHONPATH="$env_path" "${run[@]}" -c 'import cmwnet, os; print(os.path.dirname(cmwnet.__file__))')"
case "$where" in "$repo"*) echo "error: cmwnet was imported from the checkout ($where), not from the wheel" >&2; exit 1;; esac
echo "== cmwnet from $where; python -m cmwnet.paper run 1 --smoke, in $work"
PYTHONPATH="$env_path" "${run[@]}" -m cmwnet.paper run 1 --smoke --out out "$@" | tail -n 8
test -f "$work/out/table1.md" && echo "== wheel check passed: $work/out/table1.md"
