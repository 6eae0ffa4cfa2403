/**
 * Errors the daemon answers: one class per stable error code, all under `AirlockError`,
 * each carrying the code and the HTTP status.
 */

export class AirlockError extends Error {
  /** The daemon's stable code (`not_found`, `conflict`, ...). */
  readonly code: string
  /** The HTTP status, when the error came from an answer. */
  readonly status: number | undefined

  constructor(message: string, code = 'internal', status?: number) {
    super(message)
    this.name = new.target.name
    this.code = code
    this.status = status
  }
}

/** A malformed request, path or argument (400). */
export class BadRequestError extends AirlockError {}
/** No token, or a wrong one (401). */
export class AuthenticationError extends AirlockError {}
/** A read-only target, or outside the caller's scope (403). */
export class PermissionDeniedError extends AirlockError {}
/** No such sandbox, template, process or file (404). */
export class NotFoundError extends AirlockError {}
/** The request body stalled past the daemon's idle timeout (408). */
export class TimeoutError extends AirlockError {}
/** Exists already, or the sandbox or process is in the wrong state (409). */
export class ConflictError extends AirlockError {}
/** Over a size or count limit (413). */
export class TooLargeError extends AirlockError {}
/** An unsatisfiable byte range (416). */
export class BadRangeError extends AirlockError {}
/** A malformed or unsafe archive (422), or one `downloadPath` refused to extract. */
export class BadArchiveError extends AirlockError {}
/** Content did not match its checksum; nothing was committed (460). */
export class ChecksumMismatchError extends AirlockError {}
/** The sandbox's disk quota is exhausted (507). */
export class QuotaExceededError extends AirlockError {}
/** The target kept changing under a lookup; try again (503). */
export class BusyError extends AirlockError {}
/** The tenant is at its cap of watches, commands or uploads; try again soon (429). */
export class TooManyRequestsError extends AirlockError {}

/** A command exited non-zero and the caller asked for that to throw. */
export class CommandExitError extends AirlockError {
  readonly exitCode: number
  readonly stdout: string
  readonly stderr: string

  constructor(exitCode: number, stdout: string, stderr: string) {
    super(`command exited with ${exitCode}: ${stderr.trim().slice(-500)}`, 'exit')
    this.exitCode = exitCode
    this.stdout = stdout
    this.stderr = stderr
  }
}

const BY_CODE: Record<string, new (message: string, code: string, status?: number) => AirlockError> = {
  bad_request: BadRequestError,
  unauthorized: AuthenticationError,
  forbidden: PermissionDeniedError,
  not_found: NotFoundError,
  timeout: TimeoutError,
  conflict: ConflictError,
  too_large: TooLargeError,
  unsupported_media_type: BadRequestError,
  headers_too_large: BadRequestError,
  bad_range: BadRangeError,
  bad_archive: BadArchiveError,
  checksum_mismatch: ChecksumMismatchError,
  disk_quota: QuotaExceededError,
  busy: BusyError,
  too_many_requests: TooManyRequestsError,
}

/** The error for a code; an unknown code (a newer daemon's) is a plain `AirlockError`. */
export function errorFor(code: string, message: string, status?: number): AirlockError {
  const Kind = BY_CODE[code] ?? AirlockError
  return new Kind(message, code, status)
}

/** The error of an answer with status >= 400, from its `{"error": {code, message}}`. */
export function failure(status: number, body: string): AirlockError {
  try {
    const detail = (JSON.parse(body) as { error: { code: string; message: string } }).error
    if (typeof detail.code === 'string' && typeof detail.message === 'string') {
      return errorFor(detail.code, detail.message, status)
    }
  } catch {
    // Not the daemon's JSON: a proxy's page, say. Shown as it is, shortened.
  }
  return new AirlockError(`HTTP ${status}: ${body.trim().slice(0, 500)}`, 'internal', status)
}
