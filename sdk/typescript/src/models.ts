/** What the daemon answers, as plain typed records (camelCase), and their readers. */

type Json = Record<string, any>

/** One file, directory or symlink inside a sandbox. */
export interface EntryInfo {
  name: string
  path: string
  /** `file`, `dir`, `symlink` or `other`. */
  type: string
  size: number
  /** Permission bits, as a number (`0o644`). */
  mode: number
  /** RFC 3339. */
  mtime: string
  uid: number
  gid: number
  symlinkTarget?: string
  /** In listings asked for with checksums. */
  sha256?: string
  crc64nvme?: string
}

export function entryInfo(j: Json): EntryInfo {
  const entry: EntryInfo = {
    name: j.name,
    path: j.path,
    type: j.type,
    size: Number(j.size),
    mode: parseInt(String(j.mode), 8),
    mtime: j.mtime,
    uid: Number(j.uid ?? 0),
    gid: Number(j.gid ?? 0),
  }
  if (j.symlink_target != null) entry.symlinkTarget = j.symlink_target
  if (j.sha256 != null) entry.sha256 = j.sha256
  if (j.crc64nvme != null) entry.crc64nvme = j.crc64nvme
  return entry
}

/**
 * A file as written: its entry and the checksums of its whole content: always the
 * CRC-64/NVME (16 hex digits), the SHA-256 when the write asked for one or sent one.
 */
export interface WriteInfo extends EntryInfo {
  crc64nvme: string
}

export function writeInfo(j: Json): WriteInfo {
  return { ...entryInfo(j), crc64nvme: j.crc64nvme }
}

/** One file of a batch: written (`result`) or not (`errorCode`, `error`). */
export interface BatchItem {
  path: string
  result?: WriteInfo
  errorCode?: string
  error?: string
}

/** Per-file results of a batch, in order. */
export interface BatchResult {
  written: number
  failed: number
  results: BatchItem[]
}

export function batchResult(j: Json): BatchResult {
  const results = (j.results as Json[]).map((r) => {
    const item: BatchItem = { path: r.path }
    if (r.result) item.result = writeInfo(r.result)
    if (r.error) {
      item.errorCode = r.error.code
      item.error = r.error.message
    }
    return item
  })
  return { written: Number(j.written), failed: Number(j.failed), results }
}

/** A sandbox as the daemon shows it. */
export interface SandboxInfo {
  sandboxId: string
  template: string
  /** `created`, `running`, `stopped`, ... */
  state: string
  env: Record<string, string>
  labels: Record<string, string>
  limits: Record<string, unknown>
  createdAt: string
  startedAt?: string
  expiresAt?: string
}

export function sandboxInfo(j: Json): SandboxInfo {
  const info: SandboxInfo = {
    sandboxId: j.id,
    template: j.template,
    state: j.state,
    env: { ...(j.env ?? {}) },
    labels: { ...(j.labels ?? {}) },
    limits: { ...(j.limits ?? {}) },
    createdAt: j.created_at,
  }
  if (j.started_at != null) info.startedAt = j.started_at
  if (j.expires_at != null) info.expiresAt = j.expires_at
  return info
}

/** A finished command: its output as text (and exact bytes) and its exit code. */
export interface CommandResult {
  exitCode: number
  stdout: string
  stderr: string
  stdoutBytes: Uint8Array
  stderrBytes: Uint8Array
  /** Killed at its timeout (exit code 124). */
  timedOut: boolean
  /** The buffered output was cut at the daemon's cap. */
  truncated: boolean
}

/** What a tree upload made. */
export interface ArchiveResult {
  path: string
  entries: number
  files: number
  dirs: number
  symlinks: number
  bytes: number
  skipped: Array<Record<string, string>>
}

export function archiveResult(j: Json): ArchiveResult {
  return {
    path: j.path,
    entries: Number(j.entries),
    files: Number(j.files),
    dirs: Number(j.dirs),
    symlinks: Number(j.symlinks),
    bytes: Number(j.bytes),
    skipped: [...(j.skipped ?? [])],
  }
}

/**
 * One change under a watched directory: `ready` first, then `create`, `write`, `remove`,
 * `rename` (with `fromPath`), `chmod`, `overflow` (events were lost: rescan) or `error`.
 * New kinds may appear.
 */
export interface WatchEvent {
  type: string
  path: string
  fromPath?: string
  isDir: boolean
  message?: string
}

export function watchEvent(j: Json): WatchEvent {
  const event: WatchEvent = { type: j.type, path: j.path ?? '', isDir: Boolean(j.dir) }
  if (j.from != null) event.fromPath = j.from
  if (j.message != null) event.message = j.message
  return event
}

/** What a sync moved: entries sent, their bytes, and entries deleted. */
export interface SyncResult {
  sent: number
  bytes: number
  deleted: number
}

/** A process that outlives the call that started it. */
export interface ProcessInfo {
  pid: number
  tag?: string
  cmd: string[]
  cwd: string
  running: boolean
  exitCode?: number
  startedAt: string
}

export function processInfo(j: Json): ProcessInfo {
  const info: ProcessInfo = {
    pid: Number(j.pid),
    cmd: [...j.cmd],
    cwd: j.cwd,
    running: Boolean(j.running),
    startedAt: j.started_at,
  }
  if (j.tag != null) info.tag = j.tag
  if (j.exit_code != null) info.exitCode = Number(j.exit_code)
  return info
}
