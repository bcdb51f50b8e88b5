"""The one exception type that stages turn into a clear message and a non-zero exit."""


class InputError(Exception):
    """Bad input from the user: a file, a line, a parameter. The message says what and where."""
