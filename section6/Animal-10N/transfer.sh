#!/usr/bin/env bash
# Paper Sec. 6: ANIMAL-10N with a transferred, frozen CMW-Net weighting (the transfer row of Table 6 only).
# Runs every cell (skips finished ones, resumes interrupted ones), then prints the table with the paper's
# numbers beside ours and writes it to OUT/table6.md. Options (all of `python -m cmwnet.paper run`):
#   --out DIR          runs and table here (default runs/section5/table6; --smoke: runs/smoke/section5/table6)
#   --smoke            generated trees in the data set's real format, narrow models, 2 epochs of 2 steps, CPU
#   --data-root ROOT   folder of the data sets (default data/; see cmwnet/data/folders.py for the layouts)
#   --weight-net PATH  the transferred weighting: the authors' vnet_119.pth (converted, heads 0,2,1) or our Table-5 weight_net.pt
#   --seeds, --epochs, --filter, --gpus, --per-gpu, --jobs, --launch, --dry-run: see --help
# Runs from the caller's directory: a relative --out or --data-root means the caller's folder.
exec "${PYTHON:-python}" -m cmwnet.paper run 6 --filter transfer "$@"
