/** A sandbox's files: streamed writes and reads, listings, batches, trees and watches. */

import { constants, openAsBlob } from 'node:fs'
import * as fs from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'

import { type Data, type Progress, counted, knownLength, lengthHeader, lines, toStream } from './body.js'
import { NotFoundError } from './errors.js'
import { FileBody } from './fileBody.js'
import { type CallOptions, type Http, withSignal } from './http.js'
import {
  type ArchiveResult,
  type BatchResult,
  type EntryInfo,
  type SyncResult,
  type WatchEvent,
  type WriteInfo,
  archiveResult,
  batchResult,
  entryInfo,
  watchEvent,
  writeInfo,
} from './models.js'
import { type BatchFile, multipart } from './multipart.js'
import { goesRaw, rawPut } from './rawPut.js'
import { resumableWrite } from './resumable.js'
import { type Mode, type Mtime, filesRoute, flag, modeText, mtimeText } from './routes.js'
import { type ChecksumOptions, checksumFields } from './checksums.js'
import { type Side, plan, rfc3339Seconds } from './syncPlan.js'
import { extractTree, packTree, posixRelative, walkTree } from './tar.js'

/** A content `PUT`'s query: the path and the write's options. */
function putParams(path: string, options: WriteOptions): Record<string, string | undefined> {
  return {
    path,
    mode: options.mode === undefined ? undefined : modeText(options.mode),
    mtime: options.mtime === undefined ? undefined : mtimeText(options.mtime),
    parents: flag(options.parents ?? true),
    overwrite: flag(options.overwrite),
    ...checksumFields(options),
  }
}

/**
 * The daemon's deepest listing, which reaches every entry a path can name: a shallower one
 * would leave a deep tree's bottom out of a sync (resent on every push, never pulled).
 */
const WHOLE_TREE = 2048

/**
 * The daemon's largest listing page. Each page reads again every directory on its cursor's
 * path: a flat directory of 50,000 files took 1.5 s to list in pages of 1,000, 0.35 s in
 * pages of 10,000.
 */
const PAGE = 10_000

export interface WriteOptions extends CallOptions, ChecksumOptions {
  /** Permission bits of the file (default 0644, or the old file's). */
  mode?: Mode
  /** Its modification time. */
  mtime?: Mtime
  /** Make missing parent directories (default true). */
  parents?: boolean
  /** Replace an existing file (default true). */
  overwrite?: boolean
  /**
   * Upload over tus (a string, bytes or a `Blob`, which `fs.openAsBlob` makes of a
   * local file): a dropped connection or a daemon restart is survived by asking where
   * the upload stands and sending the rest.
   */
  resumable?: boolean
  /** Told the bytes sent so far, and the total when known. */
  onProgress?: Progress
}

export interface ReadOptions<F extends 'text' | 'bytes' | 'stream'> extends CallOptions {
  /** `text` (UTF-8), `bytes` (default), or `stream` (a web stream, never held whole). */
  format?: F
  /** Told the bytes received so far, and the file's size. */
  onProgress?: Progress
}

type ReadResult<F> = F extends 'text' ? string : F extends 'stream' ? ReadableStream<Uint8Array> : Uint8Array

export interface SyncOptions extends CallOptions {
  /** Remove what the source side lacks from the other side. */
  delete?: boolean
  /** Mirror the sandbox's `remote` into `local` instead. */
  back?: boolean
  /** Patterns of names or relative paths to leave out (`node_modules`, `*.log`). */
  exclude?: string[]
}

/** Files of one sandbox (`sandbox.files`). */
export class Files {
  constructor(
    private readonly http: Http,
    private readonly sandboxId: string,
  ) {}

  private route(sub = ''): string {
    return filesRoute(this.sandboxId, sub)
  }

  /**
   * Writes `data` to `path`, streamed and committed atomically: readers see the old
   * file or the new one, never half. `data` may be a string, `Uint8Array`,
   * `ArrayBuffer`, `Blob`, web `ReadableStream`, Node `Readable` or async iterable of
   * chunks; none is read whole.
   */
  async write(path: string, data: Data, options: WriteOptions = {}): Promise<WriteInfo> {
    if (options.resumable) return resumableWrite(this.http, this.sandboxId, path, data, options)
    const length = knownLength(data)
    const direct = data instanceof Readable && !options.onProgress
    const body = direct ? data : counted(toStream(data), length, options.onProgress)
    return this.put(path, body, length, options)
  }

