// One timed transfer through the TypeScript SDK (its built ESM package), for bench/run's
// faces table.
//
// Usage: node transfer.mjs up|down SANDBOX_ID LOCAL REMOTE   (AIRLOCK_URL and AIRLOCK_TOKEN set)
// Prints the transfer's seconds, timed inside the process so Node's start-up is not
// charged to the SDK, and the bytes it moved.
import { closeSync, createReadStream, openSync, statSync, writeSync } from 'node:fs'
import { Sandbox } from '../../sdk/typescript/dist/esm/index.js'

const [direction, sandboxId, local, remote] = process.argv.slice(2)
const sandbox = await Sandbox.connect(sandboxId)
const started = performance.now()
let moved = 0
if (direction === 'up') {
  // The SDK's fastest source for a local file (its README says why).
  await sandbox.files.write(remote, createReadStream(local, { highWaterMark: 1 << 20 }))
  moved = statSync(local).size
} else {
  // Written as Python and curl write theirs, one write(2) a chunk: a Node WriteStream
  // hands each 64 KiB chunk to libuv's thread pool, which took longer into /dev/null
  // than the transfer itself.
  const stream = await sandbox.files.read(remote, { format: 'stream' })
  const sink = openSync(local, 'w')
  try {
    for await (const chunk of stream) {
      writeSync(sink, chunk)
      moved += chunk.length
    }
  } finally {
    closeSync(sink)
  }
}
console.log(`${((performance.now() - started) / 1000).toFixed(6)} ${moved}`)
