#!/usr/bin/env bash
# The prepared GPU check (issue 9, part 5): bash tools/gpu_check.sh OUT [options of python -m cmwnet.tools.gpu_check]
# Writes OUT/gpu_check.json and OUT/gpu_check.log; `--dry-run` is the CPU form CI runs. Needs the package
# and CIFAR-10 (--data-root PATH; README, section Speed). Where `higher` is not installed but .whl/ holds
# its wheel (CONTRIBUTING.md), it is installed from there into a private folder first.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
    echo "error: no OUT folder: bash tools/gpu_check.sh OUT [--dry-run] [--work DIR] [--data-root PATH]" >&2
    exit 2
fi
py="${PYTHON:-python3}"
if ! "$py" -c "import higher" 2>/dev/null; then
    if ls .whl/higher-*.whl >/dev/null 2>&1; then
        "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/cmwnet-gpu-check-site .whl/higher-*.whl \
            && export PYTHONPATH="/tmp/cmwnet-gpu-check-site${PYTHONPATH:+:$PYTHONPATH}"
    else
        echo "note: the package 'higher' is missing and .whl/ has no wheel of it: the parts that need it will fail" >&2
    fi
fi
export PYTHONUNBUFFERED=1
exec "$py" -m cmwnet.tools.gpu_check "$@"
