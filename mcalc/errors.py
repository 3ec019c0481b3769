"""Exceptions raised by mcalc for bad input, unavailable resources and a failed book build."""


class DataError(ValueError):
    """Input data that cannot be used: the message names the file, row or column at fault."""

    def _render_traceback_(self) -> list[str]:
        """In a notebook (IPython), the one-line message instead of a traceback: a user's mistake, not a bug."""
        return [f"{type(self).__name__}: {' '.join(str(self).split())}"]


class Busy(RuntimeError):
    """A folder another mcalc run is writing (its lock is held); the message names it and the holder."""


class UnusableImage(DataError):
    """An image file the preprocessing cannot use; ``reason`` is the curation's exclusion reason for it."""

    def __init__(self, message: str, reason: str = "unusable_image") -> None:
        """The message (naming the file) and the exclusion reason."""
        super().__init__(message)
        self.reason = reason


class BookBuildError(RuntimeError):
    """The book could not be built or lacks an item of the paper (not a fault of the input data)."""


class WeightsUnavailable(RuntimeError):
    """Backbone weights that were asked for but cannot be obtained (offline, missing file)."""


class ExclusionWarning(UserWarning):
    """Inputs left out of a step (each named with the reason); the step went on without them."""


class NotebookFailed(RuntimeError):
    """A notebook whose execution stopped at a failing cell; the message is one line naming it and where to look."""
