// Reads from a plain-HTTP connection take up to 1 MiB, not a Node socket's 64 KiB
// (src/agent.ts): a download's chunks show it. Small answers, kept-alive connections and
// a reader that lags (the socket paused, then resumed) still work on such connections.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'node:test'

import { READ } from '../src/agent.js'
import { useSandbox } from './daemon.js'

const fx = useSandbox()

const NODE_READ = 64 * 1024

test('a download arrives in reads wider than a socket makes by itself', async () => {
  const content = randomBytes(16 << 20)
  await fx.sandbox.files.write('/workspace/wide', content)
  const chunks: Uint8Array[] = []
  for await (const chunk of await fx.sandbox.files.read('/workspace/wide', { format: 'stream' })) chunks.push(chunk)
  assert.ok(Buffer.concat(chunks).equals(content))
  const widest = Math.max(...chunks.map((chunk) => chunk.byteLength))
  assert.ok(widest > NODE_READ, `the widest chunk was ${widest} bytes`)
  assert.ok(widest <= READ)
})

test('a reader that lags gets every byte, and small calls work after', async () => {
  const content = randomBytes(24 << 20)
  await fx.sandbox.files.write('/workspace/slow', content)
  const chunks: Uint8Array[] = []
  let read = 0
  for await (const chunk of await fx.sandbox.files.read('/workspace/slow', { format: 'stream' })) {
    chunks.push(chunk)
    read += chunk.byteLength
    // Lag for the first few MiB, long enough for the socket to be paused.
    if (read < 4 << 20) await sleep(20)
  }
  assert.ok(Buffer.concat(chunks).equals(content))
  for (let i = 0; i < 50; i++) {
    await fx.sandbox.files.write(`/workspace/small${i}`, `small ${i}`)
    assert.equal(await fx.sandbox.files.read(`/workspace/small${i}`, { format: 'text' }), `small ${i}`)
  }
})