  /**
   * Writes the local file `local` to `path`, as `write` does, with its options: the
   * fastest way up. Its size when the upload begins goes as the body's length (a file
   * that shrinks mid-way fails the upload), and it is read into a few buffers that are
   * read into again once the connection has taken them. A file of 8 MiB or more over
   * plain HTTP goes as a raw body, which the daemon moves into the file in the kernel.
   */
  async writeFrom(path: string, local: string, options: WriteOptions = {}): Promise<WriteInfo> {
    if (options.resumable) return this.write(path, await openAsBlob(local), options)
    // Not blocking: opening a FIFO to read would wait for a writer, before it is refused.
    const file = await fs.open(local, constants.O_RDONLY | constants.O_NONBLOCK)
    try {
      const stat = await file.stat()
      if (!stat.isFile()) throw new TypeError(`${local} is not a regular file: give its stream to write instead`)
      const url = this.http.url(this.route('/content'), putParams(path, options))
      if (goesRaw(url, stat.size)) {
        return writeInfo(await rawPut(this.http, url, file, stat.size, options.onProgress, options.signal))
      }
      return await this.put(path, new FileBody(file, stat.size, options.onProgress), stat.size, options)
    } finally {
      await file.close()
    }
  }

  private async put(
    path: string,
    body: ReadableStream<Uint8Array> | Readable | FileBody,
    length: number | undefined,
    options: WriteOptions,
  ): Promise<WriteInfo> {
    const spec = { params: putParams(path, options), body, headers: { 'content-type': 'application/octet-stream', ...lengthHeader(length) } }
    return writeInfo(await this.http.call('PUT', this.route('/content'), withSignal(spec, options)))
  }

  /** A file's content as UTF-8 text, as bytes, or as a web stream. */
  async read<F extends 'text' | 'bytes' | 'stream' = 'bytes'>(
    path: string,
    options: ReadOptions<F> = {},
  ): Promise<ReadResult<F>> {
    const format = options.format ?? 'bytes'
    if (!['text', 'bytes', 'stream'].includes(format)) {
      throw new TypeError(`format ${JSON.stringify(format)} is not text, bytes or stream`)
    }
    const spec = withSignal({ params: { path }, idempotent: true }, options)
    const answer = await this.http.request('GET', this.route('/content'), spec)
    const size = Number(answer.header('content-length') ?? Number.NaN)
    const stream = counted(answer.body.web(), Number.isNaN(size) ? undefined : size, options.onProgress)
    if (format === 'stream') return stream as ReadResult<F>
    const chunks: Uint8Array[] = []
    for await (const chunk of stream) chunks.push(chunk)
    const bytes = new Uint8Array(Buffer.concat(chunks))
    return (format === 'text' ? new TextDecoder().decode(bytes) : bytes) as ReadResult<F>
  }

  /**
   * Streams a file into the local file `local`, as `curl -o` does: made or truncated,
   * then written in order (a device or a pipe works too). Answers the bytes written. A
   * read that fails throws, leaving what was written. The fastest way to bring a large
   * file to this machine: its reads are written out from a few reused buffers.
   */
  async readTo(path: string, local: string, options: CallOptions & { onProgress?: Progress } = {}): Promise<number> {
    const spec = withSignal({ params: { path }, idempotent: true }, options)
    const answer = await this.http.request('GET', this.route('/content'), spec)
    return answer.body.file(local, options.onProgress)
  }

  /** Every entry under `path`, `depth` levels down (default 1), names sorted. */
  async list(path = '/', options: CallOptions & { depth?: number } = {}): Promise<EntryInfo[]> {
    const entries: EntryInfo[] = []
    const params: Record<string, string> = { path, depth: String(options.depth ?? 1), limit: String(PAGE) }
    for (;;) {
      const page = await this.http.call('GET', this.route(), withSignal({ params, idempotent: true }, options))
      entries.push(...(page.entries as object[]).map(entryInfo))
      if (!page.next_cursor) return entries
      params.cursor = page.next_cursor
    }
  }

