// One timed transfer through the TypeScript SDK (its built ESM package), for bench/run's
// faces table.
//
// Usage: node transfer.mjs up|down SANDBOX_ID LOCAL REMOTE   (AIRLOCK_URL and AIRLOCK_TOKEN set)
// Prints the transfer's seconds, timed inside the process so Node's start-up is not
// charged to the SDK.
import { createReadStream, createWriteStream } from 'node:fs'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { Sandbox } from '../../sdk/typescript/dist/esm/index.js'

const [direction, sandboxId, local, remote] = process.argv.slice(2)
const sandbox = await Sandbox.connect(sandboxId)
const started = performance.now()
if (direction === 'up') {
  // The SDK's fastest source for a local file (its README says why).
  await sandbox.files.write(remote, createReadStream(local, { highWaterMark: 1 << 20 }))
} else {
  // As the SDK's README shows: Node's own pipeline, not `pipeTo` into `Writable.toWeb`,
  // which took twice as long here.
  const stream = await sandbox.files.read(remote, { format: 'stream' })
  await pipeline(Readable.fromWeb(stream), createWriteStream(local))
}
console.log(((performance.now() - started) / 1000).toFixed(6))
