"""Property test of the command line's one rule: whatever `--set key=value` a user types, for every
config key, `python -m cmwnet.train` exits 0, or exits 2 with exactly one `error:` line; never a
traceback, and a run that trains says in its result what its config asked for."""
import dataclasses
import json
import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmwnet.config import Config
from cmwnet.errors import run_cli
from cmwnet.train import main

pytestmark = pytest.mark.usefixtures("one_thread")


def config_keys(cls=Config, prefix="") -> list[str]:
    """Every leaf key of the config, dotted (`optim.schedule.gamma`), plus the groups themselves."""
    keys = []
    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        keys.append(prefix + f.name)
        if dataclasses.is_dataclass(tp):
            keys += config_keys(tp, prefix + f.name + ".")
    return keys


KEYS = config_keys()
ODD_TEXT = ["", " ", "none", "null", "~", "-1", "0", "1e400", "-1e400", ".nan", ".inf", "-.inf", "1e-400",
            "true", "[]", "{}", "[1, a]", "{a: 1}", "'", "\"", "[", "{", "../x", "/abs", "..", "ünïcödé",
            "a b", "x" * 300, "0x10", "1_000", "2.5", "-0.0", "9" * 40, "sgd", "cifar10", "resnet8"]
VALUES = st.one_of(
    st.sampled_from(ODD_TEXT),
    st.integers(min_value=-10**12, max_value=10**12).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n\r"),
            max_size=12),
    st.lists(st.integers(-5, 300), max_size=4).map(lambda v: json.dumps(v)),
)
OVERRIDES = st.lists(st.tuples(st.sampled_from(KEYS), VALUES), min_size=1, max_size=3)


def check_one_rule(capsys, argv) -> int:
    capsys.readouterr()
    rc = run_cli(main, argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    if rc != 0:
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), (argv, rc, err)
    return rc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(OVERRIDES)
def test_print_config_obeys_the_one_rule(capsys, overrides):
    argv = ["--print-config"]
    for key, value in overrides:
        argv += ["--set", f"{key}={value}"]
    check_one_rule(capsys, argv)


TINY = ["data.name=digits", "data.augment.normalize=half", "data.augment.flip=false", "model.name=tiny_mlp",
        "optim.epochs=1", "run.max_steps=2", "run.progress=false", "run.plot=false", "run.device=cpu",
        "data.meta.kind=clean", "data.meta.per_class=3", "data.batch_size=64"]
RUN_KEYS = [k for k in KEYS if k.split(".")[0] in ("data", "optim", "method", "ema", "seed")
            and k not in ("data.root", "data.download", "data.name", "optim.epochs")]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(RUN_KEYS), VALUES), min_size=1, max_size=2),
       st.sampled_from(["erm", "mwnet", "cmwnet", "mcw", "l2rw", "cmwnet_sl"]))
def test_a_short_run_obeys_the_one_rule(tmp_path_factory, capsys, overrides, method):
    out = tmp_path_factory.mktemp("fuzz")
    argv = ["--out", str(out), "--quiet", "--set", "name=f", "--set", f"method.name={method}"]
    for s in TINY + ([] if method != "cmwnet_sl" else ["ema.decay=0.9", "method.sl.warmup=0"]):
        argv += ["--set", s]
    for key, value in overrides:
        argv += ["--set", f"{key}={value}"]
    if check_one_rule(capsys, argv) == 0:
        result = json.loads((out / "f" / "result.json").read_text())
        config = (out / "f" / "config.yaml").read_text()
        assert result["epochs"] == 1 and f"name: {result['method']}" in config
