"""Tables 1-5 as data: the paper's numbers match the authors' README, every cell builds a valid config
naming registered methods/losses/models, per-cell settings are the documented ones, and one table
runs end to end in --smoke mode."""
import os
import re
import subprocess
import sys

import pytest

from cmwnet.losses import LOSSES
from cmwnet.methods import METHODS
from cmwnet.models import MODELS
from cmwnet.paper.registry import get_table
from cmwnet.paper.schema import Paper, parse_value

README = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "seed", "cmwnet-paper-readme.txt")
needs_readme = pytest.mark.skipif(not os.path.exists(README), reason="the authors' README copy is not here")

T1_ROWS = {"ERM": "erm", "Focal loss": "focal", "CB loss": "cb", "LDAM loss": "ldam", "L2RW": "l2rw",
           "MW-Net": "mwnet", "MCW with CE loss": "mcw_ce", "CMW-Net with CE loss": "cmwnet_ce",
           "MCW with LDAM loss": "mcw_ldam", "CMW-Net with LDAM loss": "cmwnet_ldam", "SADE": "sade",
           "CMW-Net with SADE": "cmwnet_sade"}
T2_ROWS = {"ERM": "erm", "Forward": "forward", "GCE": "gce", "M-correction": "mcorrection", "DivideMix": "dividemix",
           "L2RW": "l2rw", "MW-Net": "mwnet", "CMW-Net": "cmwnet", "CMW-Net-SL": "cmwnet_sl"}
T3_ROWS = {"DivideMix": "dividemix", "ELR+": "elr_plus", "REED": "reed", "AugDesc": "augdesc", "C2D": "c2d",
           "Two-step": "two_step", "CMW-Net-SL": "cmwnet_sl", "CMW-Net-SL+": "cmwnet_sl_plus"}
DS = {"CIFAR-10": "cifar10", "CIFAR-100": "cifar100"}


def readme_lines(start: str, stop: str) -> list[list[str]]:
    """The '|'-separated lines of the README between the line starting with `start` and `stop`."""
    with open(README) as f:
        lines = f.read().splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(start))
    out = []
    for line in lines[i + 1:]:
        if line.startswith(stop):
            break
        if "|" in line and not line.startswith("---"):
            cells = [c.strip() for c in line.split("|")]
            while cells and cells[-1] == "":
                cells.pop()
            out.append(cells)
    return out


def fd_key(ds: str, label: str) -> str:
    """README noise label of Tables 4-5 -> our setting key."""
    roman = {"I": 1, "II": 2, "III": 3}
    m = re.fullmatch(r"Type-(I+) \((\d+)%\)", label)
    if m:
        return f"{ds}_type{roman[m.group(1)]}_{int(m.group(2)) / 100:.2f}"
    m = re.fullmatch(r"Type-(I+) \+ (Symmetric|Asymmetric)", label)
    return f"{ds}_type{roman[m.group(1)]}_0.35+{'unif' if m.group(2) == 'Symmetric' else 'flip'}0.3"


@needs_readme
def test_table1_paper_numbers_match_the_readme():
    t = get_table(1)
    rows = readme_lines("Imbalance factor", "Details")
    assert len(rows) == 12
    cols = [f"{ds}_if{f}" for ds in ("cifar10", "cifar100") for f in (200, 100, 50, 20, 10, 1)]
    for label, *values in rows:
        for col, v in zip(cols, values, strict=True):
            assert t.paper[(T1_ROWS[label], col)] == parse_value(v), (label, col)


@needs_readme
@pytest.mark.parametrize("number,start,stop,rows,cols", [
    (2, "Datasets | Noise | Symmetric Noise", "Datasets | Noise | Symmetric |", T2_ROWS,
     [f"{k}{r}" for k in ("sym", "asym") for r in (0.2, 0.4, 0.6, 0.8)]),
    (3, "Datasets | Noise | Symmetric |", "Details", T3_ROWS, ["sym0.2", "sym0.5", "sym0.8", "sym0.9", "asym0.4"]),
])
def test_noise_tables_paper_numbers_match_the_readme(number, start, stop, rows, cols):
    t = get_table(number)
    ds, n = None, 0
    for cells in readme_lines(start, stop):
        if cells[0] in DS:
            ds, cells = DS[cells[0]], cells[1:]
        if not cells or cells[0] not in rows:
            continue
        label, *values = cells
        for col, v in zip(cols, values, strict=True):
            assert t.paper[(rows[label], f"{ds}_{col}")] == parse_value(v), (label, ds, col)
            n += 1
    assert n == len(t.settings) * len(t.rows)


