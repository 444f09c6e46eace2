"""kmseal: envelope encryption with KMS key wrapping, sealed config documents and secret
stores, with decrypted values in locked, zeroize-on-drop memory.

The same core as the Rust crate and the ``kmseal`` command: keys are URIs
(``local://PATH``, ``aws-kms://ARN``, ``gcp-kms://…``, ``azure-kv://…``, ``vault://…``),
messages and sealed documents are the same bytes. Every call that does cryptography or talks
to a KMS releases the GIL; the ``*_async`` functions run them in a worker thread for asyncio.

Objects made before ``os.fork()`` refuse to work in the child (``ForkError``): create them
after forking (gunicorn ``post_fork``, or in a ``multiprocessing`` worker).
"""

import asyncio
import atexit
import functools
from typing import Any

from ._errors import (
    ConfigError,
    DecryptError,
    Error,
    Finding,
    ForkError,
    InvalidArgumentError,
    InvalidKeyError,
    KmsError,
    RequirementError,
    StoreError,
    TamperedError,
    WipedError,
)
from ._native import (
    BUFFER_PROTOCOL,
    Decryptor,
    Encryptor,
    SecretBytes,
    Secrets,
    SecretString,
    __version__,
    decrypt,
    encrypt,
    get_secret,
    open_config,
)

from . import _native

# A daemon thread still streaming into a path at exit must not leave its temporary file.
atexit.register(_native._remove_in_flight)

__all__ = [
    "BUFFER_PROTOCOL",
    "ConfigError",
    "DecryptError",
    "Decryptor",
    "Encryptor",
    "Error",
    "Finding",
    "ForkError",
    "InvalidArgumentError",
    "InvalidKeyError",
    "KmsError",
    "RequirementError",
    "SecretBytes",
    "SecretString",
    "Secrets",
    "StoreError",
    "TamperedError",
    "WipedError",
    "__version__",
    "decrypt",
    "decrypt_async",
    "encrypt",
    "encrypt_async",
    "get_secret",
    "get_secret_async",
    "open_config",
    "open_config_async",
]


async def _in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    # The native call releases the GIL, so a worker thread lets the event loop run meanwhile.
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))


async def encrypt_async(*args: Any, **kwargs: Any) -> bytes:
    """``encrypt`` in a worker thread (for KMS-backed keys, whose calls take milliseconds)."""
    return await _in_thread(encrypt, *args, **kwargs)


async def decrypt_async(*args: Any, **kwargs: Any) -> SecretBytes:
    """``decrypt`` in a worker thread."""
    return await _in_thread(decrypt, *args, **kwargs)


async def get_secret_async(reference: str) -> SecretBytes:
    """``get_secret`` in a worker thread."""
    return await _in_thread(get_secret, reference)


async def open_config_async(*args: Any, **kwargs: Any) -> Secrets:
    """``open_config`` in a worker thread (it may read several secret stores)."""
    return await _in_thread(open_config, *args, **kwargs)
