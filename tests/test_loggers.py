"""run.loggers: metrics.csv and a TensorBoard event file from the epoch records, a resume adding no duplicate."""
import csv
import signal

import pytest

from cmwnet.config import config_from_dict
from cmwnet.engine import Trainer
from cmwnet.errors import CmwnetError


def _cfg(tmp_path, loggers):
    return config_from_dict({"name": "logged", "data": {"name": "digits", "meta": {"kind": "clean", "per_class": 3},
                                                        "noise": {"kind": "sym", "rate": 0.4}},
                             "model": {"name": "digits_mlp"}, "optim": {"epochs": 3},
                             "method": {"name": "mwnet"},
                             "run": {"out": str(tmp_path), "progress": False, "max_steps": 3, "loggers": loggers}})


def _stop_after_first_epoch(monkeypatch):
    """The first epoch ends as if SIGTERM had come: checkpoint saved, SystemExit; the next run resumes."""
    real = Trainer._run_epoch

    def run_epoch(self):
        real(self)
        self._stop_signal = signal.SIGTERM

    monkeypatch.setattr(Trainer, "_run_epoch", run_epoch)


def test_csv_and_tensorboard_survive_a_resume(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = _cfg(tmp_path, ["csv", "tensorboard"])
    with monkeypatch.context() as m:
        _stop_after_first_epoch(m)
        with pytest.raises(SystemExit):
            Trainer(cfg, quiet=True).run()
    rows = list(csv.DictReader(open(tmp_path / "logged" / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["0"]
    Trainer(cfg, quiet=True).run()   # resumes at epoch 2
    rows = list(csv.DictReader(open(tmp_path / "logged" / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]   # no repeated row
    assert {"test_top1", "train_loss", "lr", "weight_auc"} <= set(rows[0])
    acc = EventAccumulator(str(tmp_path / "logged" / "tensorboard"))
    acc.Reload()
    assert {"test_top1", "train_loss", "lr", "weight_auc"} <= set(acc.Tags()["scalars"])
    events = acc.Scalars("test_top1")
    assert [e.step for e in events] == [1, 2, 3]   # each epoch once, across the two processes
    assert [round(e.value, 3) for e in events] == [round(float(r["test_top1"]), 3) for r in rows]


def test_unknown_logger_is_one_line_error(tmp_path):
    with pytest.raises(CmwnetError, match="unknown logger .*'tensorbord'.*did you mean 'tensorboard'.*csv, tensorboard"):
        _cfg(tmp_path, ["tensorbord"])
    with pytest.raises(CmwnetError, match="must be a list"):
        _cfg(tmp_path, "csv")


def test_missing_tensorboard_says_pip_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *a, **k):
        if name.startswith("torch.utils.tensorboard") or name.startswith("tensorboard"):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    from cmwnet.loggers import make_loggers

    with pytest.raises(CmwnetError, match="pip install tensorboard"):
        make_loggers(["tensorboard"], str(tmp_path), 0)
