"""A run folder's files and figures: what `cmwnet.train` writes beside the checkpoint and how it is read back.

`sample_table` (samples.npz: per-sample weights, losses, predictions), `weight_history` (the weighting per epoch),
`best_model` (best_model.pt), `plotting` and `run_figures` (the PNGs), `curves` (learning curves of several runs),
`suspects` (the ranked suspect list), `inspect` (`python -m cmwnet.inspect`), `loaded_run` (`cmwnet.load_run`),
`layout` (the folder's file names, its lock and its preparation)."""
