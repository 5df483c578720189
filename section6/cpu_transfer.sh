#!/usr/bin/env bash
# Paper Sec. 6 at CPU scale: the CMW-Net weighting each seed learned on Table 5's CPU cell (CIFAR-10, 35% Type-I +
# 30% asymmetric noise) reused frozen on Table 2's CPU cells (40% symmetric and asymmetric noise), beside ERM and
# in-place CMW-Net (Table 2's own runs), with its time per epoch against ERM's.
#   bash section4/Feature-dependent_Label_Noise/table5.sh --scale cpu --filter /cmwnet   # first: learns the weightings
#   bash section6/cpu_transfer.sh [--out runs/cpu] [--seeds 1 2]    # 4 transferred runs (+ Table 2's ERM/CMW-Net if missing)
#   bash section6/cpu_transfer.sh --smoke                          # generated data, a fresh source weighting (CI)
# All options: python -m cmwnet.paper.cpu_transfer --help
exec "${PYTHON:-python}" -m cmwnet.paper.cpu_transfer "$@"
