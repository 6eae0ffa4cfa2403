/**
 * Resumable uploads over tus 1.0: the upload is created with its length and metadata,
 * then its bytes go in PATCHes. When one breaks (the connection, a daemon restart), we
 * ask the daemon where the upload stands (HEAD) and send the rest from there.
 */

import type { Data } from './body.js'
import { counted, toStream } from './body.js'
import { AirlockError, ConflictError, NotFoundError } from './errors.js'
import { type Http, readText } from './http.js'
import { type WriteInfo, entryInfo } from './models.js'
import { checksumFields, wantsSha256 } from './checksums.js'
import { filesRoute, flag, modeText, mtimeText, sandboxRoute } from './routes.js'
import type { WriteOptions } from './files.js'

/** Consecutive failed attempts an upload survives (a daemon restart takes a few). */
const ATTEMPTS = 8
const TUS = { 'tus-resumable': '1.0.0' }

/** `data` as something that can be sent again from any offset. */
function sliceable(data: Data): Blob {
  if (typeof data === 'string' || data instanceof Uint8Array || data instanceof ArrayBuffer) {
    return new Blob([data])
  }
  if (data instanceof Blob) return data
  throw new TypeError(
    'a resumable upload must be able to resend from any offset: give a string, bytes or a Blob ' +
      '(fs.openAsBlob(path) for a local file)',
  )
}

function metadata(path: string, options: WriteOptions): string {
  const pairs: Record<string, string | undefined> = {
    path,
    mode: options.mode === undefined ? undefined : modeText(options.mode),
    mtime: options.mtime === undefined ? undefined : mtimeText(options.mtime),
    overwrite: flag(options.overwrite),
    ...checksumFields(options),
  }
  return Object.entries(pairs)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k} ${Buffer.from(v as string).toString('base64')}`)
    .join(',')
}

/** Network failures: the daemon went away, or the connection broke. */
const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED'])

/** A failure worth waiting out: the network, or the daemon answering 5xx. */
function transient(error: unknown): boolean {
  if (error instanceof AirlockError) return (error.status ?? 0) >= 500
  return NETWORK.has((error as { code?: string } | undefined)?.code ?? '')
}

export async function resumableWrite(
  http: Http,
  sandboxId: string,
  path: string,
  data: Data,
  options: WriteOptions,
): Promise<WriteInfo> {
  const blob = sliceable(data)
  const length = blob.size
  const signal = options.signal ? { signal: options.signal } : {}
  const created = await http.request('POST', sandboxRoute(sandboxId, '/uploads'), {
    headers: {
      ...TUS,
      'upload-length': String(length),
      'upload-metadata': metadata(path, options),
    },
    ...signal,
  })
  await readText(created.body)
  const location = new URL(created.header('location') ?? '', http.config.url).toString()
  let offset = 0
  let failures = 0
  let sums: Checksums | undefined
  while (offset < length) {
    try {
      const from = offset
      const onProgress = options.onProgress
      const progress = onProgress ? (sent: number) => onProgress(from + sent, length) : undefined
      const answer = await http.request('PATCH', location, {
        headers: { ...TUS, 'upload-offset': String(offset), 'content-type': 'application/offset+octet-stream' },
        body: counted(toStream(blob.slice(offset)), length - offset, progress),
        ...signal,
      })
      await readText(answer.body)
      offset = Number(answer.header('upload-offset'))
      const crc64nvme = answer.header('x-airlock-crc64nvme')
      if (crc64nvme !== undefined) sums = { crc64nvme, sha256: answer.header('x-airlock-sha256') }
      failures = 0
    } catch (error) {
      if (!transient(error) || ++failures > ATTEMPTS) throw error
      await new Promise((resolve) => setTimeout(resolve, Math.min(200 * 2 ** failures, 5000)))
      try {
        const head = await http.request('HEAD', location, { headers: TUS, ...signal })
        await readText(head.body)
        offset = Number(head.header('upload-offset'))
      } catch (lost) {
        // Gone from the daemon's uploads: the last byte was in and the file was
        // committed before the answer was lost.
        if (lost instanceof NotFoundError) offset = length
        else if (!transient(lost)) throw lost
      }
    }
  }
  const entry = entryInfo(
    await http.call('GET', filesRoute(sandboxId, '/stat'), { params: { path }, idempotent: true, ...signal }),
  )
  if (entry.size !== length) {
    throw new ConflictError(`${path} holds ${entry.size} bytes, not the ${length} sent`, 'conflict')
  }
  sums ??= await checksumsOf(http, sandboxId, path)
  const written: WriteInfo = { ...entry, crc64nvme: sums.crc64nvme }
  if (sums.sha256 !== undefined && wantsSha256(options)) written.sha256 = sums.sha256
  return written
}

interface Checksums {
  crc64nvme: string
  sha256?: string | undefined
}

/**
 * A file's checksums, as the daemon computes them in a listing of its directory (when
 * the answer that carried them was lost).
 */
async function checksumsOf(http: Http, sandboxId: string, path: string): Promise<Checksums> {
  const parent = path.slice(0, path.lastIndexOf('/')) || '/'
  const params: Record<string, string> = { path: parent, checksum: 'true' }
  for (;;) {
    const page = await http.call('GET', filesRoute(sandboxId), { params, idempotent: true })
    for (const e of page.entries as Array<{ path: string; sha256?: string; crc64nvme?: string }>) {
      if (e.path === path && e.crc64nvme) return { crc64nvme: e.crc64nvme, sha256: e.sha256 }
    }
    if (!page.next_cursor) throw new NotFoundError(`${path}: not found`, 'not_found', 404)
    params.cursor = page.next_cursor
  }
}
