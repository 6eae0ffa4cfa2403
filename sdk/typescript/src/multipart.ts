/**
 * A batch of files as one `multipart/form-data` body, generated as it is sent: each
 * part's filename is its destination, its headers carry mode, mtime and checksums, and
 * its content streams from whatever the caller gave.
 */

import { randomBytes } from 'node:crypto'

import { type Data, toStream } from './body.js'
import { type ChecksumOptions, checksumFields } from './checksums.js'
import { BadRequestError } from './errors.js'
import { type Mode, type Mtime, modeText, mtimeText } from './routes.js'

/** One file of a batch. */
export interface BatchFile extends ChecksumOptions {
  path: string
  data: Data
  mode?: Mode
  mtime?: Mtime
}

const encoder = new TextEncoder()

export function multipart(files: readonly BatchFile[]): { body: ReadableStream<Uint8Array>; contentType: string } {
  for (const f of files) {
    if (/["\r\n]/.test(f.path)) {
      // A filename parameter cannot carry these; write such a file on its own.
      throw new BadRequestError(
        `${JSON.stringify(f.path)}: a batch path cannot hold a quote or a line break; use files.write`,
        'bad_request',
      )
    }
  }
  const boundary = `airlock-${randomBytes(12).toString('hex')}`
  async function* parts(): AsyncGenerator<Uint8Array> {
    for (const f of files) {
      let head = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${f.path}"\r\n`
      head += 'Content-Type: application/octet-stream\r\n'
      if (f.mode !== undefined) head += `X-Airlock-Mode: ${modeText(f.mode)}\r\n`
      if (f.mtime !== undefined) head += `X-Airlock-Mtime: ${mtimeText(f.mtime)}\r\n`
      for (const [name, value] of Object.entries(checksumFields(f))) head += `X-Airlock-${name}: ${value}\r\n`
      yield encoder.encode(`${head}\r\n`)
      yield* toStream(f.data)
      yield encoder.encode('\r\n')
    }
    yield encoder.encode(`--${boundary}--\r\n`)
  }
  return { body: toStream(parts()), contentType: `multipart/form-data; boundary=${boundary}` }
}