@needs_readme
@pytest.mark.parametrize("number,start,stop", [(4, "Datasets | Noise | ERM", "We can repeat"),
                                               (5, "Datasets | Noise | ERM", "Details")])
def test_feature_tables_paper_numbers_match_the_readme(number, start, stop):
    t = get_table(number)
    cols = ["erm", "lrt", "gce", "mwnet", "plc", "cmwnet", "cmwnet_sl"]
    with open(README) as f:
        text = f.read()
    if number == 5:  # the second "Datasets | Noise | ERM" header is Table 5's
        text = text[text.index("bash table5.sh"):]
    lines = text.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(start))
    ds, n = None, 0
    for line in lines[i + 1:]:
        if line.startswith(stop):
            break
        cells = [c.strip() for c in line.split("|")]
        while cells and cells[-1] == "":
            cells.pop()
        if not cells or cells[0].startswith("---"):
            continue
        if cells[0] in DS:
            ds, cells = DS[cells[0]], cells[1:]
        label, *values = cells
        for col, v in zip(cols, values, strict=True):
            assert t.paper[(col, fd_key(ds, label))] == parse_value(v), (label, col)
            n += 1
    assert n == len(t.settings) * len(t.rows)


def test_paper_numbers_spot_checks():
    """Typed from the README by hand, independently of the tables' blocks."""
    assert get_table(1).paper[("cmwnet_ce", "cifar10_if100")] == Paper(21.15)
    assert get_table(1).paper[("ldam", "cifar10_if200")] == Paper(None)
    assert get_table(2).paper[("cmwnet_sl", "cifar100_asym0.8")] == Paper(18.34, 0.21)
    assert get_table(2).paper[("dividemix", "cifar10_sym0.6")] == Paper(94.23, 0.23)
    assert get_table(3).paper[("reed", "cifar100_asym0.4")] == Paper(None)
    assert get_table(3).paper[("cmwnet_sl_plus", "cifar10_sym0.9")] == Paper(93.7)
    assert get_table(4).paper[("cmwnet", "cifar100_type2_0.70")] == Paper(50.01, 0.51)
    assert get_table(5).paper[("plc", "cifar10_type3_0.35+flip0.3")] == Paper(77.54, 0.70)


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("smoke", [False, True])
def test_every_cell_builds_a_valid_config(number, smoke, tmp_path):
    t = get_table(number)
    cells = t.cells(seeds=(1, 2), data_root="data", noise_dir=str(tmp_path / "nl"), smoke=smoke)
    assert len(cells) == len(t.settings) * len(t.run_rows()) * 2
    assert len({c.name for c in cells}) == len(cells)
    for c in cells:
        cfg = c.resolve(str(tmp_path))            # config_from_dict validation
        assert cfg.method.name in METHODS and cfg.method.loss in LOSSES and cfg.model.name in MODELS, c.name
        assert cfg.seed == int(c.name.rsplit("/s", 1)[1])
        if smoke:
            assert cfg.run.device == "cpu" and cfg.run.max_steps == 2 and cfg.optim.epochs == 2
    # quoted / not reproduced rows have numbers but no cells
    for r in t.rows:
        if r.status != "run":
            assert not any(f"/{r.key}/" in c.name for c in cells)
            assert any(k[0] == r.key for k in t.paper)


def _cfg(number, name, tmp_path, **kw):
    t = get_table(number)
    cell = next(c for c in t.cells(seeds=(1,), noise_dir=str(tmp_path), **kw) if c.name == name)
    return cell.resolve(str(tmp_path))