  /** One entry (a symlink itself, not its target). */
  async stat(path: string, options: CallOptions = {}): Promise<EntryInfo> {
    const spec = withSignal({ params: { path }, idempotent: true }, options)
    return entryInfo(await this.http.call('GET', this.route('/stat'), spec))
  }

  /** Whether `path` exists (a dangling symlink does). */
  async exists(path: string, options: CallOptions = {}): Promise<boolean> {
    try {
      await this.stat(path, options)
      return true
    } catch (error) {
      if (error instanceof NotFoundError) return false
      throw error
    }
  }

  /** Makes a directory (and its parents, unless `parents: false`); fine if it exists. */
  async makeDir(path: string, options: CallOptions & { mode?: Mode; parents?: boolean } = {}): Promise<EntryInfo> {
    const json: Record<string, unknown> = { path, parents: options.parents ?? true }
    if (options.mode !== undefined) json.mode = modeText(options.mode)
    return entryInfo(await this.http.call('POST', this.route('/mkdir'), withSignal({ json }, options)))
  }

  /** Removes a file, or a directory (a non-empty one only with `recursive`). */
  async remove(path: string, options: CallOptions & { recursive?: boolean } = {}): Promise<void> {
    const params = { path, recursive: flag(options.recursive ?? false) }
    await this.http.call('DELETE', this.route(), withSignal({ params, idempotent: true }, options))
  }

  /** Moves `from` to `to` atomically; onto an existing `to` only with `overwrite`. */
  async rename(from: string, to: string, options: CallOptions & { overwrite?: boolean } = {}): Promise<EntryInfo> {
    const json = { from, to, overwrite: options.overwrite ?? false }
    return entryInfo(await this.http.call('POST', this.route('/move'), withSignal({ json }, options)))
  }

  /**
   * Writes many files in one streamed request: each is committed on its own, and one
   * that fails gets its own error in the result while the rest go on. Parent
   * directories are made unless `parents: false`.
   */
  async writeFiles(
    files: readonly BatchFile[],
    options: CallOptions & { parents?: boolean; overwrite?: boolean } = {},
  ): Promise<BatchResult> {
    const { body, contentType } = multipart(files)
    const params = { parents: flag(options.parents ?? true), overwrite: flag(options.overwrite) }
    const spec = withSignal({ params, body, headers: { 'content-type': contentType } }, options)
    return batchResult(await this.http.call('POST', this.route('/batch'), spec))
  }

  /**
   * Sends the tree under `local` into the directory `remote` as one tar stream (modes,
   * mtimes and symlinks kept), extracted all or nothing. `exclude` patterns match names
   * or paths relative to `local`.
   */
  async uploadPath(
    local: string,
    remote: string,
    options: CallOptions & { exclude?: string[]; onProgress?: Progress } = {},
  ): Promise<ArchiveResult> {
    const stream = toStream(packTree(local, walkTree(local, options.exclude)))
    const body = counted(stream, undefined, options.onProgress)
    const spec = withSignal({ params: { path: remote }, body }, options)
    return archiveResult(await this.http.call('PUT', this.route('/archive'), spec))
  }

  /**
   * Brings the tree under `remote` into `local` as one tar stream, extracted as safely
   * as the daemon extracts: nothing lands outside `local`, never through a symlink.
   * Answers the entries written.
   */
  async downloadPath(
    remote: string,
    local: string,
    options: CallOptions & { onProgress?: Progress } = {},
  ): Promise<number> {
    const spec = withSignal({ params: { path: remote }, idempotent: true }, options)
    const answer = await this.http.request('GET', this.route('/archive'), spec)
    return extractTree(counted(answer.body.web(), undefined, options.onProgress), local)
  }

