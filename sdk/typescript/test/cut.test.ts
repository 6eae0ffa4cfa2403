// A download whose connection is lost mid-body must fail, never pass for a whole (short)
// file. The daemon cannot be made to lose one on cue, so a stub does: it promises 1,000
// bytes, sends 500 and hangs up.
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'

import { Sandbox } from '../src/index.js'

const SANDBOX = { id: '0123456789ab', template: 'host', state: 'running', created_at: '2026-12-03T00:00:00Z' }

test('a read cut off mid-body rejects, as bytes and as a stream', async () => {
  const server = createServer((req, res) => {
    if (!req.url?.includes('/files/content')) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(SANDBOX))
      return
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '1000' })
    res.write(Buffer.alloc(500, 7), () => setTimeout(() => req.socket.destroy(), 20))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  try {
    const sandbox = await Sandbox.connect(SANDBOX.id, { url: `http://127.0.0.1:${port}`, token: 't' })
    await assert.rejects(sandbox.files.read('/workspace/f'))
    const stream = await sandbox.files.read('/workspace/f', { format: 'stream' })
    let got = 0
    await assert.rejects(async () => {
      for await (const chunk of stream) got += chunk.byteLength
    })
    assert.equal(got, 500)
  } finally {
    server.close()
  }
})
