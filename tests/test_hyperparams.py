from common.errors import SettingError
from common.hyperparams import apply_overrides, help_text

import pytest


@pytest.fixture
def namespace(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(
        "EPOCHS = 10  # passes over the data\n"
        "LEARNING_RATE = 0.001  # step size\n"
        "TRAIN_LIMIT = None  # first N images\n"
        "DATA = None  # a path\n"
        "NAME = 'run'  # a label\n"
        "USE_BIAS = True  # a switch\n"
        "HIDDEN_UNITS = (512, 256)  # widths\n"
    )
    ns = {"__file__": str(script), "__name__": "script"}
    exec(script.read_text(), ns)
    return ns


def test_no_arguments_keeps_defaults(namespace):
    settings = apply_overrides(namespace, [])
    assert settings == {
        "EPOCHS": 10,
        "LEARNING_RATE": 0.001,
        "TRAIN_LIMIT": None,
        "DATA": None,
        "NAME": "run",
        "USE_BIAS": True,
        "HIDDEN_UNITS": (512, 256),
    }


def test_overrides_are_typed_applied_and_echoed(namespace, capsys):
    settings = apply_overrides(
        namespace,
        [
            "--epochs=3",
            "--learning_rate=1",
            "--train_limit=500",
            "--data=/x/a=b.npz",
            "--use_bias=false",
            "--hidden_units=(64,32)",
            "--NAME=x y",
        ],
    )
    assert namespace["EPOCHS"] == 3 and isinstance(namespace["EPOCHS"], int)
    assert namespace["LEARNING_RATE"] == 1.0 and isinstance(namespace["LEARNING_RATE"], float)
    assert namespace["TRAIN_LIMIT"] == 500
    assert namespace["DATA"] == "/x/a=b.npz"  # a value may contain '='
    assert namespace["USE_BIAS"] is False
    assert namespace["HIDDEN_UNITS"] == (64, 32)
    assert settings["NAME"] == "x y"
    out = capsys.readouterr().out
    assert "EPOCHS = 3 (default 10)" in out and "LEARNING_RATE = 1.0" in out


def test_second_call_starts_from_the_defaults(namespace):
    apply_overrides(namespace, ["--epochs=3"])
    assert apply_overrides(namespace, [])["EPOCHS"] == 10


@pytest.mark.parametrize(
    "arg, words",
    [
        ("--epoch=3", ["--epoch", "unknown setting", "--epochs"]),
        ("--epochs=three", ["--epochs=three", "int"]),
        ("--epochs=2.5", ["--epochs=2.5", "int"]),
        ("--epochs=0", ["EPOCHS=0", "a whole number, 1 or more"]),
        ("--train_limit=-5", ["TRAIN_LIMIT=-5", "a whole number, 1 or more"]),
        (
            "--hidden_units=(64,0)",
            ["HIDDEN_UNITS=(64, 0)", "each must be a whole number, 1 or more"],
        ),
        ("--learning_rate=fast", ["--learning_rate=fast", "float"]),
        ("--use_bias=maybe", ["--use_bias=maybe", "true or false"]),
        ("--hidden_units=(1.5,2)", ["--hidden_units", "int"]),
        ("epochs=3", ["--name=value"]),
    ],
)
def test_bad_settings_are_rejected_with_one_line(namespace, arg, words):
    with pytest.raises(SettingError) as caught:
        apply_overrides(namespace, [arg])
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message
    assert namespace["EPOCHS"] == 10  # nothing applied


def test_help_lists_every_name_with_default_and_comment(namespace, capsys):
    with pytest.raises(SystemExit) as caught:
        apply_overrides(namespace, ["--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    for line in (
        "--epochs",
        "10",
        "passes over the data",
        "--train_limit",
        "None",
        "--hidden_units",
    ):
        assert line in out
    assert help_text(namespace).count("\n  --") == 7


def test_whole_numbers_are_fine_in_a_sequence_of_floats(namespace):
    namespace["LEVELS"] = (0.1, 0.5)
    assert apply_overrides(namespace, ["--levels=(0,1)"])["LEVELS"] == (0.0, 1.0)
    assert apply_overrides(namespace, ["--levels=0.3"])["LEVELS"] == (0.3,)
    with pytest.raises(SettingError, match="sequence of float"):
        apply_overrides(namespace, ["--levels=('a',1)"])
    with pytest.raises(SettingError, match="sequence of int"):
        apply_overrides(namespace, ["--hidden_units=(64,0.5)"])


def test_a_constant_edited_at_the_top_of_the_file_is_checked_too(namespace):
    namespace["EPOCHS"] = 0  # an edit in the file, not a command-line override
    with pytest.raises(SettingError, match="EPOCHS=0: must be a whole number, 1 or more"):
        apply_overrides(namespace, [])


@pytest.mark.parametrize(
    "name, good, bad, words",
    [
        ("MASKING", 0.5, 1.0, "MASKING=1.0: must be a fraction in [0, 1)"),
        (
            "FEW_LABEL_PROBE_STEPS",
            0,
            -1,
            "FEW_LABEL_PROBE_STEPS=-1: must be a whole number, 0 or more",
        ),
        ("LEARNING_RATE", 0.001, 0.0, "LEARNING_RATE=0.0: must be a finite number above 0"),
        ("WEIGHT_DECAY", 0.0, -0.1, "WEIGHT_DECAY=-0.1: must be a finite number, 0 or more"),
        (
            "FEW_LABELS",
            (100, 1000),
            (0,),
            "FEW_LABELS=(0,): each must be a whole number, 1 or more",
        ),
    ],
)
def test_every_setting_is_checked_by_what_its_name_says_it_holds(namespace, name, good, bad, words):
    namespace[name] = good
    assert apply_overrides(namespace, [])[name] == good
    with pytest.raises(SettingError) as caught:
        apply_overrides(namespace, [f"--{name.lower()}={bad!r}"])
    assert str(caught.value) == words


def test_a_script_names_the_kind_of_a_setting_its_name_does_not_say(namespace):
    namespace["SWEEP_LEVELS"] = (0.1, 0.9)
    with pytest.raises(SettingError, match="each must be a fraction between 0 and 1"):
        apply_overrides(
            namespace, ["--sweep_levels=(0.1,1.5)"], checks={"SWEEP_LEVELS": "fraction"}
        )
    # unchecked
    assert apply_overrides(namespace, ["--sweep_levels=(0.1,1.5)"])["SWEEP_LEVELS"] == (0.1, 1.5)
