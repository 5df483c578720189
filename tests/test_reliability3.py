"""Issue 17, reliability round three: the Python API as strict as the CLI, no silent wrong run, table
options checked before any cell starts. Each test here failed on the code before the fix."""
import json
import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn as nn

import cmwnet
from cmwnet.errors import CmwnetError, run_cli
from cmwnet.train import main as train_main

pytestmark = pytest.mark.usefixtures("one_thread")


def one_error(capsys, main, args, *needles) -> str:
    """Run a CLI main; assert exit 2 with one `error:` line holding every needle; return that line."""
    capsys.readouterr()
    rc = run_cli(main, args)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# -- the command line ------------------------------------------------------------------------------
def test_train_without_arguments_does_not_start_a_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_error(capsys, train_main, [], "--config is needed", "digits_cmwnet")
    assert not (tmp_path / "runs").exists()
