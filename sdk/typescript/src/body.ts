/**
 * What callers hand us to send, as request bodies that stream: text and bytes as they
 * are, a `Blob` (a file from `fs.openAsBlob` too), a web `ReadableStream`, a Node
 * `Readable`, or any async iterable of chunks. Nothing is read whole.
 */

import { Readable } from 'node:stream'

/** Data to write. */
export type Data =
  | string
  | Uint8Array
  | ArrayBuffer
  | Blob
  | ReadableStream<Uint8Array>
  | Readable
  | AsyncIterable<Uint8Array | string>

/** Told the bytes moved so far, and the total when it is known. */
export type Progress = (moved: number, total: number | undefined) => void

/** In-memory data is sent in slices of this size, so progress is told as it goes. */
const SLICE = 1 << 20

const encoder = new TextEncoder()

/** The length of `data` when it is known without reading it. */
export function knownLength(data: Data): number | undefined {
  if (typeof data === 'string') return Buffer.byteLength(data)
  if (data instanceof Uint8Array) return data.byteLength
  if (data instanceof ArrayBuffer) return data.byteLength
  if (data instanceof Blob) return data.size
  return undefined
}

/** `Content-Length` for a body whose length is known, so it goes unframed, not chunked. */
export function lengthHeader(length: number | undefined): Record<string, string> {
  return length === undefined ? {} : { 'content-length': String(length) }
}

/** `data` as a web stream of bytes. */
export function toStream(data: Data): ReadableStream<Uint8Array> {
  if (typeof data === 'string') return slices(encoder.encode(data))
  if (data instanceof Uint8Array) return slices(data)
  if (data instanceof ArrayBuffer) return slices(new Uint8Array(data))
  if (data instanceof Blob) return data.stream() as ReadableStream<Uint8Array>
  if (data instanceof ReadableStream) return data
  if (data instanceof Readable) return fromIterable(data)
  if (data != null && Symbol.asyncIterator in Object(data)) return fromIterable(data)
  throw new TypeError(
    'cannot send this: give a string, Uint8Array, ArrayBuffer, Blob, ReadableStream, ' +
      'Node Readable or async iterable of chunks',
  )
}

function slices(bytes: Uint8Array): ReadableStream<Uint8Array> {
  let at = 0
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= bytes.byteLength) {
        controller.close()
        return
      }
      controller.enqueue(bytes.subarray(at, at + SLICE))
      at += SLICE
    },
  })
}

/** Chunks pulled one at a time, as the reader asks: a slow upload slows the source. */
function fromIterable(chunks: AsyncIterable<Uint8Array | string>): ReadableStream<Uint8Array> {
  const iterator = chunks[Symbol.asyncIterator]()
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await iterator.next()
      if (next.done) {
        controller.close()
        return
      }
      const chunk = next.value
      controller.enqueue(typeof chunk === 'string' ? encoder.encode(chunk) : plainView(chunk))
    },
    async cancel(reason) {
      await iterator.return?.(reason)
    },
  })
}

/**
 * A chunk as a plain `Uint8Array` over the same memory: a Node `Buffer` is one already
 * but compares unequal to one, and copying every chunk cost downloads a copy of each byte.
 */
export function plainView(chunk: Uint8Array): Uint8Array {
  return Object.getPrototypeOf(chunk) === Uint8Array.prototype
    ? chunk
    : new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)
}

/** `stream`, telling `onProgress` of each chunk as it passes. */
export function counted(
  stream: ReadableStream<Uint8Array>,
  total: number | undefined,
  onProgress: Progress | undefined,
): ReadableStream<Uint8Array> {
  if (!onProgress) return stream
  let moved = 0
  return stream.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        moved += chunk.byteLength
        controller.enqueue(chunk)
        onProgress(moved, total)
      },
    }),
  )
}

/** Lines of a byte stream (NDJSON), decoded as UTF-8, without their newline. */
export async function* lines(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder()
  let pending = ''
  for await (const chunk of chunks) {
    pending += decoder.decode(chunk, { stream: true })
    let newline = pending.indexOf('\n')
    while (newline >= 0) {
      yield pending.slice(0, newline)
      pending = pending.slice(newline + 1)
      newline = pending.indexOf('\n')
    }
  }
  pending += decoder.decode()
  if (pending) yield pending
}
