#!/usr/bin/env bash
# Table 4: CIFAR-10/100 with feature-dependent (PLC Type I/II/III) noise at 35% and 70%.
# Runs every cell of Table 4 (skipping finished ones, resuming interrupted ones), then prints the table
# beside the paper's numbers and writes tableN.md / .csv / _weighting.png into --out.
#   bash Feature-dependent_Label_Noise/table4.sh --data-root DATA [--out DIR] [--gpus 0,1] [--per-gpu 3] [--seeds 1 2 3] [--epochs E]
#   bash Feature-dependent_Label_Noise/table4.sh --smoke          # synthetic data, tiny model, CPU: every cell end to end in about a minute
#   bash Feature-dependent_Label_Noise/table4.sh --scale cpu    # CIFAR-10 at CPU scale (10,000 images, ResNet-8, 20 epochs, seeds 1 2): 20 runs + the posterior network, about 1 h on 2 cores
# All options: python -m cmwnet.paper run --help
# Runs from the caller's directory: a relative --out or --data-root means the caller's folder.
exec "${PYTHON:-python}" -m cmwnet.paper run 4 "$@"
