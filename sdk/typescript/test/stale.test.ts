// A kept-alive connection the server has dropped fails the next request sent on it
// before any answer. The daemon cannot be made to drop one on cue, so a stub does: it
// answers each connection's first request and hangs up on its second, unanswered.
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { test } from 'node:test'

import { Sandbox } from '../src/index.js'

interface Stub {
  url: string
  server: Server
  /** Requests the stub hung up on, as `METHOD path`. */
  dropped: string[]
  /** Bodies of the writes it took. */
  written: string[]
}

const SANDBOX = { id: '0123456789ab', template: 'host', state: 'running', created_at: '2026-12-03T00:00:00Z' }
const FILE = { path: '/workspace/f', name: 'f', type: 'file', size: 5, mode: 420, mtime: '2026-12-03T00:00:00Z' }

async function stub(): Promise<Stub> {
  const served = new WeakMap<Socket, number>()
  const dropped: string[] = []
  const written: string[] = []
  /** True when this request must be dropped: the second on its connection. */
  const drop = (req: IncomingMessage): boolean => {
    const count = (served.get(req.socket) ?? 0) + 1
    served.set(req.socket, count)
    if (count < 2) return false
    dropped.push(`${req.method} ${req.url?.split('?')[0]}`)
    req.socket.destroy()
    return true
  }
  const answer = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const json = (status: number, body: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
      }
      if (req.method === 'PUT') {
        written.push(Buffer.concat(chunks).toString())
        json(200, FILE)
      } else json(req.method === 'POST' ? 201 : 200, SANDBOX)
    })
  }
  const server = createServer((req, res) => {
    if (!drop(req)) answer(req, res)
  })
  // A streamed body asks to continue; it is dropped before it is told to.
  server.on('checkContinue', (req, res) => {
    if (drop(req)) return
    res.writeContinue()
    answer(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}`, server, dropped, written }
}

/**
 * Runs `check` against a fresh stub, after one call (a connect) has left a kept-alive
 * connection for the next request to reuse and be dropped on.
 */
async function onStub(check: (stub: Stub, sandbox: Sandbox) => Promise<void>): Promise<void> {
  const found = await stub()
  try {
    await check(found, await Sandbox.connect(SANDBOX.id, { url: found.url, token: 't' }))
  } finally {
    found.server.close()
  }
}

test('a write dropped on a reused connection before any of it went is sent again', () =>
  onStub(async ({ dropped, written }, sandbox) => {
    const info = await sandbox.files.write('/workspace/f', 'hello')
    assert.equal(info.path, '/workspace/f')
    assert.deepEqual(dropped, [`PUT /v1/sandboxes/${SANDBOX.id}/files/content`])
    assert.deepEqual(written, ['hello'])
  }))

test('a create dropped on a reused connection is not sent twice', () =>
  onStub(async ({ url, dropped }) => {
    // The stub may have taken the create before it hung up: only the caller can know
    // whether sending it again is safe.
    await assert.rejects(Sandbox.create({ url, token: 't' }), { code: 'ECONNRESET' })
    assert.deepEqual(dropped, ['POST /v1/sandboxes'])
  }))

test('a read dropped on a reused connection is sent again', () =>
  onStub(async ({ dropped }, sandbox) => {
    assert.equal((await sandbox.getInfo()).state, 'running')
    assert.deepEqual(dropped, [`GET /v1/sandboxes/${SANDBOX.id}`])
  }))
