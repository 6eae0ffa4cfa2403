// A create answered `pending` (a cluster's pod not running yet) is waited out. The local
// daemon never answers pending, so a stub plays a cluster-backed one; the gateway's own
// pending behaviour is tested in crates/airlock-cli/tests/kubernetes.rs.
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'

import { NotFoundError, Sandbox } from '../src/index.js'

/** A stub daemon: creates answer pending; GETs answer `states` in turn (`gone` is 404). */
async function stub(states: string[]): Promise<{ url: string; gets: () => number; server: Server }> {
  let gets = 0
  const sandbox = (state: string): string =>
    JSON.stringify({ id: '0123456789ab', template: 'host', state, created_at: '2026-12-02T00:00:00Z' })
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      if (req.method === 'POST') {
        res.writeHead(201, { 'content-type': 'application/json' }).end(sandbox('pending'))
        return
      }
      const state = states[Math.min(gets, states.length - 1)]
      gets += 1
      if (state === 'gone') {
        const error = { error: { code: 'not_found', message: 'sandbox could not be made: no image' } }
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify(error))
      } else {
        res.writeHead(200, { 'content-type': 'application/json' }).end(sandbox(state))
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}`, gets: () => gets, server }
}

test('create waits until the sandbox is no longer pending', async () => {
  const { url, gets, server } = await stub(['pending', 'pending', 'running'])
  try {
    const sandbox = await Sandbox.create({ url, token: 't' })
    assert.equal(sandbox.info.state, 'running')
    assert.equal(gets(), 3)
  } finally {
    server.close()
  }
})

test('a sandbox that could not be made is NotFoundError with the reason', async () => {
  const { url, server } = await stub(['pending', 'gone'])
  try {
    await assert.rejects(Sandbox.create({ url, token: 't' }), (e: unknown) => {
      assert.ok(e instanceof NotFoundError)
      assert.match(String(e), /no image/)
      return true
    })
  } finally {
    server.close()
  }
})

test('an abort ends the wait', async () => {
  const { url, server } = await stub(['pending'])
  try {
    const controller = new AbortController()
    setTimeout(() => controller.abort(new Error('gave up')), 300)
    await assert.rejects(Sandbox.create({ url, token: 't', signal: controller.signal }), /gave up/)
  } finally {
    server.close()
  }
})
