/**
 * An answer's body written into a local file, as `curl -o` writes one: opened for
 * writing (made, or truncated), then written in order, so a device or a pipe works as
 * well as a file. A read that fails leaves what was written and throws.
 *
 * A large plain body (`takeable`, `src/bodyStream.ts`) is read from the connection into
 * 1 MiB buffers of the SDK's own, written out on libuv's threads (all the reads that
 * came while the last write went, in one `writev`) and then read into again. Memory read
 * into again stays in the processor's caches and needs no fresh pages: a 1 GiB download
 * into `/dev/null` took a median 0.25–0.30 s this way, against 0.37 s through a web
 * stream, whose reader must be handed fresh memory each read (curl: 0.21 s; by hand,
 * 8 alternating runs). The connection is paused while `WAITING` reads wait, so a slow
 * disk or pipe slows the download instead of filling memory.
 */

import { writev } from 'node:fs'
import { type FileHandle, open } from 'node:fs/promises'
import type * as nodeHttp from 'node:http'
import type * as net from 'node:net'

import { READ } from './agent.js'
import type { Progress } from './body.js'
import { bodyStream, takeBody, takeable } from './bodyStream.js'

/**
 * Reads of a taken body waiting to be written (beside those being written) before the
 * connection pauses. Values from 3 to 16 measured within one another's spread by hand;
 * fewer pauses stall the daemon's sends less, and 8 holds at most 8 MiB.
 */
const WAITING = 8

export async function bodyFile(
  answer: nodeHttp.IncomingMessage,
  method: string,
  signal: AbortSignal | undefined,
  local: string,
  onProgress: Progress | undefined,
): Promise<number> {
  let file: FileHandle
  try {
    file = await open(local, 'w')
  } catch (error) {
    answer.destroy()
    throw error
  }
  try {
    const total = Number(answer.headers['content-length'] ?? Number.NaN)
    const progress = onProgress && ((moved: number) => onProgress(moved, Number.isNaN(total) ? undefined : total))
    const left = takeable(answer, method)
    return left === undefined
      ? await streamed(bodyStream(answer, method, signal), file, progress)
      : await taken(answer, left, signal, file, progress)
  } finally {
    await file.close()
  }
}

/** Chunks of a web stream written one after another. */
async function streamed(
  stream: ReadableStream<Uint8Array>,
  file: FileHandle,
  progress: ((moved: number) => void) | undefined,
): Promise<number> {
  let moved = 0
  for await (const chunk of stream) {
    await new Promise<void>((done, fail) => writeAll(file.fd, [chunk], (error) => (error ? fail(error) : done())))
    moved += chunk.byteLength
    progress?.(moved)
  }
  return moved
}

/** A body taken from its connection: what `node:http` holds, then `left` bytes more. */
function taken(
  answer: nodeHttp.IncomingMessage,
  left: number,
  signal: AbortSignal | undefined,
  file: FileHandle,
  progress: ((moved: number) => void) | undefined,
): Promise<number> {
  const socket = answer.socket as net.Socket
  return new Promise<number>((resolve, reject) => {
    // Reads waiting to be written, in order, behind the one being written.
    const queue: { buffer: Uint8Array; length: number; own: boolean }[] = []
    const spare: Uint8Array[] = []
    let moved = 0
    let received = false
    let writing = false
    let failed: { error: unknown } | undefined
    // Settles only while no write is under way: the file is closed next, and a write
    // still going could land in whatever file is opened under its descriptor.
    const settle = (): void => {
      if (writing) return
      if (failed) reject(failed.error)
      else if (received && queue.length === 0) resolve(moved)
    }
    const fail = (error: unknown): void => {
      if (failed) return
      failed = { error }
      socket.destroy()
      settle()
    }
    const next = (): void => {
      // Everything that came while the last write went goes in one write: each write is
      // a trip to libuv's threads and back, and a write per read could not keep up.
      const batch = queue.splice(0)
      if (batch.length === 0 || failed) return settle()
      writing = true
      const views = batch.map(({ buffer, length }) => buffer.subarray(0, length))
      writeAll(file.fd, views, (error) => {
        writing = false
        if (error) return fail(error)
        for (const { buffer, length, own } of batch) {
          if (own) spare.push(buffer)
          moved += length
        }
        progress?.(moved)
        if (!received) socket.resume()
        next()
      })
    }
    const add = (buffer: Uint8Array, length: number, own: boolean): void => {
      queue.push({ buffer, length, own })
      if (!writing) next()
    }
    // The connection's end before the body's is reported here, as is the caller's abort.
    answer.once('error', (error) => {
      if (!received) fail(signal?.aborted ? signal.reason : error)
    })
    takeBody(answer, left, {
      lend: () => spare.pop() ?? Buffer.allocUnsafeSlow(READ),
      bytes(buffer, length, lent) {
        add(buffer, length, lent)
        if (queue.length >= WAITING) socket.pause()
      },
      end() {
        received = true
      },
    })
  })
}

/** Writes every byte of `views` at the file's offset, however many calls it takes. */
function writeAll(fd: number, views: Uint8Array[], done: (error: Error | null) => void): void {
  writev(fd, views, (error, written) => {
    if (error) return done(error)
    if (written === 0) return done(new Error('the file took none of the bytes written to it'))
    let left = views
    for (let skip = written; skip > 0 && left.length > 0; ) {
      const first = left[0] as Uint8Array
      if (skip < first.byteLength) {
        left = [first.subarray(skip), ...left.slice(1)]
        break
      }
      skip -= first.byteLength
      left = left.slice(1)
    }
    if (left.length > 0) writeAll(fd, left, done)
    else done(null)
  })
}
