// `files.writeFrom` sends a local file as `write` sends data, with every option, and
// fails cleanly on a local file that is not a file or that shrinks mid-way.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'

import { ConflictError, NotFoundError } from '../src/index.js'
import { useSandbox } from './daemon.js'

const fx = useSandbox()
const scratch = mkdtempSync(join(tmpdir(), 'airlock-writefrom-'))
after(() => rmSync(scratch, { recursive: true, force: true }))

function local(name: string, content: Uint8Array | string): string {
  const path = join(scratch, name)
  writeFileSync(path, content)
  return path
}

test('a local file goes up whole, with its options and progress', async () => {
  const content = randomBytes((21 << 20) + 123)
  const told: number[] = []
  const info = await fx.sandbox.files.writeFrom('/workspace/up', local('up', content), {
    mode: 0o600,
    checksum: 'sha256',
    onProgress: (moved, total) => {
      assert.equal(total, content.length)
      told.push(moved)
    },
  })
  assert.equal(info.size, content.length)
  assert.equal(info.sha256, createHash('sha256').update(content).digest('hex'))
  assert.ok(Buffer.from(await fx.sandbox.files.read('/workspace/up')).equals(content))
  assert.equal((await fx.sandbox.files.stat('/workspace/up')).mode & 0o777, 0o600)
  assert.ok(told.length > 1 && told.every((moved, at) => at === 0 || moved > (told[at - 1] ?? 0)))
  assert.equal(told.at(-1), content.length)
})

test('an empty file, and a resumable upload, go up too', async () => {
  assert.equal((await fx.sandbox.files.writeFrom('/workspace/empty', local('empty', ''))).size, 0)
  assert.equal(await fx.sandbox.files.read('/workspace/empty', { format: 'text' }), '')
  const content = randomBytes(3 << 20)
  await fx.sandbox.files.writeFrom('/workspace/resumed', local('resumed', content), { resumable: true })
  assert.ok(Buffer.from(await fx.sandbox.files.read('/workspace/resumed')).equals(content))
})

test('a refusal comes back as the daemon\'s error, and the connection goes on', async () => {
  const path = local('refused', randomBytes(8 << 20))
  await fx.sandbox.files.writeFrom('/workspace/taken', path)
  await assert.rejects(fx.sandbox.files.writeFrom('/workspace/taken', path, { overwrite: false }), ConflictError)
  await assert.rejects(fx.sandbox.files.writeFrom('/workspace/taken', path, { sha256: '0'.repeat(64) }))
  assert.equal((await fx.sandbox.files.stat('/workspace/taken')).size, 8 << 20)
})

test('what is not a regular file is refused before anything is sent', async () => {
  const fifo = join(scratch, 'fifo')
  execFileSync('mkfifo', [fifo])
  await assert.rejects(fx.sandbox.files.writeFrom('/workspace/fifo', fifo), TypeError)
  await assert.rejects(fx.sandbox.files.writeFrom('/workspace/fifo', scratch), TypeError)
  await assert.rejects(fx.sandbox.files.writeFrom('/workspace/none', join(scratch, 'missing')), { code: 'ENOENT' })
  await assert.rejects(fx.sandbox.files.stat('/workspace/fifo'), NotFoundError)
})

test('a local file that shrinks mid-way fails the upload, and nothing lands', async () => {
  const path = local('shrinks', randomBytes(64 << 20))
  let cut = false
  await assert.rejects(
    fx.sandbox.files.writeFrom('/workspace/shrinks', path, {
      onProgress: (moved) => {
        if (!cut && moved > 0) {
          cut = true
          truncateSync(path, 20 << 20)
        }
      },
    }),
    /short of its size/,
  )
  await assert.rejects(fx.sandbox.files.stat('/workspace/shrinks'), NotFoundError)
})
