class StreamaeError(Exception):
    """A problem the user can fix (bad path, unreadable file, bad option).

    The CLI prints it as one line, `streamae: error: <message>`, without a traceback.
    """

    def __init__(self, message: str, path: object | None = None):
        super().__init__(f"{path}: {message}" if path is not None else message)
        self.path = path
