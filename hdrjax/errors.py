"""The base class of every error a user can fix: bad config, file, checkpoint or argument.

Every command line catches `HdrjaxError` and prints its message as one line (`error: ...`,
exit status 1: `hdrjax.cli.fail`; argparse keeps 2 for a malformed command line); anything else
is a bug and keeps its traceback.  Each module defines its own
subclass (ImageReadError, CheckpointError, ...) so callers can still tell them apart.
"""


class HdrjaxError(Exception):
    """A problem in the user's input that the message names; shown without a traceback."""


class ConfigError(HdrjaxError, ValueError):
    """A config value that cannot work; the message names the field."""
