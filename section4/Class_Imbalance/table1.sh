#!/usr/bin/env bash
# Table 1: CIFAR-10/100-LT, test error (ERM, focal, CB, LDAM-DRW, L2RW, MW-Net, MCW, CMW-Net, SADE).
# Runs every cell of Table 1 (skipping finished ones, resuming interrupted ones), then prints the table
# beside the paper's numbers and writes tableN.md / .csv / _weighting.png into --out.
#   bash Class_Imbalance/table1.sh --data-root DATA [--out DIR] [--gpus 0,1] [--per-gpu 3] [--seeds 1 2 3] [--epochs E]
#   bash Class_Imbalance/table1.sh --smoke          # synthetic data, tiny model, CPU: every cell end to end in about a minute
#   bash Class_Imbalance/table1.sh --scale cpu    # CIFAR-10 at CPU scale (ResNet-8, 20 epochs, seeds 1 2, data/cifar10-jpeg.npz): 24 runs, about 1.5 h on 2 cores
# All options: python -m cmwnet.paper run --help
# Runs from the caller's directory: a relative --out or --data-root means the caller's folder.
exec "${PYTHON:-python}" -m cmwnet.paper run 1 "$@"
