class StreamaeError(Exception):
    """A problem the user can fix (bad path, unreadable file, bad option).

    The CLI prints it as one line, `streamae: error: <message>`, without a traceback.
    """

    def __init__(self, message: str, path: object | None = None):
        super().__init__(f"{path}: {message}" if path is not None else message)
        self.path = path


class BadArgument(StreamaeError, ValueError):
    """An argument with an impossible value (the CLI prints it as one line, like any StreamaeError)."""


class BadArgumentType(StreamaeError, TypeError):
    """An argument of the wrong type."""
