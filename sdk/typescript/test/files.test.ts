// Files: every kind of data written and read back exactly, the listing calls, batches,
// 50 concurrent writes, progress, watches, and a resumable upload that survives a
// daemon killed mid-upload.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, openAsBlob, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { test } from 'node:test'

import { BadRequestError, ConflictError, NotFoundError, Sandbox, type WatchEvent } from '../src/index.js'
import { type Daemon, startDaemon, useSandbox } from './daemon.js'
import { crc64nvme } from './crc.js'

const fx = useSandbox()

/** Every byte value, and UTF-8 that is not valid. */
const BINARY = new Uint8Array([...Array(256).keys(), 0xc3, 0x28, 0xff, 0xfe, 0x00])

test('every kind of data is written exactly and read back three ways', async () => {
  const text = 'text é ✓\n'
  const kinds: Array<[string, Parameters<typeof fx.sandbox.files.write>[1], Uint8Array]> = [
    ['string', text, new TextEncoder().encode(text)],
    ['Uint8Array', BINARY, BINARY],
    ['ArrayBuffer', BINARY.slice().buffer, BINARY],
    ['Blob', new Blob([BINARY]), BINARY],
    ['ReadableStream', new Blob([BINARY]).stream(), BINARY],
    ['Node Readable', Readable.from([Buffer.from(BINARY.subarray(0, 100)), Buffer.from(BINARY.subarray(100))]), BINARY],
    [
      'async iterable',
      (async function* () {
        yield 'ab'
        yield new Uint8Array([0, 1])
      })(),
      new Uint8Array([97, 98, 0, 1]),
    ],
  ]
  for (const [kind, data, want] of kinds) {
    const path = `/workspace/kinds/${kind.replace(' ', '-')}`
    const written = await fx.sandbox.files.write(path, data)
    assert.equal(written.size, want.byteLength, kind)
    assert.equal(written.crc64nvme, crc64nvme(want), kind)
    assert.equal(written.sha256, undefined, kind)
    assert.deepEqual(await fx.sandbox.files.read(path), want, kind)
    const chunks: Uint8Array[] = []
    for await (const chunk of await fx.sandbox.files.read(path, { format: 'stream' })) chunks.push(chunk)
    assert.deepEqual(new Uint8Array(Buffer.concat(chunks)), want, kind)
  }
  assert.equal(await fx.sandbox.files.read('/workspace/kinds/string', { format: 'text' }), text)
})

test('a Node stream goes to the socket as it is, and one that fails stores nothing', async () => {
  const path = '/workspace/node-stream.bin'
  await fx.sandbox.files.write(path, Readable.from([Buffer.from(BINARY)]))
  const broken = new Readable({
    read() {
      this.push(Buffer.from('half of it'))
      this.destroy(new Error('the source broke'))
    },
  })
  await assert.rejects(fx.sandbox.files.write(path, broken))
  assert.deepEqual(await fx.sandbox.files.read(path), BINARY)
})

test('mode, mtime, checksums and overwrite are honoured', async () => {
  const info = await fx.sandbox.files.write('/workspace/m.sh', '#!/bin/sh\n', { mode: 0o750, mtime: 1_600_000_000 })
  assert.equal(info.mode, 0o750)
  assert.equal(info.mtime.slice(0, 19), '2020-09-13T12:26:40')
  await assert.rejects(
    fx.sandbox.files.write('/workspace/m.sh', 'x', { overwrite: false }),
    (e: unknown) => e instanceof ConflictError && e.status === 409,
  )
  await assert.rejects(
    fx.sandbox.files.write('/workspace/sum', 'abc', { sha256: '0'.repeat(64) }),
    (e: unknown) => e instanceof BadRequestError && /nothing was written/.test(e.message),
  )
  await assert.rejects(
    fx.sandbox.files.write('/workspace/sum', 'abc', { crc64nvme: crc64nvme('abd') }),
    (e: unknown) => e instanceof BadRequestError && /crc64nvme/.test(e.message),
  )
  assert.equal(await fx.sandbox.files.exists('/workspace/sum'), false)
  assert.equal(crc64nvme('123456789'), 'ae8b14860a799888', 'the helper is the catalogue CRC')
  const both = await fx.sandbox.files.write('/workspace/sum', 'abc', { crc64nvme: crc64nvme('abc'), checksum: 'sha256' })
  assert.equal(both.crc64nvme, crc64nvme('abc'))
  assert.equal(both.sha256, createHash('sha256').update('abc').digest('hex'))
})

test('list, stat, exists, makeDir, rename, remove', async () => {
  await fx.sandbox.files.makeDir('/workspace/tree/a/b', { mode: 0o700 })
  await fx.sandbox.files.write('/workspace/tree/a/b/c.txt', 'c')
  await fx.sandbox.files.write('/workspace/tree/top.txt', 'top')
  const shallow = await fx.sandbox.files.list('/workspace/tree')
  assert.deepEqual(shallow.map((e) => e.name), ['a', 'top.txt'])
  const deep = await fx.sandbox.files.list('/workspace/tree', { depth: 3 })
  assert.ok(deep.some((e) => e.path === '/workspace/tree/a/b/c.txt' && e.type === 'file'))
  const dir = await fx.sandbox.files.stat('/workspace/tree/a/b')
  assert.equal(dir.type, 'dir')
  assert.equal(dir.mode, 0o700)
  assert.equal(await fx.sandbox.files.exists('/workspace/tree/top.txt'), true)
  assert.equal(await fx.sandbox.files.exists('/workspace/tree/none'), false)
  const moved = await fx.sandbox.files.rename('/workspace/tree/top.txt', '/workspace/tree/a/top.txt')
  assert.equal(moved.path, '/workspace/tree/a/top.txt')
  await assert.rejects(fx.sandbox.files.remove('/workspace/tree/a'), ConflictError)
  await fx.sandbox.files.remove('/workspace/tree', { recursive: true })
  await assert.rejects(fx.sandbox.files.stat('/workspace/tree'), NotFoundError)
  await assert.rejects(fx.sandbox.files.read('relative/path'), BadRequestError)
})

