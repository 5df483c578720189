"""Developer tools on top of the library: bench (speed and memory), reference (the authors' way of a
meta step, the bench's baseline), killtest (kill/resume harness), demo, transfer (weight-net files),
gpu_check (the prepared check for a session with a GPU). The library never imports them."""
