"""What every hdrjax command line shares: its messages on stderr and its error exit.

One style for all of them: progress as plain lines, problems as `warning: ...` / `error: ...`
(no logger names, no source lines), Python warnings (e.g. io.NonFiniteWarning) shown the same
way, and a `HdrjaxError` (hdrjax.errors) as one `error:` line with exit status 1 (argparse
keeps 2 for a malformed command line).
"""
from __future__ import annotations

import logging
import sys
import warnings

ERROR_EXIT = 1  # the user's input is wrong; argparse exits 2 for a malformed command line


class _LineHandler(logging.Handler):
    """One line per record on whatever sys.stderr is now (tests and notebooks swap it), written
    through tqdm when it is installed so a progress bar stays intact."""

    def emit(self, record):
        try:
            line = self.format(record)
            try:
                from tqdm import tqdm
            except ImportError:  # pragma: no cover - tqdm comes with the dependencies
                sys.stderr.write(line + "\n")
            else:
                tqdm.write(line, file=sys.stderr)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


class _Formatter(logging.Formatter):
    def format(self, record):
        msg = record.getMessage()
        return msg if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {msg}"


def _show_warning(message, category, filename, lineno, file=None, line=None):
    logging.getLogger("hdrjax").warning("%s", message)


def configure_logging(quiet: bool = False) -> None:
    """Route every `hdrjax.*` logger and every Python warning to stderr as one line each.

    quiet=True keeps only warnings and errors.  Calling it again (tests run several CLIs in
    one process) replaces the handler rather than adding a second one.
    """
    handler = _LineHandler()
    handler.setFormatter(_Formatter())
    package = logging.getLogger("hdrjax")
    package.handlers[:] = [handler]
    package.propagate = False
    package.setLevel(logging.WARNING if quiet else logging.INFO)
    warnings.showwarning = _show_warning


def fail(error: BaseException) -> int:
    """Print a user error as one `error:` line; the exit status for `sys.exit`."""
    print("error: " + str(error).replace("\n", " "), file=sys.stderr)
    return ERROR_EXIT
