"""Errors the daemon answers, one class per stable error code, all under AirlockError."""

from __future__ import annotations


class AirlockError(Exception):
    """Anything the daemon refused or failed, with its stable code and HTTP status."""

    def __init__(self, message: str, code: str = "internal", status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class BadRequestError(AirlockError):
    """A malformed request, path or argument (400)."""


class AuthenticationError(AirlockError):
    """No token, or a wrong one (401)."""


class PermissionDeniedError(AirlockError):
    """A read-only target, or outside the caller's scope (403)."""


class NotFoundError(AirlockError):
    """No such sandbox, template or file (404)."""


class TimeoutError(AirlockError):
    """The request body stalled past the daemon's idle timeout (408)."""


class ConflictError(AirlockError):
    """Exists already, or the sandbox is in the wrong state (409)."""


class TooLargeError(AirlockError):
    """Over a size or count limit (413)."""


class BadRangeError(AirlockError):
    """An unsatisfiable byte range (416)."""


class BadArchiveError(AirlockError):
    """A malformed or unsafe archive (422)."""


class ChecksumMismatchError(AirlockError):
    """Content did not match its checksum; nothing was committed (460)."""


class QuotaExceededError(AirlockError):
    """The sandbox's disk quota is exhausted (507)."""


class BusyError(AirlockError):
    """The target kept changing under a lookup; try again (503)."""


class TooManyRequestsError(AirlockError):
    """The tenant is at its cap of watches, commands or uploads; try again soon (429)."""


class CommandExitError(AirlockError):
    """A command exited non-zero and the caller asked for that to raise."""

    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        super().__init__(f"command exited with {exit_code}: {stderr.strip()[-500:]}", "exit")
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr


_BY_CODE: dict[str, type[AirlockError]] = {
    "bad_request": BadRequestError,
    "unauthorized": AuthenticationError,
    "forbidden": PermissionDeniedError,
    "not_found": NotFoundError,
    "timeout": TimeoutError,
    "conflict": ConflictError,
    "too_large": TooLargeError,
    "unsupported_media_type": BadRequestError,
    "headers_too_large": BadRequestError,
    "bad_range": BadRangeError,
    "bad_archive": BadArchiveError,
    "checksum_mismatch": ChecksumMismatchError,
    "disk_quota": QuotaExceededError,
    "busy": BusyError,
    "too_many_requests": TooManyRequestsError,
}


def error_for(code: str, message: str, status: int | None) -> AirlockError:
    """The exception class for a code; an unknown code (a newer daemon) is AirlockError."""
    return _BY_CODE.get(code, AirlockError)(message, code, status)
