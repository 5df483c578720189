"""User-facing errors: one line that names the problem and the fix, never a traceback.

Library code raises `CmwnetError` for anything a user can fix (a config typo, a missing data set);
command-line entry points wrap `main` in `run_cli`, which prints the message and exits with status 2.
"""
from __future__ import annotations

import argparse
import difflib
import errno
import sys
from typing import Any, Callable, Iterable


class CmwnetError(Exception):
    """An error caused by the user's input; its message says what is wrong and how to fix it."""


class CmwnetValueError(CmwnetError, ValueError):
    """A Python API argument with a value the user can fix (NaN in a batch, a negative count)."""


class CmwnetTypeError(CmwnetError, TypeError):
    """A Python API argument of the wrong type or dtype (float labels, float64 inputs for a float32 model)."""


def closest(name: str, options: Iterable[str]) -> str | None:
    """The option most similar to `name`, or None when nothing is close."""
    match = difflib.get_close_matches(str(name), list(options), n=1, cutoff=0.5)
    return match[0] if match else None


def plural(kind: str) -> str:
    """'loss' -> 'losses', 'lr schedule (optim.schedule.kind)' -> 'lr schedules (optim.schedule.kind)'."""
    head, sep, tail = kind.partition(" (")
    if head.endswith(("s", "x", "ch", "sh")):
        head += "es"
    elif head.endswith("y") and head[-2:-1] not in ("a", "e", "i", "o", "u"):
        head = head[:-1] + "ies"
    else:
        head += "s"
    return head + sep + tail


def unknown_name(kind: str, name: str, options: Iterable[str]) -> CmwnetError:
    """The standard error for a name that is not registered: suggests the closest, lists all."""
    options = sorted(options)
    hint = closest(name, options)
    did_you_mean = f"did you mean '{hint}'? " if hint else ""
    return CmwnetError(f"unknown {kind} '{name}': {did_you_mean}valid {plural(kind)}: {', '.join(options)}")


def check_keys(where: str, given: Iterable[str], valid: Iterable[str], owner: str) -> None:
    """Refuse a key of a free-form mapping (`method.args`, `model.args`, `method.loss_args`) that `owner`
    does not take, naming the closest valid key, as unknown top-level config keys are."""
    valid = sorted(valid)
    for key in given:
        if key in valid:
            continue
        if not valid:
            raise CmwnetError(f"unknown {where} key '{key}': {owner} takes no {where}; drop {where}.{key}")
        hint = closest(str(key), valid)
        did = f"did you mean '{where}.{hint}'? " if hint else ""
        raise CmwnetError(f"unknown {where} key '{key}' for {owner}: {did}valid keys: {', '.join(valid)}")


def check_builder_args(where: str, builder: Any, given: dict, from_data: Iterable[str], owner: str) -> None:
    """`check_keys` for the keyword arguments of a registered builder (a model or loss): the keys its
    signature takes, less those the run sets from the data (refused with a hint); a builder that takes
    **kwargs accepts anything."""
    import inspect

    params = inspect.signature(builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    from_data = tuple(from_data)
    for key in from_data:
        if key in given:
            raise CmwnetError(f"{where}.{key} is set from the data: drop it")
    check_keys(where, given, [p for p in params if p not in from_data + ("self",)], owner)


# a bad environment, not a bug: errno -> the fix to suggest
_ENVIRONMENT_FIXES = {
    errno.ENOSPC: "free disk space or give --out on another disk; an interrupted run resumes where it stopped",
    errno.EDQUOT: "free space within your quota or give --out elsewhere",
    errno.EACCES: "check the permissions, or give --out a folder you can write to",
    errno.EPERM: "check the permissions, or give --out a folder you can write to",
    errno.EROFS: "the file system is read-only: give --out a writable folder",
    errno.ENAMETOOLONG: "use a shorter run name or --out path",
    errno.EISDIR: "a folder is where a file was expected: give the file's path",
    errno.ENOTDIR: "a file is where a folder was expected: check --out, data.root and the run name",
    errno.ENOENT: "check the path",
    errno.EEXIST: "move the existing file or folder away",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n)",
    errno.ENOMEM: "the machine is out of memory: use smaller batches",
}

_crash_dir: str | None = None


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one `error:` line like every other user error (not usage +
    error), pointing at the command's --help."""

    def error(self, message: str):  # type: ignore[override]
        raise CmwnetError(f"{message}: see {self.prog} --help")


def set_crash_dir(path: str | None) -> None:
    """Where `run_cli` writes the traceback of an internal error: the current run folder, once it exists."""
    global _crash_dir
    _crash_dir = path


def _write_traceback() -> str:
    import os
    import tempfile
    import time
    import traceback

    text = traceback.format_exc()
    for folder in (_crash_dir, tempfile.gettempdir()):
        if not folder:
            continue
        path = os.path.join(folder, f"cmwnet-crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt")
        try:
            with open(path, "w") as f:
                f.write(text)
            return path
        except OSError:
            continue
    return "(could not be written: " + text.strip().splitlines()[-1] + ")"


_LINE_BREAKS = {c: repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


def one_line(text: str) -> str:
    """The message with every character a terminal or `str.splitlines` would break a line at written as its escape
    (a value typed with a form feed used to split the one-line error in two)."""
    return "".join(_LINE_BREAKS.get(c, c) for c in text)


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run a command-line main under the project's one rule for what a user sees:

    - input the user can fix (`CmwnetError`) or a bad environment (disk full, permissions, a path
      that is a folder, a file that is not text): one `error:` line naming the problem and the fix,
      exit status 2;
    - an unexpected exception (a bug): one line saying so and where the full traceback was written
      (the run folder when there is one), exit status 1;
    - Ctrl-C: `interrupted`, 130; a closed pipe (`... | head`): silence.
    """
    try:
        return int(main(argv) or 0)
    except CmwnetError as e:
        print(f"error: {one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        import os

        try:   # the reader went away: say nothing more (and keep Python from complaining at exit)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return 141
    except OSError as e:
        if e.errno not in _ENVIRONMENT_FIXES:
            return _internal_error(e)
        where = f" ({e.filename})" if e.filename else ""
        print(f"error: {e.strerror or e}{where}: {_ENVIRONMENT_FIXES[e.errno]}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as e:
        print(f"error: a file that should be text is not UTF-8 ({e.reason} at byte {e.start}): give a UTF-8 "
              "text file (a YAML config, a file list)", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, the traceback to a file
        return _internal_error(e)


def _internal_error(e: BaseException) -> int:
    path = _write_traceback()
    message = str(e).strip().splitlines()[0] if str(e).strip() else ""
    print(f"error: internal error, a bug in cmwnet ({type(e).__name__}: {message[:200]}); the full traceback "
          f"is in {path}; please report it with that file", file=sys.stderr)
    return 1

