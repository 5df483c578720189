#!/usr/bin/env bash
# Fig. 9 (paper Sec. 7.1): PRODEN alone vs PRODEN + CMW-Net, test accuracy per epoch, CIFAR-10 (partial
# rates 0.1 0.3 0.5 0.7) and CIFAR-100 (0.03 0.05 0.07 0.10). Runs every cell (skipping finished ones,
# resuming interrupted ones), then writes OUT/fig9.png and OUT/fig9.md and prints the summary.
#   bash section7/Partial-Label_Learning/fig9.sh --data-root DATA [--out DIR] [--seeds 1 2 3] [--epochs E] [--gpus 0,1]
#   bash section7/Partial-Label_Learning/fig9.sh --smoke [--out DIR]   # synthetic data, CPU, about a minute
#   bash section7/Partial-Label_Learning/fig9.sh --scale cpu   # CIFAR-10 q 0.3 and 0.5 at CPU scale (ResNet-8, 20 epochs, seeds 1 2): 8 runs, about 0.5 h on 2 cores
# All options: --help
# Runs from the caller's directory: a relative --out or --data-root means the caller's folder.
exec "${PYTHON:-python}" -m cmwnet.paper run fig9 "$@"
