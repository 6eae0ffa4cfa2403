"""Airlock's Python SDK: sandboxes, their files and their commands, async first.

from airlock import Sandbox, AsyncSandbox
with Sandbox.create() as sb:
    sb.files.write("/workspace/hello.txt", "hi")
    print(sb.commands.run("cat /workspace/hello.txt").stdout)
"""

from ._async.sandbox import AsyncSandbox
from ._sync.sandbox import Sandbox
from .errors import (
    AirlockError,
    AuthenticationError,
    BadArchiveError,
    BadRangeError,
    BadRequestError,
    BusyError,
    ChecksumMismatchError,
    CommandExitError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    TimeoutError,
    TooLargeError,
    TooManyRequestsError,
)
from .models import (
    BatchItem,
    BatchResult,
    CommandResult,
    EntryInfo,
    SandboxInfo,
    SyncResult,
    WatchEvent,
    WriteInfo,
)

__all__ = [
    "AirlockError",
    "AsyncSandbox",
    "AuthenticationError",
    "BadArchiveError",
    "BadRangeError",
    "BadRequestError",
    "BatchItem",
    "BatchResult",
    "BusyError",
    "ChecksumMismatchError",
    "CommandExitError",
    "CommandResult",
    "ConflictError",
    "EntryInfo",
    "NotFoundError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "Sandbox",
    "SandboxInfo",
    "SyncResult",
    "TimeoutError",
    "TooLargeError",
    "TooManyRequestsError",
    "WatchEvent",
    "WriteInfo",
]
