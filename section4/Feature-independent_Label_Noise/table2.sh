#!/usr/bin/env bash
# Table 2: CIFAR-10/100 with symmetric / asymmetric noise (ERM, Forward, GCE, L2RW, MW-Net, CMW-Net, CMW-Net-SL).
# Runs every cell of Table 2 (skipping finished ones, resuming interrupted ones), then prints the table
# beside the paper's numbers and writes tableN.md / .csv / _weighting.png into --out.
#   bash Feature-independent_Label_Noise/table2.sh --data-root DATA [--out DIR] [--gpus 0,1] [--per-gpu 3] [--seeds 1 2 3] [--epochs E]
#   bash Feature-independent_Label_Noise/table2.sh --smoke          # synthetic data, tiny model, CPU: every cell end to end in about a minute
#   bash Feature-independent_Label_Noise/table2.sh --scale cpu    # CIFAR-10 at CPU scale (ResNet-8, 20 epochs, seeds 1 2, data/cifar10-jpeg.npz): 28 runs, about 1.5 h on 2 cores
# All options: python -m cmwnet.paper run --help
# Runs from the caller's directory: a relative --out or --data-root means the caller's folder.
exec "${PYTHON:-python}" -m cmwnet.paper run 2 "$@"
