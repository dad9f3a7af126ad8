"""What every stage's command line shares: bad input ends it with one line that names the
file, field or option, and exit status 2, instead of a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence

from pixelgan.config import ConfigError
from pixelgan.data.formats import DataFormatError
from pixelgan.data.sources import DataSourceError

BAD_INPUT = (ConfigError, DataFormatError, DataSourceError)
Main = Callable[[Sequence[str]], int]


def command(name: str) -> Callable[[Main], Callable[[Sequence[str] | None], int]]:
    """``main(argv)`` as the command ``name``: its arguments from ``sys.argv`` unless given, a
    bad parameter, data file or data source printed as ``name: error: ...`` with status 2.
    Stages check their input before they write, and write each output atomically, so a
    refused run leaves no file half-written."""
    def wrap(main: Main) -> Callable[[Sequence[str] | None], int]:
        @functools.wraps(main)
        def run(argv: Sequence[str] | None = None) -> int:
            try:
                return main(sys.argv[1:] if argv is None else argv)
            except BAD_INPUT as error:
                print(f"{name}: error: {error}", file=sys.stderr)
                return 2

        return run

    return wrap
