#!/usr/bin/env bash
# Table 8 (paper Sec. 5.2): WebFG-496 (web-bird, web-aircraft, web-car), bilinear CNN on VGG-16, two steps.
# Runs every cell (skips finished ones, resumes interrupted ones), then prints the table with the paper's
# numbers beside ours and writes it to OUT/table8.md. Options (all of `python -m cmwnet.paper run`):
#   --out DIR          runs and table here (default runs/section5/table8; --smoke: runs/smoke/section5/table8)
#   --smoke            generated trees in the data set's real format, narrow models, 2 epochs of 2 steps, CPU
#   --data-root ROOT   folder of the data sets (default data/; see cmwnet/data/folders.py for the layouts)
#   --pretrained PATH  torchvision's ImageNet VGG-16 weights (vgg16-397923af.pth), needed by step 1
#   --seeds, --epochs, --filter, --gpus, --per-gpu, --jobs, --launch, --dry-run: see --help
# Runs from the caller's directory: a relative --out or --data-root means the caller's folder.
exec "${PYTHON:-python}" -m cmwnet.paper run 8 "$@"
