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
    assert {"test/top1", "train/loss", "train/ce", "train/lr", "weights/auc",
            "hparam/best_test_top1"} <= set(acc.Tags()["scalars"])
    events = acc.Scalars("test/top1")
    assert [e.step for e in events] == [1, 2, 3]   # each epoch once, across the two processes
    assert [round(e.value, 3) for e in events] == [round(float(r["test_top1"]), 3) for r in rows]


def test_unknown_logger_is_one_line_error(tmp_path):
    with pytest.raises(CmwnetError, match="unknown logger .*'tensorbord'.*did you mean 'tensorboard'.*csv, mlflow, tensorboard, wandb"):
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


@pytest.mark.parametrize("name", ["wandb", "mlflow"])
def test_missing_wandb_or_mlflow_is_one_line_naming_the_extra(tmp_path, monkeypatch, name):
    import builtins

    real_import = builtins.__import__

    def without(mod, *a, **k):
        if mod.split(".")[0] == name:
            raise ImportError(mod)
        return real_import(mod, *a, **k)

    monkeypatch.setattr(builtins, "__import__", without)
    from cmwnet.loggers import make_loggers

    with pytest.raises(CmwnetError, match=rf"pip install {name} \(from a checkout: pip install -e '\.\[{name}\]'\)"):
        make_loggers([name], str(tmp_path), 0)


def test_tags_are_grouped_and_steps_are_one_based():
    from cmwnet.loggers import hparams, scalars, step_of

    rec = {"epoch": 0, "lr": 0.1, "train_loss": 1.0, "train_ce": 1.2, "test_top1": 50.0, "val_top5": 90.0,
           "weight_auc": 0.8, "mean_weight_noisy": 0.2, "meta_loss": 2.0, "imagenet_ema_top1": 3.0, "x": None}
    assert scalars(rec) == {"train/lr": 0.1, "train/loss": 1.0, "train/ce": 1.2, "test/top1": 50.0, "val/top5": 90.0,
                            "weights/auc": 0.8, "weights/mean_noisy": 0.2, "meta/loss": 2.0, "imagenet/ema_top1": 3.0}
    assert step_of(rec) == 1   # the file's epoch 0 is epoch 1 on screen and in every logger
    hp = hparams(config_from_dict({"optim": {"lr": 0.05}}))
    assert hp["optim.lr"] == 0.05 and hp["run.name"] == "none" and all("." in k or k in ("name", "seed") for k in hp)


def test_the_wandb_logger_runs_offline_with_the_installed_wandb(tmp_path, monkeypatch):
    """wandb >= 0.2x has no wandb.util.generate_id: the logger used to crash before the first epoch."""
    pytest.importorskip("wandb")
    from cmwnet.config import config_from_dict
    from cmwnet.engine import Trainer

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = config_from_dict({"name": "wb", "data": {"name": "digits", "val_size": 100}, "model": {"name": "digits_mlp"},
                            "optim": {"epochs": 2}, "method": {"name": "erm"},
                            "run": {"out": str(tmp_path), "progress": False, "plot": False, "loggers": ["wandb"]}})
    Trainer(cfg, quiet=True).run()
    run_id = (tmp_path / "wb" / "wandb_id").read_text()
    assert len(run_id) == 8 and run_id.isalnum()
    assert any(p.name.startswith("offline-run-") and p.name.endswith(run_id) for p in (tmp_path / "wb" / "wandb").iterdir())


def test_new_run_ids_look_like_wandbs():
    from cmwnet.loggers import new_run_id

    ids = {new_run_id() for _ in range(50)}
    assert len(ids) == 50 and all(len(i) == 8 and i.isalnum() and i == i.lower() for i in ids)


def test_wandb_runs_are_named_by_their_setting_with_tags_and_a_project(tmp_path, monkeypatch):
    """Every sweep run showed up as s1/s2 in W&B: the name is now the folder below run.out, with the config's tags."""
    wandb = pytest.importorskip("wandb")
    from cmwnet.config import config_from_dict
    from cmwnet.engine import Trainer

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    seen = {}
    real = wandb.init

    def spy(**kw):
        seen.update(kw)
        return real(**kw)
    monkeypatch.setattr(wandb, "init", spy)
    cfg = config_from_dict({"name": "wb", "data": {"name": "digits", "val_size": 100, "noise": {"kind": "sym", "rate": 0.4}},
                            "model": {"name": "digits_mlp"}, "optim": {"epochs": 1}, "method": {"name": "erm"},
                            "run": {"out": str(tmp_path), "name": "lr-0.1/s1", "progress": False, "plot": False,
                                    "loggers": ["wandb"], "project": "cmwnet-test"}})
    Trainer(cfg, quiet=True).run()
    assert seen["name"] == "lr-0.1/s1" and seen["project"] == "cmwnet-test"
    assert {"method:erm", "data:digits", "noise:sym 0.4", "seed:0"} <= set(seen["tags"])


