"""The one rule every command line follows (`errors.run_cli`): bad input or a bad environment is one
`error:` line and exit 2; a bug is one line naming the file that holds its traceback, exit 1."""
import errno
import os
import subprocess
import sys

import pytest

from cmwnet import errors
from cmwnet.errors import run_cli
from cmwnet.train import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_line(capsys, rc_expected, fn, argv=None):
    capsys.readouterr()
    rc = run_cli(fn, argv)
    err = capsys.readouterr().err
    assert rc == rc_expected, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def raising(exc):
    def fn(argv):
        raise exc
    return fn


@pytest.mark.parametrize("code,needle", [(errno.ENOSPC, "free disk space"), (errno.EACCES, "permissions"),
                                         (errno.EROFS, "read-only"), (errno.ENAMETOOLONG, "shorter run name")])
def test_a_bad_environment_is_one_line_and_exit_2(capsys, code, needle):
    line = one_line(capsys, 2, raising(OSError(code, os.strerror(code), "/runs/a/checkpoint.pt")))
    assert needle in line and "/runs/a/checkpoint.pt" in line


def test_a_config_that_is_a_folder_or_not_text(tmp_path, capsys):
    assert "a folder is where a file was expected" in one_line(capsys, 2, main, ["--config", str(tmp_path)])
    bad = tmp_path / "c.yaml"
    bad.write_bytes(b"name: \xff\xfe\n")
    assert "not UTF-8" in one_line(capsys, 2, main, ["--config", str(bad)])
    bad.write_text("- a\n- b\n")
    assert "YAML mapping" in one_line(capsys, 2, main, ["--config", str(bad)])


def test_out_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    line = one_line(capsys, 2, main, ["--out", str(f), "--quiet", "--set", "optim.epochs=1",
                                      "--set", "model.name=tiny_mlp", "--set", "run.device=cpu"])
    assert str(f) in line


def test_a_bug_is_one_line_with_its_traceback_in_a_file(tmp_path, capsys):
    errors.set_crash_dir(str(tmp_path))
    try:
        line = one_line(capsys, 1, raising(ValueError("shapes differ")))
    finally:
        errors.set_crash_dir(None)
    assert "internal error, a bug in cmwnet (ValueError: shapes differ)" in line
    path = line.split("the full traceback is in ")[1].split(";")[0]
    assert os.path.dirname(path) == str(tmp_path)
    text = open(path).read()
    assert "Traceback" in text and "ValueError: shapes differ" in text


def test_console_script_goes_through_the_rule():
    with open(os.path.join(REPO, "pyproject.toml")) as f:
        assert 'cmwnet-train = "cmwnet.train:console_main"' in f.read()
    from cmwnet.train import console_main  # noqa: F401


def test_a_closed_pipe_is_silent():
    cmd = f"{sys.executable} -m cmwnet.train --print-config | head -n 1"
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=REPO)
    assert p.stdout.strip() == "name: run" and p.stderr == "", p.stderr
