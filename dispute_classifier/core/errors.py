"""The one exception type that the command line turns into a one-line message."""


class UserError(Exception):
    """A problem the user can fix: bad input, a missing file, an unknown name.

    The message must say what is wrong, where (file, row, setting) and what to do.
    The CLI prints it as a single line and exits with status 2, never a traceback.
    """
