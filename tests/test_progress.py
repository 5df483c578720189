"""What a run prints when piped to a file: no bar redraws, an ETA, the legend once."""
import io
import os
import subprocess
import sys

from cmwnet.paper.runner import cells_eta
from cmwnet.progress import epochs_eta, format_eta, show_bar

ROOT = os.path.dirname(os.path.dirname(__file__))


def test_piped_run_prints_plain_lines_with_eta(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cmwnet.train", "--config", "configs/digits_cmwnet.yaml",
                           "--set", f"run.out={tmp_path}", "--set", "optim.epochs=3", "--set", "method.start_epoch=1",
                           "--set", "run.max_steps=3"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    both = proc.stdout + proc.stderr
    assert "\r" not in both and "it/s" not in both   # no tqdm bar on a pipe
    epoch_lines = [x for x in proc.stdout.splitlines() if x.startswith("epoch ") and "/3" in x]
    assert len(epoch_lines) == 3
    assert "ETA" in epoch_lines[0] and "ETA" in epoch_lines[1] and "ETA" not in epoch_lines[2]
    assert proc.stdout.count("w = mean sample weight") == 1 and "auc = ROC AUC" in proc.stdout


def test_bar_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert show_bar(Tty()) and not show_bar(io.StringIO())


def test_eta_arithmetic():
    assert epochs_eta([2.0, 4.0], 5) == 15.0 and epochs_eta([], 3) == 0.0
    assert cells_eta([10.0, 30.0], left=5, slots=2) == 60.0   # 5 cells on 2 slots: 3 rounds of 20 s
    assert (format_eta(42), format_eta(125), format_eta(3 * 3600 + 7 * 60)) == ("42s", "2m05s", "3h07m")


def test_smoke_tables_carry_a_banner(tmp_path):
    import yaml

    from cmwnet.paper.report import SMOKE_BANNER, smoke_banner

    run = tmp_path / "setting" / "cmwnet" / "s1"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"run": {"max_steps": None}}))
    assert smoke_banner(str(tmp_path)) == ""
    (run / "config.yaml").write_text(yaml.safe_dump({"run": {"max_steps": 2}}))
    assert SMOKE_BANNER in smoke_banner(str(tmp_path)) and "numbers are meaningless" in SMOKE_BANNER
