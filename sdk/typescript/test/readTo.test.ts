// `files.readTo` brings a sandbox's file into a local one, as `curl -o` would: whole,
// in order, into a pipe as well as a file, with progress; a read the daemon refuses
// leaves the local file alone.
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'

import { DIRECT } from '../src/bodyStream.js'
import { NotFoundError } from '../src/index.js'
import { useSandbox } from './daemon.js'

const fx = useSandbox()
const scratch = mkdtempSync(join(tmpdir(), 'airlock-readto-'))
after(() => rmSync(scratch, { recursive: true, force: true }))

test('a large file arrives whole, with its progress told', async () => {
  const content = randomBytes(24 * DIRECT + 4321)
  await fx.sandbox.files.write('/workspace/large', content)
  const local = join(scratch, 'large')
  writeFileSync(local, 'an older and longer file '.repeat(2_000_000))
  const told: [number, number | undefined][] = []
  const moved = await fx.sandbox.files.readTo('/workspace/large', local, {
    onProgress: (done, total) => told.push([done, total]),
  })
  assert.equal(moved, content.length)
  assert.ok(readFileSync(local).equals(content))
  assert.ok(told.length > 1)
  assert.ok(told.every(([, total]) => total === content.length))
  const moves = told.map(([done]) => done)
  assert.ok(moves.every((done, at) => at === 0 || done > (moves[at - 1] ?? 0)))
  assert.deepEqual(told.at(-1), [content.length, content.length])
})

test('a small file arrives whole too', async () => {
  await fx.sandbox.files.write('/workspace/small', 'small')
  const local = join(scratch, 'small')
  assert.equal(await fx.sandbox.files.readTo('/workspace/small', local), 5)
  assert.equal(readFileSync(local, 'utf8'), 'small')
})

test('into a pipe read slowly, every byte comes in order', async () => {
  const content = randomBytes(16 * DIRECT)
  await fx.sandbox.files.write('/workspace/piped', content)
  const fifo = join(scratch, 'fifo')
  execFileSync('mkfifo', [fifo])
  // A reader slower than the download: the connection must wait for it, not buffer ahead.
  const reader = spawn('sh', ['-c', `sleep 0.3; sha256sum < ${fifo}`], { stdio: ['ignore', 'pipe', 'inherit'] })
  let sum = ''
  reader.stdout.on('data', (chunk: Buffer) => (sum += chunk.toString()))
  const exited = new Promise((done) => reader.once('exit', done))
  assert.equal(await fx.sandbox.files.readTo('/workspace/piped', fifo), content.length)
  await exited
  assert.equal(sum.split(' ')[0], createHash('sha256').update(content).digest('hex'))
})

test('a file the daemon cannot find leaves the local file alone', async () => {
  const local = join(scratch, 'kept')
  writeFileSync(local, 'kept')
  await assert.rejects(fx.sandbox.files.readTo('/workspace/missing', local), NotFoundError)
  assert.equal(readFileSync(local, 'utf8'), 'kept')
})

test('a local file that cannot be opened fails the read, and the connection pool goes on', async () => {
  await fx.sandbox.files.write('/workspace/large2', randomBytes(4 * DIRECT))
  await assert.rejects(fx.sandbox.files.readTo('/workspace/large2', join(scratch, 'no', 'such', 'dir')), { code: 'ENOENT' })
  for (let i = 0; i < 20; i++) assert.equal(await fx.sandbox.files.read(`/workspace/small`, { format: 'text' }), 'small')
})
