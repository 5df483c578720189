#!/usr/bin/env bash
# CPU-scale real-data evidence (issue 9): ERM, MW-Net, CMW-Net, CMW-Net-SL on CIFAR-10 with 40% symmetric
# noise and ERM, MW-Net, CMW-Net on CIFAR-10-LT (IF 100), small ResNet, short schedule, 2 seeds, on the
# CIFAR-10 (--data-root PATH: cifar10-jpeg.npz, default data/cifar10-jpeg.npz in the checkout, or a folder
# holding cifar-10-batches-py from cs.toronto.edu/~kriz/cifar.html); prints accuracy and weight AUC side by side and draws the learned weightings.
#   bash section4/cpu_scale.sh [--data-root data/cifar10-jpeg.npz] [--out runs/cpu_scale] [--seeds 1 2]
#   bash section4/cpu_scale.sh --scale full # all 45,000 images, 40% sym and asym noise, 1 seed (issue 15; README "Results")
#   bash section4/cpu_scale.sh --scale full --diagnose   # + 7 runs that take the full preset's misses apart (README)
#   bash section4/cpu_scale.sh --smoke      # generated data, a few steps per run (CI)
# All options: python -m cmwnet.paper.cpu_scale --help
set -euo pipefail
exec "${PYTHON:-python}" -m cmwnet.paper.cpu_scale "$@"
