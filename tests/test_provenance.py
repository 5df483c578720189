"""Every result.json says what produced it: versions, commit, device, threads, world size, speed options."""
import json
import re

import torch

import cmwnet
from cmwnet.config import config_from_dict
from cmwnet.engine import train


def test_result_carries_the_reproducibility_record(tmp_path):
    cfg = config_from_dict({
        "name": "p", "data": {"name": "digits", "augment": {"normalize": "half", "flip": False}, "batch_size": 128},
        "model": {"name": "tiny_mlp"}, "optim": {"epochs": 1}, "method": {"name": "erm"},
        "run": {"out": str(tmp_path), "progress": False, "plot": False, "device": "cpu", "max_steps": 2}})
    train(cfg, quiet=True)
    env = json.loads((tmp_path / "p" / "result.json").read_text())["environment"]
    assert env["cmwnet"] == cmwnet.__version__ and env["torch"] == torch.__version__
    assert env["device"] == "cpu" and env["world_size"] == 1 and env["threads"] == torch.get_num_threads()
    assert env["fast_path"] == "eager+fp32" and env["deterministic"] is False
    assert env["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", env["git_commit"])
