"""Command-line overrides for the UPPER_CASE constants at the top of a script.

Every script keeps its hyperparameters as plain module-level constants, grouped and commented, so
a reader edits them in place. `apply_overrides(globals(), argv)` lets the command line change
exactly those names for one run:

    python 01_basic_autoencoder.py --epochs=3 --code_dim=2 --train_limit=5000

Names are case-insensitive, unknown names and badly typed values are rejected with a one-line
message, every change is echoed, and `--help` lists every name with its default and comment.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import Any

from common.errors import SettingError

_DEFAULTS_KEY = "__hyperparameter_defaults__"
_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
# Settings that count things: they must be whole numbers of at least 1 (None allowed where it
# is the default, meaning "all" or "automatic").
_POSITIVE = re.compile(r"(^|_)(EPOCHS|BATCH_SIZE|CODE_DIM|LIMIT|UNITS|STEPS|SIZE|WIDTH)$")


def hyperparameters(namespace: dict[str, Any]) -> dict[str, Any]:
    """The UPPER_CASE constants of a script's namespace, in the order they were defined."""
    return {
        name: value
        for name, value in namespace.items()
        if _NAME.match(name) and isinstance(value, (bool, int, float, str, tuple, list, type(None)))
    }


def _parse_value(name: str, text: str, default: Any) -> Any:
    """Convert `text` to the type of `default`, or raise SettingError naming `name`."""

    def bad(expected: str) -> SettingError:
        return SettingError(f"--{name.lower()}={text}: expected {expected}")

    if isinstance(default, bool):
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise bad("true or false")
    if text.strip() == "None" and default is None:
        return None
    if isinstance(default, str):
        return text
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        if default is None:
            return text  # a None default with no other type to follow: keep the string (a path)
        raise bad(f"a {type(default).__name__} like {default!r}") from None
    if isinstance(default, int) and not isinstance(value, bool) and isinstance(value, int):
        return value
    if isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, (tuple, list)) and isinstance(value, (tuple, list, int, float)):
        value = (value,) if isinstance(value, (int, float)) else value
        kinds = {type(item) for item in default}
        if float in kinds:  # a whole number is a fine float: --sweep_levels=(0,0.5) means (0.0, 0.5)
            value = [float(item) if type(item) is int else item for item in value]
        if kinds and not all(type(item) in kinds for item in value):
            raise bad(f"a sequence of {'/'.join(sorted(k.__name__ for k in kinds))} like {default!r}")
        return type(default)(value)
    if default is None and isinstance(value, (int, float, str, tuple, list)):
        return value
    raise bad(f"a {type(default).__name__} like {default!r}")


def _check_value(name: str, value: Any) -> None:
    """Reject counts of 0 or less (epochs, batch size, code size, ...)."""
    if value is None or not _POSITIVE.search(name):
        return
    items = value if isinstance(value, (tuple, list)) else (value,)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int) or item < 1:
            raise SettingError(f"--{name.lower()}={value}: must be a whole number of at least 1")


def _comments(source_file: str | None) -> dict[str, str]:
    """Trailing `# comments` of `NAME = value  # comment` lines, for --help."""
    if not source_file or not Path(source_file).is_file():
        return {}
    found = {}
    for line in Path(source_file).read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)\s*=.*?#\s*(.*)$", line)
        if match:
            found.setdefault(match.group(1), match.group(2))
    return found


def help_text(namespace: dict[str, Any]) -> str:
    defaults = namespace.get(_DEFAULTS_KEY) or hyperparameters(namespace)
    comments = _comments(namespace.get("__file__"))
    script = Path(namespace.get("__file__") or "script.py").name
    lines = [f"usage: python {script} [--name=value ...]", "", "settings (default, meaning):"]
    width = max((len(n) for n in defaults), default=0) + 2
    for name, value in defaults.items():
        lines.append(f"  --{name.lower():<{width}} {value!r:<14} {comments.get(name, '')}".rstrip())
    return "\n".join(lines)


def apply_overrides(namespace: dict[str, Any], argv: list[str] | None = None) -> dict[str, Any]:
    """Apply `--name=value` arguments to the UPPER_CASE constants of `namespace` (a script's
    `globals()`), echo what changed, and return the resolved hyperparameters.

    Calling it again on the same namespace starts from the original defaults, so a test can run
    `main()` several times in one process. `--help` prints the settings and exits.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    defaults = namespace.setdefault(_DEFAULTS_KEY, dict(hyperparameters(namespace)))
    namespace.update(defaults)
    changes = {}
    for arg in argv:
        if arg in ("-h", "--help"):
            print(help_text(namespace))
            raise SystemExit(0)
        flag = arg[2:].upper().replace("-", "_")
        if arg.startswith("--") and "=" not in arg and isinstance(defaults.get(flag), bool):
            arg += "=true"  # a bare --flag switches a true/false setting on
        if not arg.startswith("--") or "=" not in arg:
            raise SettingError(f"{arg!r}: settings are written --name=value, e.g. --epochs=3")
        key, text = arg[2:].split("=", 1)
        name = key.upper().replace("-", "_")
        if name not in defaults:
            close = [n.lower() for n in defaults if n.startswith(name[:3])]
            hint = f" (did you mean {', '.join('--' + c for c in close)}?)" if close else ""
            raise SettingError(f"--{key}: unknown setting{hint}; --help lists them all")
        value = _parse_value(name, text, defaults[name])
        _check_value(name, value)
        changes[name] = value
    namespace.update(changes)
    for name, value in changes.items():
        print(f"setting {name} = {value!r} (default {defaults[name]!r})")
    return {name: namespace[name] for name in defaults}
