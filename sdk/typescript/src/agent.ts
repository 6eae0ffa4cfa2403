/**
 * Plain-HTTP connections to the daemon that read up to `READ` bytes at a time, and can
 * hand a large body's reads straight to its reader.
 *
 * A Node socket reads 64 KiB at a time, and every read is one trip through `node:http`'s
 * parser, the answer's stream and the SDK's web stream: a 1 GiB download into
 * `/dev/null` took 0.68–0.77 s, against 0.47–0.57 s reading 1 MiB at a time (and 0.16 s
 * for a bare socket reading into one reused buffer, the floor; by hand). A socket given
 * `onread` fills the buffers it is handed, as large as they are, and hands each read
 * to its callback instead of emitting it; the callback emits it as the `data` that
 * `node:http` reads, so the client above it is unchanged. `pause()` and `resume()` still
 * stop and restart the socket's reads (net.Socket handles `onread` sockets itself), so
 * a slow reader still slows the daemon.
 *
 * `node:http`'s parser copies every byte of a body into a buffer of its own (a sixth of
 * a download's CPU in `perf`). So once a large body's head is parsed, `takeReads` sends
 * the connection's further reads to the body's reader instead (`src/bodyStream.ts`,
 * `src/bodyFile.ts`).
 */

import * as nodeHttp from 'node:http'
import * as net from 'node:net'

/** The most one read from a connection takes. */
export const READ = 1 << 20

/**
 * A read shorter than this is copied out and its buffer read into again; a longer one
 * keeps its buffer, and the next read gets a fresh one. So a chunk never holds more than
 * four times its own size alive, and small answers cost one buffer per connection.
 */
const KEEP = READ / 4

/** Where a connection's reads go instead of to `node:http`. */
export interface Taker {
  /**
   * One read: `length` bytes at the start of `buffer`. Unless the taker lends buffers,
   * `buffer` is the taker's to keep.
   */
  read(buffer: Uint8Array, length: number): void
  /** Lends the buffer the next read fills (its own, to read into again once used). */
  lend?(): Uint8Array
}

/** Each wide connection's taker, while a body is taken. */
const takers = new WeakMap<net.Socket, { taker?: Taker }>()

class WideReads extends nodeHttp.Agent {
  override createConnection(options: net.NetConnectOpts): net.Socket {
    let spare: Buffer | undefined
    const slot: { taker?: Taker } = {}
    const socket = net.createConnection({
      ...options,
      onread: {
        buffer: () => slot.taker?.lend?.() ?? (spare ??= Buffer.allocUnsafeSlow(READ)),
        callback: (length: number, buffer: Uint8Array): boolean => {
          const taker = slot.taker
          if (taker?.lend) {
            // The first read after lending began filled the connection's own buffer.
            if (buffer === spare) spare = undefined
            taker.read(buffer, length)
            return true
          }
          let chunk: Buffer
          if (length < KEEP) {
            chunk = Buffer.from(buffer.subarray(0, length))
          } else {
            chunk = Buffer.from(buffer.buffer, buffer.byteOffset, length)
            spare = undefined
          }
          if (taker) taker.read(chunk, length)
          else socket.emit('data', chunk)
          return true
        },
      },
    })
    takers.set(socket, slot)
    return socket
  }
}

/** Whether `socket` is a wide connection, whose reads can be taken. */
export function isWide(socket: net.Socket): boolean {
  return takers.has(socket)
}

/** Sends a wide connection's further reads to `taker` instead of `node:http`. */
export function takeReads(socket: net.Socket, taker: Taker): void {
  const slot = takers.get(socket)
  if (slot) slot.taker = taker
}

/** Node's global agent's settings (kept alive, most recent socket first), wide reads. */
export const wideAgent: nodeHttp.Agent = new WideReads({ keepAlive: true, scheduling: 'lifo', timeout: 5000 })
