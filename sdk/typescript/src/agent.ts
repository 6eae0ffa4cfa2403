/**
 * Plain-HTTP connections to the daemon that read up to `READ` bytes at a time.
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

class WideReads extends nodeHttp.Agent {
  override createConnection(options: net.NetConnectOpts): net.Socket {
    let spare: Buffer | undefined
    const socket = net.createConnection({
      ...options,
      onread: {
        buffer: () => (spare ??= Buffer.allocUnsafeSlow(READ)),
        callback: (length: number, buffer: Uint8Array): boolean => {
          let chunk: Buffer
          if (length < KEEP) {
            chunk = Buffer.from(buffer.subarray(0, length))
          } else {
            chunk = Buffer.from(buffer.buffer, buffer.byteOffset, length)
            spare = undefined
          }
          socket.emit('data', chunk)
          return true
        },
      },
    })
    return socket
  }
}

/** Node's global agent's settings (kept alive, most recent socket first), wide reads. */
export const wideAgent: nodeHttp.Agent = new WideReads({ keepAlive: true, scheduling: 'lifo', timeout: 5000 })
