"""kmseal's exceptions. None of them ever carries a secret: messages name paths, key ids,
references and kinds of failure, never values."""

from typing import List, NamedTuple, Optional

__all__ = [
    "Error",
    "DecryptError",
    "KmsError",
    "StoreError",
    "InvalidKeyError",
    "InvalidArgumentError",
    "ConfigError",
    "TamperedError",
    "RequirementError",
    "ForkError",
    "WipedError",
    "Finding",
]

_RETRYABLE = {"throttled", "unavailable", "timeout"}


class Error(Exception):
    """Base class of every kmseal error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DecryptError(Error):
    """The message or document did not authenticate, or cannot be opened with these keys:
    tampered, truncated, malformed, not a kmseal message, wrong key, wrong context, unsigned
    where signed was required. Deliberately says no more than the core does."""


class KmsError(Error):
    """A key management service call failed. ``kind`` is one of ``access_denied``,
    ``not_found``, ``disabled``, ``invalid_ciphertext``, ``throttled``, ``unavailable``,
    ``timeout``, ``integrity``, ``other`` (or ``None``); ``retryable`` says whether trying
    again later may help."""

    def __init__(
        self, message: str, *, kind: Optional[str] = None, provider: Optional[str] = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.provider = provider
        self.retryable = kind in _RETRYABLE


class StoreError(Error):
    """A secret store could not deliver a secret, or a reference is invalid. ``kind`` is one of
    ``access_denied``, ``not_found``, ``too_large``, ``unsupported``, ``throttled``,
    ``unavailable``, ``timeout``, ``integrity``, ``other``, ``invalid_reference``, ``shape``
    (or ``None`` for several references at once)."""

    def __init__(
        self, message: str, *, kind: Optional[str] = None, reference: Optional[str] = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.reference = reference
        self.retryable = kind in _RETRYABLE


class InvalidKeyError(Error, ValueError):
    """A key URI does not parse, names a provider this build lacks, or a local key file is
    unusable (missing, wrong owner or mode, a link or FIFO)."""


class InvalidArgumentError(Error, ValueError):
    """An argument is wrong (unknown suite, bad context, frame size, rule); fix the call."""


class ConfigError(Error):
    """A config document does not parse, has bad metadata, or is used the wrong way."""


class TamperedError(ConfigError, DecryptError):
    """A sealed config document was changed after it was sealed (its MACs do not verify)."""


class Finding(NamedTuple):
    """One problem a requirement found: the path, a stable problem name (``missing``,
    ``not_encrypted``, ``empty``, ``too_short``, ``placeholder``, ``low_entropy``,
    ``too_old``, ``age_unknown``, ``due_soon``, ``name_conflict``), a message without the
    value, and whether it is only a warning."""

    path: str
    problem: str
    message: str
    warning: bool


class RequirementError(ConfigError):
    """Start-up requirements not met. ``findings`` lists every failure (never a value)."""

    def __init__(self, message: str, *, findings: Optional[List[Finding]] = None) -> None:
        super().__init__(message)
        self.findings = list(findings or [])


class ForkError(Error):
    """An object made before ``fork()`` was used in the child process, where its keys read as
    zeros. Create encryptors, decryptors, secrets and documents after forking."""


class WipedError(Error, ValueError):
    """A secret (or a ``Secrets`` document) was used after ``wipe()``."""


for _cls in (
    Error, DecryptError, KmsError, StoreError, InvalidKeyError, InvalidArgumentError,
    ConfigError, TamperedError, RequirementError, ForkError, WipedError, Finding,
):
    _cls.__module__ = "kmseal"
del _cls
