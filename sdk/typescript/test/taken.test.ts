// A large plain body is taken from the connection past `node:http` (src/bodyStream.ts).
// A stub server on a raw socket says exactly what goes on the wire: how many
// connections were used, a body cut short, a body followed by more bytes than it promised.
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { type AddressInfo, type Server, type Socket, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'

import { DIRECT } from '../src/bodyStream.js'
import { Sandbox } from '../src/index.js'

const SANDBOX = { id: '0123456789ab', template: 'host', state: 'running', created_at: '2026-12-03T00:00:00Z' }

/** What the stub sends for a file's content: the promised length, the bytes, and whether to hang up. */
interface Answer {
  length: number
  bytes: Buffer
  hangUp?: boolean
  /** Told when the kernel has taken the last byte. */
  sent?: () => void
}

interface Stub {
  sandbox: Sandbox
  /** Connections accepted so far. */
  connections(): number
  close(): Promise<void>
}

/** A server that answers each request on a connection in turn (HTTP/1.1, kept alive). */
async function stub(answer: () => Answer): Promise<Stub> {
  const sockets = new Set<Socket>()
  let connections = 0
  const server: Server = createServer((socket: Socket) => {
    connections++
    sockets.add(socket)
    let pending = Buffer.alloc(0)
    socket.on('error', () => {})
    socket.on('data', (data) => {
      pending = Buffer.concat([pending, data])
      for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
        const head = pending.subarray(0, end).toString('latin1')
        pending = pending.subarray(end + 4)
        respond(socket, head)
      }
    })
  })
  function respond(socket: Socket, head: string): void {
    if (!head.includes('/files/content')) {
      const json = JSON.stringify(SANDBOX)
      socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${json.length}\r\n\r\n${json}`)
      return
    }
    const { length, bytes, hangUp, sent } = answer()
    socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: ${length}\r\n\r\n`)
    socket.write(bytes, () => {
      sent?.()
      if (hangUp) setTimeout(() => socket.destroy(), 20)
    })
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const sandbox = await Sandbox.connect(SANDBOX.id, { url: `http://127.0.0.1:${port}`, token: 't' })
  return {
    sandbox,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        for (const socket of sockets) socket.destroy()
      }),
  }
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  for await (const chunk of stream) chunks.push(chunk)
  return Buffer.concat(chunks)
}

test('a large body arrives whole, and its connection is not kept', async () => {
  const content = randomBytes(3 * DIRECT)
  const server = await stub(() => ({ length: content.length, bytes: content }))
  try {
    const before = server.connections()
    for (let i = 0; i < 3; i++) {
      assert.ok(Buffer.from(await server.sandbox.files.read('/f')).equals(content))
    }
    // node:http would have kept connect's connection for all three; a taken body closes
    // its own, so the second and third each open one.
    assert.equal(server.connections() - before, 2)
  } finally {
    await server.close()
  }
})

test('a small body still leaves its connection kept', async () => {
  const content = randomBytes(DIRECT / 2)
  const server = await stub(() => ({ length: content.length, bytes: content }))
  try {
    const before = server.connections()
    for (let i = 0; i < 3; i++) assert.ok(Buffer.from(await server.sandbox.files.read('/f')).equals(content))
    assert.ok(server.connections() - before <= 1)
  } finally {
    await server.close()
  }
})

test('a large body cut short fails, as bytes and as a stream', async () => {
  const sent = randomBytes(2 * DIRECT)
  const server = await stub(() => ({ length: 4 * DIRECT, bytes: sent, hangUp: true }))
  try {
    await assert.rejects(server.sandbox.files.read('/f'))
    const stream = await server.sandbox.files.read('/f', { format: 'stream' })
    let got = 0
    await assert.rejects(async () => {
      for await (const chunk of stream) got += chunk.byteLength
    })
    assert.equal(got, sent.length)
  } finally {
    await server.close()
  }
})

test('bytes past the promised length are not read as the body', async () => {
  const content = randomBytes(2 * DIRECT + 12345)
  const extra = Buffer.alloc(DIRECT, 0xee)
  const server = await stub(() => ({ length: content.length, bytes: Buffer.concat([content, extra]) }))
  try {
    const stream = await server.sandbox.files.read('/f', { format: 'stream' })
    assert.ok((await readAll(stream)).equals(content))
    // And the next call, on a fresh connection, is not confused by them.
    assert.ok((await readAll(await server.sandbox.files.read('/f', { format: 'stream' }))).equals(content))
  } finally {
    await server.close()
  }
})

