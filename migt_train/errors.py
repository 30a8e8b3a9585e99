class MigtError(Exception):
    """A problem the user can fix (bad input file, bad config value, bad checkpoint).

    The runner prints its message as one line and exits non-zero; no traceback is shown.
    """
