// A local file of 8 MiB or more goes up as a raw body (src/rawPut.ts): the daemon
// answers `101` and takes the bytes from the socket. Byte-exact with its checksums,
// refused before the go-ahead and after the body as a plain `PUT` is, and a body cut
// short (an abort) commits nothing while the daemon serves on.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'

import { ConflictError, NotFoundError, Sandbox } from '../src/index.js'
import { RAW_FROM } from '../src/rawPut.js'
import { useSandbox } from './daemon.js'

const fx = useSandbox()
const scratch = mkdtempSync(join(tmpdir(), 'airlock-rawput-'))
after(() => rmSync(scratch, { recursive: true, force: true }))

function local(name: string, content: Uint8Array): string {
  const path = join(scratch, name)
  writeFileSync(path, content)
  return path
}

/** How many content requests the daemon answered with `status` (`101`: a raw body's go-ahead; `201`: a plain `PUT`'s new file), from its metrics. */
async function contentPuts(status: number): Promise<number> {
  const text = await (
    await fetch(`${process.env.AIRLOCK_URL}/metrics`, { headers: { authorization: `Bearer ${process.env.AIRLOCK_TOKEN}` } })
  ).text()
  return text
    .split('\n')
    .filter((line) => line.startsWith('airlock_requests_total') && line.includes('files/content'))
    .filter((line) => line.includes(`status="${status}"`))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0)
}

test('a large file goes raw, byte-exact, with its checksums and mode; a small one goes plain', async () => {
  const raw = await contentPuts(101)
  const plain = await contentPuts(201)
  const content = randomBytes(RAW_FROM + 4097)
  const info = await fx.sandbox.files.writeFrom('/workspace/raw/big', local('big', content), {
    mode: 0o640,
    checksum: 'sha256',
  })
  assert.equal(info.size, content.length)
  assert.equal(info.sha256, createHash('sha256').update(content).digest('hex'))
  assert.ok(Buffer.from(await fx.sandbox.files.read('/workspace/raw/big')).equals(content))
  assert.equal((await fx.sandbox.files.stat('/workspace/raw/big')).mode & 0o777, 0o640)
  await fx.sandbox.files.writeFrom('/workspace/raw/small', local('small', randomBytes(RAW_FROM - 1)))
  assert.equal(await contentPuts(101), raw + 1)
  assert.equal(await contentPuts(201), plain + 1)
})

test('refused before the go-ahead (a sandbox gone) and after the body (a name taken, a wrong checksum)', async () => {
  const path = local('refused', randomBytes(RAW_FROM))
  const gone = await Sandbox.create()
  await gone.kill()
  await assert.rejects(gone.files.writeFrom('/workspace/x', path), NotFoundError)
  await fx.sandbox.files.writeFrom('/workspace/taken', path)
  const before = await fx.sandbox.files.stat('/workspace/taken')
  await assert.rejects(fx.sandbox.files.writeFrom('/workspace/taken', path, { overwrite: false }), ConflictError)
  await assert.rejects(fx.sandbox.files.writeFrom('/workspace/taken', path, { sha256: '0'.repeat(64) }),
    /expected 0{64}; nothing was written/,
  )
  assert.deepEqual(await fx.sandbox.files.stat('/workspace/taken'), before)
})

test('an upload aborted mid-way commits nothing, and the daemon serves on', async () => {
  const old = randomBytes(1000)
  await fx.sandbox.files.write('/workspace/kept', old)
  const aborting = new AbortController()
  const upload = fx.sandbox.files.writeFrom('/workspace/kept', local('aborted', randomBytes(64 << 20)), {
    signal: aborting.signal,
    onProgress: (moved) => {
      if (moved > 0) aborting.abort(new Error('stopped by the test'))
    },
  })
  await assert.rejects(upload, /stopped by the test/)
  assert.ok(Buffer.from(await fx.sandbox.files.read('/workspace/kept')).equals(old))
  const again = randomBytes(RAW_FROM)
  await fx.sandbox.files.writeFrom('/workspace/kept', local('again', again))
  assert.ok(Buffer.from(await fx.sandbox.files.read('/workspace/kept')).equals(again))
})
