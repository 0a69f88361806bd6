"""The one exception type the command line turns into a clean message and a non-zero exit."""


class ModelzoosError(Exception):
    """A problem with the user's input (spec, image data, zoo directory), stated so it can be fixed.

    The message says what is wrong, where (file, key, path) and how to fix it; the CLI prints it
    without a traceback.
    """
