"""The embedded demo: CMW-Net beats ERM on the mean of 3 seeds (the README's main command)."""
import yaml

from cmwnet.config import config_from_dict
import numpy as np

from cmwnet.resources import config_file
from cmwnet.tools.demo import DEMO_METHODS, demo_config, format_table, run_demo, save_summary


def test_demo_runs_the_shipped_digits_configs():
    """The demo restates nothing: each run is configs/digits_<method>.yaml with its seed, name and folder."""
    for method in DEMO_METHODS:
        with open(config_file(f"digits_{method}.yaml")) as f:
            file_cfg = config_from_dict(yaml.safe_load(f)).to_dict()
        demo = config_from_dict(demo_config(method, 3, "somewhere")).to_dict()
        assert demo["seed"] == 3 and demo["run"]["out"] == "somewhere" and demo["name"] == f"digits_{method}_s3"
        for key in ("data", "model", "optim", "method", "ema"):
            assert file_cfg[key] == demo[key]
    d = demo_config("cmwnet", 0)["data"]
    assert d["noise"]["rate"] == 0.4 and d["imbalance"] == 10    # what the README says the demo does


def test_demo_cmwnet_beats_erm_on_three_seeds(tmp_path):
    results = run_demo([0, 1, 2], str(tmp_path))
    mean = {m: np.mean([r["last_top1"] for r in rs]) for m, rs in results.items()}
    assert mean["cmwnet"] > mean["erm"] + 3.0, mean   # measured: 85.86 vs 75.80
    table = format_table(results, [0, 1, 2])
    assert f"{mean['cmwnet']:.2f}" in table and f"CMW-Net - ERM: {mean['cmwnet'] - mean['erm']:+.2f}" in table
    md, cs = save_summary(results, [0, 1, 2], str(tmp_path))     # saved as a sweep's table: mean ± std of 3 seeds
    last = [r["last_top1"] for r in results["cmwnet"]]
    assert f"| CMW-Net | 3 | {np.mean(last):.2f} ± {np.std(last, ddof=1):.2f} |" in open(md).read()
    assert open(cs).read().splitlines()[0].startswith("method,seeds,last_top1_mean,last_top1_std,last_top1_n")