def test_run_labels_and_tags_without_a_logger_package(tmp_path):
    from cmwnet.config import config_from_dict
    from cmwnet.loggers import run_label, run_tags

    cfg = config_from_dict({"data": {"name": "cifar10", "imbalance": 100}, "method": {"name": "cmwnet"},
                            "run": {"out": str(tmp_path)}})
    assert run_label(str(tmp_path / "cifar10_if100" / "cmwnet" / "s1"), cfg) == "cifar10_if100/cmwnet/s1"
    assert run_label(str(tmp_path.parent / "elsewhere" / "s2"), cfg) == "s2"
    assert run_tags(cfg)["imbalance"] == "100" and "noise" not in run_tags(cfg)


def _jsonl(run_dir):
    import json

    return [json.loads(line) for line in open(run_dir / "metrics.jsonl")]


def _wandb_leg(out: str, first: bool) -> None:
    """One process of the W&B read-back test (a fresh W&B service each, as a real stop and resume have): the first
    leg loses epoch 1 as a hard kill before W&B wrote it would, and stops after that epoch."""
    import tempfile

    from cmwnet import loggers

    cfg = _cfg(tempfile.gettempdir(), ["wandb"])
    cfg.run.out = out
    if first:
        real_log = loggers.WandbLogger.log
        loggers.WandbLogger.log = lambda self, step, values: None if step == 1 else real_log(self, step, values)
        real_epoch = Trainer._run_epoch

        def run_epoch(self):
            real_epoch(self)
            self._stop_signal = signal.SIGTERM
        Trainer._run_epoch = run_epoch
    try:
        Trainer(cfg, quiet=True).run()
    except SystemExit:
        pass


def test_wandb_offline_read_back_equals_metrics_jsonl_across_a_resume_and_a_lost_epoch(tmp_path):
    """What W&B wrote (its offline .wandb files, read back) holds every epoch of metrics.jsonl once, also when a
    kill cut off an epoch W&B had not written yet: the resume logs it again instead of going on after it."""
    pytest.importorskip("wandb")
    import os
    import subprocess
    import sys
    import time

    from cmwnet import loggers

    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true")
    here = os.path.dirname(os.path.abspath(__file__))
    for first in (True, False):   # each leg in a process of its own
        code = f"import sys; sys.path.insert(0, {here!r}); import test_loggers; " \
               f"test_loggers._wandb_leg({str(tmp_path)!r}, {first})"
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                           cwd=os.path.dirname(here))
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        if first:
            run_id = (tmp_path / "logged" / "wandb_id").read_text()
            assert loggers.wandb_offline_steps(str(tmp_path / "logged"), run_id) == []
    deadline = time.time() + 60      # W&B's service process may write after the run returned: wait for it
    while (steps := loggers.wandb_offline_steps(str(tmp_path / "logged"), run_id)) != [1, 2, 3] and \
            time.time() < deadline:
        time.sleep(0.5)
    assert steps == [1, 2, 3]                                   # epoch 1 logged again, nothing twice
    assert [r["epoch"] + 1 for r in _jsonl(tmp_path / "logged")] == steps


def test_mlflow_read_back_equals_metrics_jsonl_across_a_resume(tmp_path, monkeypatch):
    """MLflow with a local store: one MLflow run across the stop and the resume, every epoch once with the values
    of metrics.jsonl, the run named by its folder, tagged, in the experiment run.project names."""
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    cfg = config_from_dict({"name": "logged", "data": {"name": "digits", "meta": {"kind": "clean", "per_class": 3},
                                                       "noise": {"kind": "sym", "rate": 0.4}},
                            "model": {"name": "digits_mlp"}, "optim": {"epochs": 3}, "method": {"name": "mwnet"},
                            "run": {"out": str(tmp_path), "name": "lr-0.1/s1", "progress": False, "max_steps": 3,
                                    "loggers": ["mlflow"], "project": "cmwnet-test"}})
    with monkeypatch.context() as m:
        _stop_after_first_epoch(m)
        with pytest.raises(SystemExit):
            Trainer(cfg, quiet=True).run()
    Trainer(cfg, quiet=True).run()
    run_dir = tmp_path / "lr-0.1" / "s1"
    client = mlflow.tracking.MlflowClient()
    run = client.get_run((run_dir / "mlflow_id").read_text())
    assert run.info.run_name == "lr-0.1/s1" and run.data.tags["method"] == "mwnet"
    assert client.get_experiment(run.info.experiment_id).name == "cmwnet-test"
    assert len(client.search_runs([run.info.experiment_id])) == 1     # the resume continued the same run
    rows = _jsonl(run_dir)
    for key, tag in (("test_top1", "test/top1"), ("weight_auc", "weights/auc"), ("train_loss", "train/loss")):
        history = sorted(client.get_metric_history(run.info.run_id, tag), key=lambda x: x.step)
        assert [h.step for h in history] == [r["epoch"] + 1 for r in rows] == [1, 2, 3]
        assert [h.value for h in history] == pytest.approx([r[key] for r in rows])
    assert run.data.params["optim.epochs"] == "3"
