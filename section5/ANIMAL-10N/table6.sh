#!/usr/bin/env bash
# Table 6 (paper Sec. 5.1): ANIMAL-10N, VGG-19-BN: ERM, MW-Net, CMW-Net, CMW-Net-SL (+ the Sec. 6 transfer row).
# Runs every cell (skips finished ones, resumes interrupted ones), then prints the table with the paper's
# numbers beside ours and writes it to OUT/table6.md. Options (all of `python -m cmwnet.paper run`):
#   --out DIR          runs and table here (default runs/section5/table6; --smoke: runs/smoke/section5/table6)
#   --smoke            generated trees in the data set's real format, narrow models, 2 epochs of 2 steps, CPU
#   --data-root ROOT   folder of the data sets (default data/; see cmwnet/data/folders.py for the layouts)
#   --weight-net PATH  the frozen weighting of the transfer row (the authors' vnet_119.pth or our weight_net.pt)
#   --seeds, --epochs, --filter, --gpus, --per-gpu, --jobs, --launch, --dry-run: see --help
# Runs from the caller's directory: a relative --out or --data-root means the caller's folder.
exec "${PYTHON:-python}" -m cmwnet.paper run 6 "$@"
