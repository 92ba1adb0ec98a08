"""Domain errors. Every message says what happened and how to fix it."""


class RagError(Exception):
    """Base class for errors shown to the user as they are."""


class Stopped(Exception):
    """Raised from a progress callback to end the work there, as the person asked. Not a RagError: those are one
    file's failure and the work goes on; this ends it, each step cleaning up after itself on the way out."""


class SettingsError(RagError):
    """A setting has a value the app cannot use."""


class LoaderError(RagError):
    """A file could not be turned into text."""


class StoreError(RagError):
    """The knowledge base could not be read or written."""


class PromptError(RagError):
    """A prompt could not be built (e.g. roles out of order)."""


class BackendError(RagError):
    """The language model failed; ``transient`` errors may succeed on retry."""

    transient = False


class BackendUnavailable(BackendError):
    """The model server cannot be reached."""

    transient = True


class ModelNotFound(BackendError):
    """The model is not installed on the server (never retried)."""


class StreamInterrupted(BackendError):
    """The answer stream broke after it had started."""

    transient = True


class DamagedKnowledgeBase(StoreError):
    """A part of the knowledge base's folder is missing or cannot be read (`rag check --repair` rebuilds it)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind  # "registry missing", "registry damaged", "vectors unreadable"


class DiskFull(StoreError):
    """The disk holding the knowledge base has no room for a write (nothing of it was kept)."""
