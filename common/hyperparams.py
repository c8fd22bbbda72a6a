"""Command-line overrides for the UPPER_CASE constants at the top of a script.

Every script keeps its hyperparameters as plain module-level constants, grouped and commented, so
a reader edits them in place. `apply_overrides(globals(), argv)` lets the command line change
exactly those names for one run:

    python 01_basic_autoencoder.py --epochs=3 --code_dim=2 --train_limit=5000

Names are case-insensitive, unknown names and badly typed values are rejected with a one-line
message, every change is echoed, and `--help` lists every name with its default and comment.

Every setting is then checked, edited or overridden, by what its name says it holds (`RULES`:
EPOCHS, BATCH_SIZE, ... are whole numbers of at least 1; MASKING and DROPOUT fractions below 1;
...), and a script adds the checks its own names need (`start(globals(), checks={...})`).
"""

from __future__ import annotations

import ast
import math
import re
import sys
from pathlib import Path
from typing import Any

from common.errors import SettingError

_DEFAULTS_KEY = "__hyperparameter_defaults__"
_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _whole(least: int):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= least


def _number(low: float, high: float, high_included: bool = True):
    def ok(v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        return low <= v <= high if high_included else low <= v < high

    return ok


# What a setting may hold: a test of one value (each item, for a tuple), and its words. None is
# allowed where it is the default (meaning "all" or "automatic").
KINDS = {
    "count": (_whole(1), "a whole number, 1 or more"),
    "count_or_zero": (_whole(0), "a whole number, 0 or more"),
    "fraction": (_number(0, 1), "a fraction between 0 and 1"),
    "fraction_below_one": (_number(0, 1, high_included=False), "a fraction in [0, 1)"),
    "non_negative": (_number(0, math.inf), "a finite number, 0 or more"),
    "positive": (lambda v: _number(0, math.inf)(v) and v > 0, "a finite number above 0"),
    "percentile": (lambda v: _number(0, 100)(v) and 0 < v < 100, "a percentile between 0 and 100"),
}
# The kind of a setting, by the end of its name; the first rule that matches decides.
RULES = (
    (r"PROBE_STEPS$", "count_or_zero"),
    (
        r"(^|_)(EPOCHS|BATCH_SIZE|CODE_DIM|LIMIT|UNITS|STEPS|SIZE|DRAWS|SCENES|LABELS|MASKS|SAMPLES)$",
        "count",
    ),
    (r"(PER_SCENE|PER_EPOCH)$", "count"),
    (r"(^|_)(MASKING|DROPOUT)$", "fraction_below_one"),
    (r"(^|_)(NOISE_FRACTION|SALT_RATIO)$", "fraction"),
    (r"(^|_)(NOISE_STD|WEIGHT_DECAY|L1_WEIGHTS?)$", "non_negative"),
    (r"(^|_)LEARNING_RATE$", "positive"),
    (r"PERCENTILE$", "percentile"),
)


def _imported_in(source_file: str | None) -> set[str]:
    """The names a script imports (`from common.data import TEST_SEED`): constants of other
    modules, not settings of the script."""
    if not source_file or not Path(source_file).is_file():
        return set()
    tree = ast.parse(Path(source_file).read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def hyperparameters(namespace: dict[str, Any]) -> dict[str, Any]:
    """The UPPER_CASE constants a script defines, in the order it defines them."""
    imported = _imported_in(namespace.get("__file__"))
    return {
        name: value
        for name, value in namespace.items()
        if _NAME.match(name)
        and isinstance(value, (bool, int, float, str, tuple, list, type(None)))
        and name not in imported
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
    if (
        isinstance(default, float)
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
    ):
        return float(value)
    if isinstance(default, (tuple, list)) and isinstance(value, (tuple, list, int, float)):
        value = (value,) if isinstance(value, (int, float)) else value
        kinds = {type(item) for item in default}
        # a whole number is a fine float: --sweep_levels=(0,0.5) means (0.0, 0.5)
        if float in kinds:
            value = [float(item) if type(item) is int else item for item in value]
        if kinds and not all(type(item) in kinds for item in value):
            raise bad(
                f"a sequence of {'/'.join(sorted(k.__name__ for k in kinds))} like {default!r}"
            )
        return type(default)(value)
    if default is None and isinstance(value, (int, float, str, tuple, list)):
        return value
    raise bad(f"a {type(default).__name__} like {default!r}")


def kind_of(name: str, checks: dict[str, str] | None = None) -> str | None:
    """The kind of the setting `name` (a key of KINDS): from `checks`, else from RULES."""
    if checks and name in checks:
        return checks[name]
    return next((kind for pattern, kind in RULES if re.search(pattern, name)), None)


def check_settings(
    settings: dict[str, Any], checks: dict[str, str] | None = None, defaults=None
) -> None:
    """Raise SettingError, in one line naming the setting, for the first setting that does not hold
    what its kind says (None passes where it is the default)."""
    for name, value in settings.items():
        kind = kind_of(name, checks)
        if kind is None or (value is None and (defaults or {}).get(name, value) is None):
            continue
        test, words = KINDS[kind]
        several = isinstance(value, (tuple, list))
        if not all(test(item) for item in (value if several else (value,))):
            must = "each must" if several else "must"
            raise SettingError(f"{name}={value!r}: {must} be {words}")


def _comments(source_file: str | None) -> dict[str, str]:
    """Trailing `# comments` of `NAME = value  # comment` lines, for --help; a comment goes on
    over the lines below it that hold only a `#` followed by two spaces or more."""
    if not source_file or not Path(source_file).is_file():
        return {}
    found = {}
    name = None
    for line in Path(source_file).read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)\s*=.*?#\s*(.*)$", line)
        going_on = re.match(r"^#\s{2,}(\S.*)$", line)
        if match and match.group(1) not in found:
            name = match.group(1)
            found[name] = match.group(2)
        elif going_on and name is not None:
            found[name] += " " + going_on.group(1)
        else:
            name = None
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


def apply_overrides(
    namespace: dict[str, Any], argv: list[str] | None = None, checks: dict[str, str] | None = None
) -> dict[str, Any]:
    """Apply `--name=value` arguments to the UPPER_CASE constants of `namespace` (a script's
    `globals()`), check every setting (`check_settings`, with the script's own `checks`), echo
    what changed, and return the resolved hyperparameters.

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
        changes[name] = _parse_value(name, text, defaults[name])
    check_settings({**defaults, **changes}, checks, defaults)
    namespace.update(changes)
    for name, value in changes.items():
        print(f"setting {name} = {value!r} (default {defaults[name]!r})")
    return {name: namespace[name] for name in defaults}
