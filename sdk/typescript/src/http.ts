/**
 * The daemon over HTTP: the bearer token on every request, errors thrown as the
 * daemon's codes, idempotent calls retried while the daemon refuses connections (a
 * restart, say), and every call cancellable by an `AbortSignal`.
 *
 * Built on `node:http`, not `fetch`: Node 20's `fetch` holds a streamed request body in
 * memory as it sends it (a gibibyte upload grows the process by a gibibyte) and gives
 * up on an answer silent for five minutes (a watch, a quiet command). `node:http` has
 * neither problem; the SDK's surface is still web streams.
 */

import * as nodeHttp from 'node:http'
import * as nodeHttps from 'node:https'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'

import type { Config } from './config.js'
import { wideAgent } from './agent.js'
import type { Progress } from './body.js'
import { bodyFile } from './bodyFile.js'
import { bodyStream } from './bodyStream.js'
import { FileBody } from './fileBody.js'
import { failure } from './errors.js'

/** Options every call takes. */
export interface CallOptions {
  /** Aborts the call (and any transfer it is doing). */
  signal?: AbortSignal
}

export interface RequestSpec extends CallOptions {
  params?: Record<string, string | undefined>
  json?: unknown
  body?: ReadableStream<Uint8Array> | Readable | FileBody | Uint8Array | string
  headers?: Record<string, string>
  /** Safe to repeat: tried again while the daemon refuses connections. */
  idempotent?: boolean
}

/** One try of a request: a streamed body is a Node stream by then. */
type OneTry = Omit<RequestSpec, 'body'> & { body?: Readable | FileBody | Uint8Array | string }

/** An answer whose body is read as it arrives. */
export interface Answer {
  status: number
  header(name: string): string | undefined
  body: Streamed
}

/** A streamed answer's body; `destroy` hangs up. */
export interface Streamed extends AsyncIterable<Uint8Array> {
  destroy(): void
  /** The body as a web stream, fed straight from the socket (iterate it or this, once). */
  web(): ReadableStream<Uint8Array>
  /** The body written into the local file `local` (instead of iterated); answers its bytes. */
  file(local: string, onProgress?: Progress): Promise<number>
}

/** Adds the caller's signal to a request, when it gave one. */
export function withSignal<T extends object>(spec: T, options: CallOptions): T & CallOptions {
  return options.signal ? { ...spec, signal: options.signal } : spec
}

/** Tries of an idempotent request whose connection is refused, and the pause between. */
const ATTEMPTS = 3
const BACKOFF_MS = 200

export class Http {
  constructor(readonly config: Config) {}

  /** A route (or a whole URL the daemon handed out) with its query. */
  url(path: string, params?: Record<string, string | undefined>): URL {
    const url = new URL(/^https?:/.test(path) ? path : this.config.url + path)
    for (const [key, value] of Object.entries(params ?? {})) {
      if (value !== undefined) url.searchParams.set(key, value)
    }
    return url
  }

