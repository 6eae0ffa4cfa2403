/**
 * A large local file sent as a raw body: the daemon's `airlock-body` upgrade.
 *
 * Through `node:http` the daemon's HTTP stack copies each byte out of the socket and
 * again into the file. Here the `PUT` asks for the upgrade instead (`Connection:
 * upgrade`, `Upgrade: airlock-body`, the length in `X-Airlock-Length`, no body); once
 * the daemon has checked everything that could refuse the write it answers `101`, takes
 * exactly that many bytes from the socket into the file with `splice`, and answers as
 * any `PUT` would on the same connection, which then closes. A refusal before the `101`
 * is an ordinary answer.
 */

import type { FileHandle } from 'node:fs/promises'
import * as nodeHttp from 'node:http'
import type * as net from 'node:net'

import type { Progress } from './body.js'
import { AirlockError, failure } from './errors.js'
import { FileBody, type Sink } from './fileBody.js'
import { type Http, readText } from './http.js'

/**
 * Files at least this large go raw: below it, the upgrade's extra round trip and the
 * fresh connection it takes cost more than the copies it saves.
 */
export const RAW_FROM = 8 << 20
/** The `Upgrade` token the daemon knows. */
const PROTOCOL = 'airlock-body'
/** The largest answer read after the body (a write's JSON or an error's). */
const ANSWER_LIMIT = 64 << 10

/** Whether a file of `size` bytes goes raw to `url` (plain HTTP only: TLS has no `splice`). */
export function goesRaw(url: URL, size: number): boolean {
  return url.protocol === 'http:' && size >= RAW_FROM
}

/** Sends `size` bytes of `file` from its start as `url`'s body (a content `PUT`); answers its JSON. */
export function rawPut(
  http: Http,
  url: URL,
  file: FileHandle,
  size: number,
  onProgress: Progress | undefined,
  signal: AbortSignal | undefined,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const request = nodeHttp.request(url, {
      method: 'PUT',
      // A connection of its own: once upgraded it is the body's, and then closes.
      agent: false,
      signal,
      headers: {
        authorization: `Bearer ${http.config.token}`,
        connection: 'upgrade',
        upgrade: PROTOCOL,
        'x-airlock-length': String(size),
      },
    })
    request.on('error', reject)
    // Refused before the go-ahead: an ordinary answer.
    request.on('response', (answer) => {
      readText(answer).then((text) => reject(refusal(answer.statusCode ?? 0, text)), reject)
    })
    request.on('upgrade', (_answer, socket: net.Socket, early: Buffer) => {
      sendBody(socket, early, new FileBody(file, size, onProgress), signal).then(resolve, reject)
    })
    request.end()
  })
}

/** Sends the body on the upgraded `socket` and reads the daemon's answer after it. */
async function sendBody(
  socket: net.Socket,
  early: Buffer,
  body: FileBody,
  signal: AbortSignal | undefined,
): Promise<Record<string, unknown>> {
  const answer = readAnswer(socket, early)
  // Awaited only once the body is sent: a connection that breaks before then must not
  // leave it rejected with nobody listening.
  answer.catch(() => undefined)
  const abort = (): void => {
    socket.destroy(signal?.reason as Error)
  }
  signal?.addEventListener('abort', abort, { once: true })
  try {
    // Bytes after the `101` before any of the body: the daemon answered again (it
    // could not take the connection), and that answer says why.
    if (early.length > 0) return await settled(await answer)
    const sink: Sink = {
      write: (chunk, done) => socket.write(chunk, done),
      // The daemon reads exactly the announced length and answers: no end is sent.
      end: () => undefined,
    }
    try {
      await body.send(sink)
    } catch (error) {
      if (signal?.aborted) throw signal.reason
      // A daemon that gave up mid-way (a full disk) answered before it stopped reading;
      // its answer says more than the broken pipe. A local failure (the file shrank)
      // hangs up, so the daemon sees the body cut and commits nothing.
      if (!connectionBroke(error)) throw error
      const got = await answer.catch(() => undefined)
      if (got === undefined) throw error
      return settled(got)
    }
    return settled(await answer)
  } finally {
    signal?.removeEventListener('abort', abort)
    socket.destroy()
  }
}

/** An HTTP/1.1 answer read off a connection the daemon closes after it. */
interface RawAnswer {
  status: number
  body: string
}

/** Reads the answer the daemon writes on the upgraded connection, `early` its first bytes. */
function readAnswer(socket: net.Socket, early: Buffer): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = early.length > 0 ? [early] : []
    let size = early.length
    let over = false
    const ended = (): void => {
      if (over) return
      over = true
      const parsed = parseAnswer(Buffer.concat(chunks))
      if (parsed) resolve(parsed)
      else reject(new AirlockError('the daemon closed the connection without an answer to the raw body'))
    }
    socket.on('data', (chunk: Buffer) => {
      size += chunk.byteLength
      if (size > ANSWER_LIMIT) {
        socket.destroy(new Error('the answer to a raw body is too large'))
        return
      }
      chunks.push(chunk)
    })
    socket.on('end', ended)
    socket.on('close', ended)
    socket.on('error', (error) => {
      if (over) return
      over = true
      reject(error)
    })
  })
}

/** A whole answer's status and body, or undefined if it is not one. */
function parseAnswer(bytes: Buffer): RawAnswer | undefined {
  const headEnd = bytes.indexOf('\r\n\r\n')
  if (headEnd < 0) return undefined
  const [statusLine, ...fields] = bytes.subarray(0, headEnd).toString('latin1').split('\r\n')
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1])
  if (!Number.isInteger(status)) return undefined
  let body = bytes.subarray(headEnd + 4)
  const length = fields.find((field) => /^content-length\s*:/i.test(field))?.split(':')[1]
  if (length !== undefined) {
    const declared = Number(length.trim())
    if (!(body.byteLength >= declared)) return undefined
    body = body.subarray(0, declared)
  }
  return { status, body: body.toString('utf8') }
}

/** The JSON of a success, or the error the answer carries. */
function settled(answer: RawAnswer): Record<string, unknown> {
  if (answer.status >= 200 && answer.status < 300) return JSON.parse(answer.body) as Record<string, unknown>
  throw refusal(answer.status, answer.body)
}

function refusal(status: number, body: string): Error {
  if (status < 400) {
    // A daemon that did not take the upgrade treated the request as an empty `PUT`.
    return new AirlockError(`the daemon answered HTTP ${status} to a raw body's upgrade`, 'internal', status)
  }
  return failure(status, body)
}

/** The connection failed under the sending, as opposed to the local file. */
function connectionBroke(error: unknown): boolean {
  const code = (error as { code?: string } | undefined)?.code
  return code === 'EPIPE' || code === 'ECONNRESET' || code === 'ERR_STREAM_DESTROYED'
}
