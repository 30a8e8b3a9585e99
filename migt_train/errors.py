from contextvars import ContextVar


class MigtError(Exception):
    """A problem the user can fix (bad input file, bad config value, bad checkpoint).

    The runner prints its message as one line and exits non-zero; no traceback is shown. Under
    `migt_train.train()` (a notebook) it is raised to the caller instead (RAISE_ERRORS).
    """


# How a run reports a MigtError, a stop or Ctrl-C: run.py ends the process with one line and an exit
# status; migt_train.train() sets this so that the same code raises them to its caller.
RAISE_ERRORS: ContextVar[bool] = ContextVar("migt_train_raise_errors", default=False)


def raised_within(e: BaseException) -> MigtError | None:
    """The MigtError behind `e`, if any: OmegaConf wraps what a ${migt.*} resolver raises (the message
    names the key) in its own InterpolationResolutionError."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, MigtError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None
