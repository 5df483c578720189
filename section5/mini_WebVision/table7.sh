#!/usr/bin/env bash
# Table 7 (paper Sec. 5.1): mini-WebVision (first 50 WebVision classes, Google images), ResNet-50, tested on WebVision val and ILSVRC12 val.
# Runs every cell (skips finished ones, resumes interrupted ones), then prints the table with the paper's
# numbers beside ours and writes it to OUT/table7.md. Options (all of `python -m cmwnet.paper run`):
#   --out DIR          runs and table here (default runs/section5/table7; --smoke: runs/smoke/section5/table7)
#   --smoke            generated trees in the data set's real format, narrow models, 2 epochs of 2 steps, CPU
#   --data-root ROOT   folder of the data sets (default data/; see cmwnet/data/folders.py for the layouts)
#   --pretrained PATH  the C2D self-supervised ResNet-50 checkpoint (row CMW-Net-SL+C2D)
#   --seeds, --epochs, --filter, --gpus, --per-gpu, --jobs, --launch, --dry-run: see --help
# Runs from the caller's directory: a relative --out or --data-root means the caller's folder.
exec "${PYTHON:-python}" -m cmwnet.paper run 7 "$@"