test('writeFiles sends one streamed batch; a file that fails fails alone', async () => {
  const result = await fx.sandbox.files.writeFiles([
    { path: '/workspace/batch/one.txt', data: 'one', mode: 0o600 },
    { path: '/workspace/batch/two.bin', data: new Blob([BINARY]) },
    { path: '/workspace/batch/bad.txt', data: 'x', sha256: 'f'.repeat(64) },
    { path: '/workspace/batch/crc.txt', data: 'y', crc64nvme: crc64nvme('y'), checksum: 'sha256' },
    { path: '/workspace/batch/é space.txt', data: Readable.from(['streamed']) },
  ])
  assert.equal(result.written, 4)
  assert.equal(result.results[3]?.result?.sha256, createHash('sha256').update('y').digest('hex'))
  assert.equal(result.failed, 1)
  assert.equal(result.results[2]?.errorCode, 'bad_request')
  assert.match(result.results[2]?.error ?? '', /sha256/)
  assert.deepEqual(await fx.sandbox.files.read('/workspace/batch/two.bin'), BINARY)
  assert.equal(await fx.sandbox.files.read('/workspace/batch/é space.txt', { format: 'text' }), 'streamed')
  assert.equal((await fx.sandbox.files.stat('/workspace/batch/one.txt')).mode, 0o600)
  await assert.rejects(fx.sandbox.files.writeFiles([{ path: '/workspace/"q"', data: '' }]), BadRequestError)
})

test('50 concurrent writes all land, each whole', async () => {
  const bodies = Array.from({ length: 50 }, (_, i) => randomBytes(1000 + i * 997))
  await Promise.all(bodies.map((body, i) => fx.sandbox.files.write(`/workspace/many/${i}.bin`, body)))
  const listed = await fx.sandbox.files.list('/workspace/many')
  assert.equal(listed.length, 50)
  for (const [i, body] of bodies.entries()) {
    assert.deepEqual(await fx.sandbox.files.read(`/workspace/many/${i}.bin`), new Uint8Array(body))
  }
})

test('progress is told on the way up and down', async () => {
  const data = randomBytes(5 << 20)
  const up: number[] = []
  await fx.sandbox.files.write('/workspace/progress.bin', data, { onProgress: (moved, total) => {
    assert.equal(total, data.length)
    up.push(moved)
  } })
  assert.ok(up.length >= 5, `told ${up.length} times`)
  assert.equal(up.at(-1), data.length)
  const down: number[] = []
  await fx.sandbox.files.read('/workspace/progress.bin', { onProgress: (moved) => down.push(moved) })
  assert.equal(down.at(-1), data.length)
})

test('watchDir is an async iterator of changes, ready first', async () => {
  await fx.sandbox.files.makeDir('/workspace/watched')
  const seen: WatchEvent[] = []
  const watcher = fx.sandbox.files.watchDir('/workspace/watched')
  for await (const event of watcher) {
    seen.push(event)
    if (event.type === 'ready') await fx.sandbox.files.write('/workspace/watched/new.txt', 'x')
    if (event.path === '/workspace/watched/new.txt' && event.type !== 'ready') break
  }
  assert.equal(seen[0]?.type, 'ready')
  assert.ok(seen.some((e) => e.path === '/workspace/watched/new.txt'), JSON.stringify(seen))
})

test('a resumable upload survives the daemon killed mid-upload, and verifies', async () => {
  // Its own daemon: this one is killed and started again on the same home and port.
  const own = await startDaemon()
  const options = { url: own.url, token: own.token }
  const box = await Sandbox.create(options)
  const data = randomBytes(48 << 20)
  const scratch = mkdtempSync(join(tmpdir(), 'airlock-ts-up-'))
  const local = join(scratch, 'big.bin')
  writeFileSync(local, data)
  const digest = createHash('sha256').update(data).digest('hex')
  let killed = false
  let restarted: Promise<Daemon> | undefined
  const written = await box.files.write('/workspace/big.bin', await openAsBlob(local), {
    resumable: true,
    sha256: digest,
    onProgress: (moved) => {
      if (!killed && moved > 8 << 20) {
        killed = true
        own.kill()
        restarted = new Promise((done) => setTimeout(() => done(startDaemon(own)), 300))
      }
    },
  })
  assert.ok(killed, 'the daemon was never killed')
  const again = await (restarted as Promise<Daemon>)
  try {
    assert.equal(written.sha256, digest)
    assert.match(written.crc64nvme, /^[0-9a-f]{16}$/)
    assert.equal(written.size, data.length)
    const back = await (await Sandbox.connect(box.sandboxId, options)).files.read('/workspace/big.bin')
    assert.equal(createHash('sha256').update(back).digest('hex'), digest)
  } finally {
    await again.stop()
    rmSync(scratch, { recursive: true, force: true })
  }
})
