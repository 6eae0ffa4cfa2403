// One timed transfer through the TypeScript SDK (its built ESM package), for bench/run's
// faces table.
//
// Usage: node transfer.mjs up|down SANDBOX_ID LOCAL REMOTE   (AIRLOCK_URL and AIRLOCK_TOKEN set)
// Prints the transfer's seconds, timed inside the process so Node's start-up is not
// charged to the SDK, and the bytes it moved.
import { Sandbox } from '../../sdk/typescript/dist/esm/index.js'

const [direction, sandboxId, local, remote] = process.argv.slice(2)
const sandbox = await Sandbox.connect(sandboxId)
const started = performance.now()
let moved = 0
if (direction === 'up') {
  // The SDK's way to send a local file, as Python's `write` of an open file is its own.
  moved = (await sandbox.files.writeFrom(remote, local)).size
} else {
  // The SDK's way to bring a file into a local one, as Python's `read_to` is its own.
  moved = await sandbox.files.readTo(remote, local)
}
console.log(`${((performance.now() - started) / 1000).toFixed(6)} ${moved}`)
