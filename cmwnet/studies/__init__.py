"""The project's own studies, apart from the paper's tables: `study.py` (`python -m cmwnet.studies`: the weighting's
settings, the meta-gradient signal at a checkpoint, per-class weights, what a run trained on) and
`corrected_targets.py` (how often CMW-Net-SL's corrected targets put the true class on top)."""
