"""The one exception type users see: a sentence naming the file and the problem."""


class RecrouteError(ValueError):
    """Bad input or a failed operation, phrased for the person who caused it.

    The CLI prints the message alone (no traceback) and exits with status 2;
    library users can catch it like any ``ValueError``.
    """
