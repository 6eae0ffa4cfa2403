/**
 * Airlock's TypeScript SDK: sandboxes on a self-hosted Airlock daemon, their files
 * (streamed both ways, trees as tar streams, mirror mode, watches, resumable uploads)
 * and their commands, over the daemon's REST API with `fetch` and web streams.
 *
 * ```ts
 * import { Sandbox } from '@airlock/sdk'
 * const sandbox = await Sandbox.create()            // AIRLOCK_URL, AIRLOCK_TOKEN
 * await sandbox.files.write('/workspace/a.txt', 'hello')
 * const { stdout } = await sandbox.commands.run('cat /workspace/a.txt')
 * await sandbox.kill()
 * ```
 */

export { Sandbox, type CreateOptions, type InjectedFile } from './sandbox.js'
export { Files, type ReadOptions, type SyncOptions, type WriteOptions } from './files.js'
export { Commands, CommandHandle, type BackgroundOptions, type OnOutput, type RunOptions } from './commands.js'
export type { BatchFile } from './multipart.js'
export type { ChecksumOptions } from './checksums.js'
export type { Data, Progress } from './body.js'
export type { CallOptions } from './http.js'
export type { ConnectionOptions } from './config.js'
export type { Mode, Mtime } from './routes.js'
export type {
  ArchiveResult,
  BatchItem,
  BatchResult,
  CommandResult,
  EntryInfo,
  ProcessInfo,
  SandboxInfo,
  SyncResult,
  WatchEvent,
  WriteInfo,
} from './models.js'
export {
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
} from './errors.js'
