"""The configuration reference (docs/config-reference.md) is generated from the config dataclasses: every key has a
type, a default and a one-line meaning, and the committed page is the generated one."""
import dataclasses
import os

from cmwnet import config as config_module
from cmwnet.config_reference import main, markdown, rows

PAGE = os.path.join(os.path.dirname(__file__), "..", "docs", "config-reference.md")


def _leaf_keys(cls=config_module.Config, prefix=""):
    import typing

    hints = typing.get_type_hints(cls, vars(config_module))
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _leaf_keys(hints[f.name], prefix + f.name + ".")
        else:
            yield prefix + f.name


def test_every_config_key_is_in_the_reference_with_a_meaning():
    got = {key: meaning for key, _, _, meaning in rows()}
    assert set(got) == set(_leaf_keys())
    assert [k for k, m in got.items() if not m.strip()] == []      # a new key needs its comment in config.py


def test_the_committed_page_is_the_generated_one():
    with open(PAGE, encoding="utf-8") as f:
        assert f.read() == markdown(), "regenerate: python -m cmwnet.config_reference --write docs/config-reference.md"
    assert main(["--check", PAGE]) == 0


def test_defaults_are_the_dataclasses():
    table = {key: default for key, _, default, _ in rows()}
    assert table["optim.lr"] == "0.1" and table["run.name"] == "null" and table["data.name"] == "'digits'"
    assert table["data.augment.flip"] == "true"
