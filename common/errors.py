"""Errors a reader can fix: each is shown as one line naming the file or setting, no traceback."""


class UserError(ValueError):
    """Base class: bad input, a bad setting, or an output folder that cannot be written."""


class SettingError(UserError):
    """A hyperparameter or command-line setting that cannot be used."""


class DataError(UserError):
    """A data file that cannot be used."""


class OutputError(UserError):
    """An output folder or file that cannot be written."""


class TrainingError(UserError):
    """Training that went wrong in a way the reader should hear about (e.g. a NaN loss)."""


class MissingChapterError(UserError):
    """A script that goes further needs what its chapter saved, and the chapter has not been run."""
