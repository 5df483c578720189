#!/usr/bin/env bash
# Table 1: CIFAR-10/100-LT, test error (ERM, focal, CB, LDAM-DRW, L2RW, MW-Net, MCW, CMW-Net, SADE).
# Runs every cell of Table 1 (skipping finished ones, resuming interrupted ones), then prints the table
# beside the paper's numbers and writes tableN.md / .csv / _weighting.png into --out.
#   bash Class_Imbalance/table1.sh --data-root DATA [--out DIR] [--gpus 0,1] [--per-gpu 3] [--seeds 1 2 3] [--epochs E]
#   bash Class_Imbalance/table1.sh --smoke          # synthetic data, tiny model, CPU: every cell end to end in about a minute
# All options: python -m cmwnet.paper run --help
# Runs from the caller's directory: a relative --out or --data-root means the caller's folder.
exec "${PYTHON:-python}" -m cmwnet.paper run 1 "$@"
