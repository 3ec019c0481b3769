"""Exceptions raised by mcalc for bad input and unavailable resources."""


class DataError(ValueError):
    """Input data that cannot be used: the message names the file, row or column at fault."""


class WeightsUnavailable(RuntimeError):
    """Backbone weights that were asked for but cannot be obtained (offline, missing file)."""
