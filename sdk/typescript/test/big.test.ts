// A gibibyte both ways as streams, byte-exact, with this process's and the daemon's
// memory sampled as it moves: neither holds the file.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, test } from 'node:test'

import { Sandbox } from '../src/index.js'
import { type Daemon, rssKib, startDaemon } from './daemon.js'

let daemon: Daemon
before(async () => {
  daemon = await startDaemon()
})
after(async () => daemon.stop())

const GIB = Number(process.env.AIRLOCK_TS_BIG_GIB ?? 1)
const MIB = 1 << 20

test(`${GIB} GiB streamed up and down in flat memory, byte-exact`, async () => {
  const sandbox = await Sandbox.create()
  const block = randomBytes(MIB)
  const total = GIB * 1024
  const sent = createHash('sha256')
  // A stream that makes each MiB as it is asked for: a counter in every block, so no
  // two are alike, and nothing is made ahead of the upload.
  let made = 0
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (made === total) {
        controller.close()
        return
      }
      const chunk = Buffer.from(block)
      chunk.writeUInt32BE(made++, 0)
      sent.update(chunk)
      controller.enqueue(chunk)
    },
  })
  const baseline = { ours: process.memoryUsage().rss, theirs: rssKib(daemon.pid) * 1024 }
  const peak = { ours: baseline.ours, theirs: baseline.theirs }
  const sampler = setInterval(() => {
    peak.ours = Math.max(peak.ours, process.memoryUsage().rss)
    peak.theirs = Math.max(peak.theirs, rssKib(daemon.pid) * 1024)
  }, 50)
  try {
    const written = await sandbox.files.write('/workspace/big.bin', source, { checksum: 'sha256' })
    const want = sent.digest('hex')
    assert.equal(written.size, total * MIB)
    assert.equal(written.sha256, want)
    const got = createHash('sha256')
    let received = 0
    for await (const chunk of await sandbox.files.read('/workspace/big.bin', { format: 'stream' })) {
      got.update(chunk)
      received += chunk.byteLength
    }
    assert.equal(received, total * MIB)
    assert.equal(got.digest('hex'), want)
  } finally {
    clearInterval(sampler)
    await sandbox.kill()
  }
  const grew = { ours: (peak.ours - baseline.ours) / MIB, theirs: (peak.theirs - baseline.theirs) / MIB }
  console.log(`RSS growth moving ${GIB} GiB each way: SDK ${grew.ours.toFixed(0)} MiB, daemon ${grew.theirs.toFixed(0)} MiB`)
  assert.ok(grew.ours < 160, `the SDK's process grew by ${grew.ours.toFixed(0)} MiB`)
  assert.ok(grew.theirs < 64, `the daemon grew by ${grew.theirs.toFixed(0)} MiB`)
})
