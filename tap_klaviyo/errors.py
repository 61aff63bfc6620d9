"""The one error a user sees: a line naming what is wrong and how to fix it (`cli` prints it and exits 1)."""


class KlaviyoError(Exception):
    """A failure the user can act on: its message is one line naming what to fix."""