  /**
   * Mirrors `local` into the directory `remote` (or, with `back`, `remote` into
   * `local`): both sides are listed and only entries whose kind, size, mtime or mode
   * differ move, in one tar stream. With `delete`, what the source side lacks is
   * removed from the other. What mirror-mode frameworks call before and after each
   * command, in one call.
   */
  async sync(local: string, remote: string, options: SyncOptions = {}): Promise<SyncResult> {
    const theirs = await this.remoteSides(remote, options)
    const ours = await localSides(local, options.exclude ?? [])
    if (options.back) {
      const todo = plan(theirs, ours, options.delete ?? false)
      for (const rel of todo.delete) await fs.rm(join(local, rel), { recursive: true, force: true })
      if (todo.send.length) {
        const spec = withSignal({ json: { path: remote, paths: todo.send } }, options)
        const answer = await this.http.request('POST', this.route('/archive'), spec)
        await extractTree(answer.body, local)
      }
      const moved = todo.send.reduce((sum, rel) => sum + (theirs.get(rel)?.size ?? 0), 0)
      return { sent: todo.send.length, bytes: moved, deleted: todo.delete.length }
    }
    const todo = plan(ours, theirs, options.delete ?? false)
    if (todo.send.length) {
      await this.makeDir(remote, options)
      const chosen = (async function* () {
        for (const rel of todo.send) yield join(local, rel)
      })()
      const body = toStream(packTree(local, chosen))
      await this.http.call('PUT', this.route('/archive'), withSignal({ params: { path: remote }, body }, options))
    }
    for (const rel of todo.delete) {
      await this.remove(`${remote.replace(/\/+$/, '')}/${rel}`, { ...options, recursive: true })
    }
    const moved = todo.send.reduce((sum, rel) => sum + (ours.get(rel)?.size ?? 0), 0)
    return { sent: todo.send.length, bytes: moved, deleted: todo.delete.length }
  }

  private async remoteSides(remote: string, options: CallOptions): Promise<Map<string, Side>> {
    let entries: EntryInfo[]
    try {
      entries = await this.list(remote, { ...options, depth: WHOLE_TREE })
    } catch (error) {
      if (error instanceof NotFoundError) return new Map()
      throw error
    }
    const base = `${remote.replace(/\/+$/, '')}/`
    const sides = new Map<string, Side>()
    for (const e of entries) {
      const kind = ['file', 'dir', 'symlink'].includes(e.type) ? e.type : 'other'
      const side: Side = { kind, size: e.size, mtime: rfc3339Seconds(e.mtime), mode: e.mode }
      if (e.symlinkTarget !== undefined) side.target = e.symlinkTarget
      sides.set(e.path.slice(base.length), side)
    }
    return sides
  }

  /**
   * Changes under `path` as they happen, as an async iterator; the first event is
   * `ready`, sent once the watch is in place. Leave the loop (or abort) to end it.
   */
  async *watchDir(path: string, options: CallOptions & { recursive?: boolean } = {}): AsyncGenerator<WatchEvent> {
    const params = { path, recursive: flag(options.recursive ?? true) }
    const answer = await this.http.request('GET', this.route('/watch'), withSignal({ params }, options))
    try {
      for await (const line of lines(answer.body)) {
        if (line.trim()) yield watchEvent(JSON.parse(line))
      }
    } finally {
      answer.body.destroy()
    }
  }
}

/** The local side of a mirror: every entry under `local` (an absent root is empty). */
async function localSides(local: string, exclude: readonly string[]): Promise<Map<string, Side>> {
  const sides = new Map<string, Side>()
  try {
    if (!(await fs.stat(local)).isDirectory()) return sides
  } catch {
    return sides
  }
  for await (const path of walkTree(local, exclude)) {
    const info = await fs.lstat(path)
    const rel = posixRelative(local, path)
    if (info.isSymbolicLink()) sides.set(rel, { kind: 'symlink', target: await fs.readlink(path) })
    else if (info.isDirectory()) sides.set(rel, { kind: 'dir' })
    else if (info.isFile()) {
      sides.set(rel, { kind: 'file', size: info.size, mtime: Math.floor(info.mtimeMs / 1000), mode: info.mode & 0o7777 })
    } else sides.set(rel, { kind: 'other' })
  }
  return sides
}
