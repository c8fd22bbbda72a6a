"""The frame every numbered script shares: settings, seed and output folder at the start; a
one-line error instead of a traceback for mistakes a reader can fix; a summary at the end.

A numbered script is plain top-level code, cut into `# %%` cells at its `## Section` strings, so
it runs as a script (`python 01_basic_autoencoder.py --epochs=3`) and opens as a notebook in
Jupyter or VS Code. `run_chapter` runs one in-process (for the tests), and `chapter_definitions`
gives its constants and functions without running it (for the benchmark, the tests and a reader
who wants a chapter's model in code of their own).
"""

from __future__ import annotations

import ast
import os
import runpy
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import data, devices, outputs
from common.errors import UserError
from common.hyperparams import apply_overrides
from common.training import check_tensorboard

_folder: list[Path] = []  # the output folder of the run in progress, for the Ctrl-C message


def start(
    namespace: dict[str, Any], argv: list[str] | None = None, checks: dict[str, str] | None = None
) -> tuple[dict[str, Any], Path]:
    """Apply command-line overrides to a script's constants and check them, create (and check) the
    output folder before any work is done, put the run under its STRATEGY (one device by default),
    say which backend runs it, and seed every random generator with SEED.

    `argv` defaults to the command line when the script runs as a program, and to no overrides
    in a notebook (whose command line belongs to the notebook's kernel). `checks` names the kind
    of the settings whose names do not say it (`common.hyperparams.KINDS`)."""
    script_file = _script_file(namespace)
    as_program = (
        script_file is not None and Path(sys.argv[0]).resolve() == Path(script_file).resolve()
    )
    if argv is None:
        argv = sys.argv[1:] if as_program else []
    if as_program:
        sys.excepthook = _one_line_errors
    settings = apply_overrides(namespace, argv, checks)
    check_tensorboard(settings.get("TENSORBOARD", False))
    folder = outputs.output_dir(script_file or "notebook", settings.get("OUTPUT_DIR"))
    outputs.saved_this_run.clear()
    _folder[:] = [folder]
    where = devices.use_strategy(settings.get("STRATEGY"))
    print(devices.describe() + (f"; {where}" if settings.get("STRATEGY") else ""))
    devices.set_random_seed(settings["SEED"])
    return settings, folder


def _script_file(namespace: dict[str, Any]) -> str | None:
    """The script's file: `__file__`, or the notebook's own name where Jupyter or VS Code gives
    it."""
    for name in ("__file__", "__vsc_ipynb_file__", "__session__"):
        if namespace.get(name):
            return str(namespace[name])
    return None


def finish(folder: Path, headline: str, started: float) -> None:
    """One closing line: what was saved where, the headline figure, the time."""
    files = [
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not any(
            part.startswith(".") or part == "tensorboard" for part in p.relative_to(folder).parts
        )
    ]
    seconds = time.perf_counter() - started
    line = f"done in {seconds:.0f} s: {headline}; saved {len(files)} files to {folder}"
    if data.sample_in_use:
        line += (
            "; these figures come from the bundled sample of 5,000 training images, not the full "
            "MNIST "
            "(set MNIST_PATH, see the README)"
        )
    print(line)


def run(main: Callable[[], Any]) -> None:
    """Call `main()`; a UserError becomes one line on stderr and exit status 2, Ctrl-C one line
    saying what was kept and exit status 130."""
    try:
        main()
    except (UserError, KeyboardInterrupt) as e:
        _one_line_errors(type(e), e, None, exit=_exit)


def _exit(code: int) -> None:
    raise SystemExit(code) from None


def _one_line_errors(
    kind: type[BaseException], error: BaseException, tb: Any, exit: Callable = os._exit
) -> None:
    """The last word of a script that stopped on an exception (installed as `sys.excepthook`)."""
    if issubclass(kind, UserError):
        message = f"error: {error}"
        code = 2
    elif issubclass(kind, KeyboardInterrupt):
        message = f"\n{interrupted_message()}"
        code = 130
    else:
        sys.__excepthook__(kind, error, tb)
        return
    sys.stdout.flush()
    print(message, file=sys.stderr)
    sys.stderr.flush()
    # os._exit at the top level of a script: its exit status, without TensorFlow's teardown
    exit(code)


def run_chapter(path: str | Path, argv: list[str] | None = None) -> dict[str, Any]:
    """Run a numbered script in this process, as `python path *argv` would (but exceptions go to
    the caller), and return its `metrics`."""
    saved_argv = sys.argv
    sys.argv = [str(path), *(argv or [])]
    try:
        namespace = runpy.run_path(str(path), run_name="__main__")
    finally:
        sys.argv = saved_argv
        sys.excepthook = sys.__excepthook__
    return namespace["metrics"]


def chapter_definitions(path: str | Path) -> types.SimpleNamespace:
    """A numbered script's imports, UPPER_CASE constants and functions, without running it."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    kept = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)
    tree.body = [
        node
        for node in tree.body
        if isinstance(node, kept)
        or (
            isinstance(node, ast.Assign)
            and all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets)
        )
    ]
    namespace: dict[str, Any] = {"__file__": str(path), "__name__": Path(path).stem}
    exec(compile(tree, str(path), "exec"), namespace)  # noqa: S102  (the project's own scripts)
    return types.SimpleNamespace(**namespace)


def interrupted_message() -> str:
    """One line for Ctrl-C: what this run kept, and whether a rerun can resume."""
    where = _folder[0] if _folder else None
    saved = sorted({p.name for p in outputs.saved_this_run})
    kept = f"kept {', '.join(saved)}" if saved else "this run saved no files yet"
    if where is not None and (where / ".resume").is_dir():
        then = "run the same command again to resume training where it stopped"
    else:
        then = "a rerun starts training from the beginning"
    earlier = f"files from earlier runs in {where or 'the output folder'} are complete"
    return f"interrupted: {kept}; {earlier}; {then}"