def test_documented_cell_settings(tmp_path):
    c = _cfg(1, "cifar100_if200/cmwnet_ldam/s1", tmp_path)
    assert (c.data.name, c.data.imbalance, c.method.name, c.method.loss) == ("cifar100", 200, "cmwnet", "ldam")
    assert c.method.loss_args == {"drw_epoch": None} and c.model.args == {"normed_fc": True}
    assert (c.method.start_epoch, c.method.normalize, c.data.meta.kind) == (160, "sum_detached", "balanced_train")
    assert c.optim.schedule.milestones == [160, 180] and c.optim.schedule.gamma == 0.01 and c.optim.nesterov
    ldam = _cfg(1, "cifar10_if100/ldam/s1", tmp_path)
    assert ldam.method.name == "erm" and ldam.method.loss_args == {"drw_epoch": 160}
    sl = _cfg(2, "cifar100_sym0.8/cmwnet_sl/s1", tmp_path)
    assert sl.method.sl.mixup_alpha == 0.1 and sl.optim.epochs == 345 and sl.method.weight_net.lr == 1e-3
    assert sl.optim.schedule.kind == "cosine_restarts" and sl.optim.schedule.start == 45
    assert sl.method.sl.warmup == 30 and sl.method.sl.partner_weight == "permuted" and sl.ema.decay == 0.997
    asym = _cfg(2, "cifar100_asym0.6/cmwnet_sl/s1", tmp_path)
    assert asym.method.sl.mixup_alpha == 4.0 and asym.ema.freeze_epoch == 150 and asym.optim.epochs == 300
    assert sl.ema.bn == asym.ema.bn == "own" and sl.model.name == "preact_resnet18"   # the authors' EMA BN and block
    mw = _cfg(2, "cifar10_asym0.4/mwnet/s1", tmp_path)
    assert (mw.data.meta.kind, mw.data.meta.per_class, mw.method.start_epoch, mw.ema.decay) == ("clean", 100, 10, 0.0)
    for c in (sl, asym, mw):   # every Table 2 row: the authors' cmwn.py augmentation
        assert (c.data.augment.pad_mode, c.data.augment.normalize) == ("reflect", "cifar_lt")
    fd = _cfg(4, "cifar100_type3_0.70/cmwnet_sl/s1", tmp_path)
    assert fd.data.noise.file == os.path.abspath(os.path.join(tmp_path, "cifar100-type3-0.70.npy"))
    assert fd.data.train_subset == 45000 and fd.model.name == "resnet34" and fd.optim.weight_decay == 1e-3
    assert (fd.method.sl.mixup_alpha, fd.method.sl.pseudo_reset_epoch, fd.ema.decay, fd.ema.bn) == (4.0, 45, 0.999, "own")
    t5 = _cfg(5, "cifar10_type2_0.35+flip0.3/erm/s1", tmp_path)
    assert t5.data.noise.file.endswith("cifar10-type2-0.35+flip0.30.npy") and t5.method.name == "erm"
    short = _cfg(1, "cifar10_if10/cmwnet_ce/s1", tmp_path, epochs=20)
    assert short.optim.epochs == 20 and short.optim.schedule.milestones == [16, 18] and short.method.start_epoch == 16


def test_table3_shares_runs_with_table2(tmp_path):
    t2 = {c.name: c.overrides for c in get_table(2).cells(seeds=(1,))}
    t3 = {c.name: c.overrides for c in get_table(3).cells(seeds=(1,))}
    shared = set(t2) & set(t3)
    assert {n.split("/")[0] for n in shared} == {"cifar10_sym0.2", "cifar10_sym0.8", "cifar10_asym0.4",
                                                 "cifar100_sym0.2", "cifar100_sym0.8", "cifar100_asym0.4"}
    assert all(t2[n] == t3[n] for n in shared)


def test_unknown_table_is_a_clear_error():
    from cmwnet.errors import CmwnetError

    with pytest.raises(CmwnetError, match="unknown table '9'"):
        get_table(9)


def test_table3_smoke_end_to_end(tmp_path):
    """What CI does for every table: the section-4 script in --smoke mode prints a complete table."""
    script = os.path.join(os.path.dirname(__file__), "..", "section4", "Feature-independent_Label_Noise", "table3.sh")
    env = dict(os.environ, PYTHON=sys.executable)
    p = subprocess.run(["bash", script, "--smoke", "--out", str(tmp_path), "--jobs", "1"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "Finished: 10 of 10 cells" in p.stdout
    sl_lines = [x for x in p.stdout.splitlines() if x.startswith("| CMW-Net-SL |")]
    assert len(sl_lines) == 4       # CIFAR-10 and CIFAR-100, best and last epoch
    for line in sl_lines:           # every cell: ours (the paper's number)
        assert len(re.findall(r"\| \d+\.\d\d \(\d+\.\d+\)", line)) == 5, line
    assert "| CMW-Net-SL | " in p.stdout and "(96.20)" in p.stdout
    assert (tmp_path / "table3.md").exists() and (tmp_path / "table3.csv").exists()
    assert (tmp_path / "table3_weighting.png").exists()
    curves = sorted(os.listdir(tmp_path / "table3_curves"))   # one learning-curve PNG per setting
    assert len(curves) == 10 and all(c.endswith(".png") for c in curves), curves
    # a second run skips every finished cell
    p2 = subprocess.run(["bash", script, "--smoke", "--out", str(tmp_path), "--jobs", "1"], env=env,
                        capture_output=True, text=True, timeout=120)
    assert p2.returncode == 0 and "10 already finished" in p2.stdout