  /**
   * Sends a request and answers as soon as the answer's head is in; an answer of 400 or
   * more is thrown as the daemon's error.
   */
  async request(method: string, path: string, spec: RequestSpec = {}): Promise<Answer> {
    // A streamed body becomes one Node stream for every try: a web stream can be read
    // through only one reader, and a retry must find it unread.
    const body =
      spec.body instanceof ReadableStream
        ? Readable.fromWeb(spec.body as import('node:stream/web').ReadableStream<Uint8Array>)
        : spec.body
    const streamed = isStreamed(body)
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once(method, path, { ...spec, body })
      } catch (error) {
        if (attempt >= ATTEMPTS) throw error
        // A kept-alive connection the daemon had already closed fails the next request
        // sent on it. When nothing was answered and no byte of a streamed body went, the
        // daemon did nothing with it: send it again, at once, on a fresh connection.
        if (stale.has(error as object) && (streamed || spec.idempotent === true)) continue
        const retry = spec.idempotent === true && !streamed
        if (!retry || !refused(error)) throw error
        await new Promise((resolve) => setTimeout(resolve, BACKOFF_MS * attempt))
      }
    }
  }

  /** Sends a request and answers its JSON (undefined for an empty answer). */
  async call(method: string, path: string, spec: RequestSpec = {}): Promise<any> {
    const text = await readText((await this.request(method, path, spec)).body)
    return text ? JSON.parse(text) : undefined
  }

  private once(method: string, path: string, spec: OneTry): Promise<Answer> {
    const url = this.url(path, spec.params)
    const transport = url.protocol === 'https:' ? nodeHttps : nodeHttp
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.config.token}`,
      ...spec.headers,
    }
    if (spec.json !== undefined) headers['content-type'] = 'application/json'
    const body = spec.json !== undefined ? JSON.stringify(spec.json) : spec.body
    const streaming = isStreamed(body)
    // A streamed body waits for the daemon's `100 Continue`, which it sends once it reads
    // the body: a refusal (a token that may not write, a full disk) then comes before
    // any of the body is sent, instead of racing it and being lost to a broken pipe.
    if (streaming) headers.expect = '100-continue'
    return new Promise<Answer>((resolve, reject) => {
      const options: nodeHttp.RequestOptions = { method, headers }
      if (transport === nodeHttp) options.agent = wideAgent
      if (spec.signal) options.signal = spec.signal
      let answered = false
      const request = transport.request(url, options, (answer) => {
        answered = true
        const status = answer.statusCode ?? 0
        const streamedBody = streamed(answer, method, spec.signal)
        if (status < 400) {
          resolve({ status, header: (name) => single(answer.headers[name.toLowerCase()]), body: streamedBody })
          return
        }
        readText(streamedBody).then((text) => reject(failure(status, text)), reject)
      })
      let sending = false
      request.on('error', (error) => {
        if (!answered && !sending && request.reusedSocket && !spec.signal?.aborted && broken(error)) {
          stale.add(error)
        }
        reject(error)
      })
      if (streaming) {
        // The body goes as the daemon takes it: a slow daemon slows the source.
        const source = body
        request.once('continue', () => {
          sending = true
          void send(source)
        })
        // Answered before it asked for the body (a refusal): the body is never sent.
        request.once('response', () => {
          if (!sending && source instanceof Readable) source.destroy()
        })
        request.flushHeaders()
      } else {
        request.end(body)
      }

      function send(source: Readable | FileBody): Promise<void> {
        const sent = source instanceof FileBody ? source.send(request) : pipeline(source, request)
        return sent.catch(
          (error: unknown) => {
            // An answer that came early (a refusal while the body was still going)
            // is the outcome; the body's broken pipe is not.
            if (answered) return
            request.destroy(error as Error)
            reject(error)
          },
        )
      }
    })
  }
}

/** A body sent as the daemon takes it; a local file is read again from its start for each try. */
function isStreamed(body: OneTry['body']): body is Readable | FileBody {
  return body instanceof Readable || body instanceof FileBody
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

/** An answer's chunks; cut short by the caller's abort, it fails with the abort's reason. */
function streamed(answer: nodeHttp.IncomingMessage, method: string, signal: AbortSignal | undefined): Streamed {
  return {
    async *[Symbol.asyncIterator]() {
      try {
        yield* answer
      } catch (error) {
        throw signal?.aborted ? signal.reason : error
      }
    },
    destroy: () => answer.destroy(),
    web: () => bodyStream(answer, method, signal),
    file: (local, onProgress) => bodyFile(answer, method, signal, local, onProgress),
  }
}

/** A whole (small) body as text. */
export async function readText(body: AsyncIterable<Uint8Array>): Promise<string> {
  const chunks: Uint8Array[] = []
  for await (const chunk of body) chunks.push(chunk)
  return Buffer.concat(chunks).toString('utf8')
}

/** Errors of requests that failed on a reused connection before anything of theirs was used. */
const stale = new WeakSet<object>()

/** The connection broke under the request: the peer had closed or reset it. */
function broken(error: unknown): boolean {
  const code = (error as { code?: string } | undefined)?.code
  return code === 'ECONNRESET' || code === 'EPIPE'
}

/** The daemon is not (yet, or any more) listening. */
function refused(error: unknown): boolean {
  const code = (error as { code?: string } | undefined)?.code
  return code === 'ECONNREFUSED' || code === 'ECONNRESET'
}
