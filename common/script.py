"""The frame every numbered script shares: settings, seed and output folder at the start; a
one-line error instead of a traceback for mistakes a reader can fix; a summary at the end."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras

from common import devices, outputs
from common.errors import UserError
from common.hyperparams import apply_overrides

_folder: list[Path] = []  # the output folder of the run in progress, for the Ctrl-C message


def start(namespace: dict[str, Any], argv: list[str] | None) -> tuple[dict[str, Any], Path]:
    """Apply command-line overrides to a script's constants, create (and check) the output folder
    before any work is done, put the run under its STRATEGY (one device by default), and seed
    every random generator with SEED."""
    settings = apply_overrides(namespace, argv)
    folder = outputs.output_dir(namespace["__file__"], settings.get("OUTPUT_DIR"))
    outputs.saved_this_run.clear()
    _folder[:] = [folder]
    where = devices.use_strategy(settings.get("STRATEGY"))
    if settings.get("STRATEGY"):
        print(f"devices: {where}")
    keras.utils.set_random_seed(settings["SEED"])
    return settings, folder


def finish(folder: Path, headline: str, started: float) -> None:
    """One closing line: what was saved where, the headline figure, the time."""
    files = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    print(f"done in {time.perf_counter() - started:.0f} s: {headline}; saved {len(files)} files to {folder}")


def run(main: Callable[[], Any]) -> None:
    """Run a script's main(); a UserError becomes one line on stderr and exit status 2."""
    try:
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print(f"\n{interrupted_message()}", file=sys.stderr)
        raise SystemExit(130) from None


def interrupted_message() -> str:
    """One line for Ctrl-C: what this run kept, and whether a rerun can resume."""
    where = _folder[0] if _folder else None
    saved = sorted({p.name for p in outputs.saved_this_run})
    kept = f"kept {', '.join(saved)}" if saved else "this run saved no files yet"
    if where is not None and (where / ".resume").is_dir():
        then = "run the same command again to resume training where it stopped"
    else:
        then = "a rerun starts training from the beginning"
    return f"interrupted: {kept}; files from earlier runs in {where or 'the output folder'} are complete; {then}"