test('an abort mid-body fails the stream with the abort', async () => {
  const content = randomBytes(64 * DIRECT)
  const server = await stub(() => ({ length: content.length, bytes: content }))
  try {
    const control = new AbortController()
    const stream = await server.sandbox.files.read('/f', { format: 'stream', signal: control.signal })
    let got = 0
    await assert.rejects(
      async () => {
        for await (const chunk of stream) {
          got += chunk.byteLength
          if (got > 2 * DIRECT) control.abort(new Error('enough'))
        }
      },
      { message: 'enough' },
    )
    assert.ok(got < content.length)
  } finally {
    await server.close()
  }
})

test('into a file: a large body arrives whole and exact, or its read fails', async () => {
  const scratch = mkdtempSync(join(tmpdir(), 'airlock-taken-'))
  const content = randomBytes(3 * DIRECT + 777)
  let answer: Answer = { length: content.length, bytes: Buffer.concat([content, Buffer.alloc(DIRECT, 0xee)]) }
  const server = await stub(() => answer)
  try {
    const local = join(scratch, 'f')
    assert.equal(await server.sandbox.files.readTo('/f', local), content.length)
    assert.ok(readFileSync(local).equals(content))
    // Cut short: the read fails, and what came is what the file holds.
    answer = { length: 4 * DIRECT, bytes: content, hangUp: true }
    await assert.rejects(server.sandbox.files.readTo('/f', local))
    assert.ok(readFileSync(local).equals(content))
    // Aborted part-way: the read fails with the abort.
    answer = { length: 64 * DIRECT, bytes: randomBytes(64 * DIRECT) }
    const control = new AbortController()
    const reading = server.sandbox.files.readTo('/f', local, {
      signal: control.signal,
      onProgress: (moved) => {
        if (moved > 2 * DIRECT) control.abort(new Error('enough'))
      },
    })
    await assert.rejects(reading, { message: 'enough' })
  } finally {
    await server.close()
    rmSync(scratch, { recursive: true, force: true })
  }
})

test('into a pipe read slowly, the body waits for the reader instead of filling memory', async () => {
  const scratch = mkdtempSync(join(tmpdir(), 'airlock-taken-'))
  const content = randomBytes(64 * DIRECT)
  let sentAt = 0
  const server = await stub(() => ({ length: content.length, bytes: content, sent: () => (sentAt = Date.now()) }))
  try {
    const fifo = join(scratch, 'fifo')
    execFileSync('mkfifo', [fifo])
    // The reader opens the pipe at once (the SDK's open of it would wait for that), then lags.
    const reader = spawn('sh', ['-c', `exec 3< ${fifo}; sleep 0.5; cat <&3 > /dev/null`], { stdio: 'ignore' })
    const exited = new Promise((done) => reader.once('exit', done))
    const started = Date.now()
    assert.equal(await server.sandbox.files.readTo('/f', fifo), content.length)
    await exited
    // Read ahead without waiting, the server's 64 MiB would all have gone at once.
    assert.ok(sentAt - started >= 400, `the server sent everything after ${sentAt - started} ms`)
  } finally {
    await server.close()
    rmSync(scratch, { recursive: true, force: true })
  }
})

test('as a stream read slowly, the body waits for the reader too', async () => {
  const content = randomBytes(64 * DIRECT)
  let sentAt = 0
  const server = await stub(() => ({ length: content.length, bytes: content, sent: () => (sentAt = Date.now()) }))
  try {
    const started = Date.now()
    const stream = await server.sandbox.files.read('/f', { format: 'stream' })
    const reader = stream.getReader()
    // One chunk, then a pause: the taken reads that follow must stop at the stream's limit.
    await reader.read()
    await new Promise((done) => setTimeout(done, 500))
    let got = 0
    for (let next = await reader.read(); !next.done; next = await reader.read()) got += next.value.byteLength
    assert.ok(got > 0)
    assert.ok(sentAt - started >= 400, `the server sent everything after ${sentAt - started} ms`)
  } finally {
    await server.close()
  }
})
