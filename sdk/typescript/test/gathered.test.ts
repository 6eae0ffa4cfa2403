// A packed tree goes in runs of at least GATHER bytes: small files' pieces are joined,
// a piece that large passes untouched, and the stream is still the same tar. Entries
// prepared ahead keep their order, and one that fails while it waits its turn fails
// the pack without an unhandled rejection.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'

import * as tar from 'tar-stream'

import { GATHER, gathered, packTree, readExactly, walkTree } from '../src/tar.js'

async function collect(pieces: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = []
  for await (const piece of pieces) out.push(piece)
  return out
}

async function* from(pieces: Uint8Array[]): AsyncGenerator<Uint8Array> {
  yield* pieces
}

async function* pathsOf(paths: string[]): AsyncGenerator<string> {
  yield* paths
}

/** A tar stream read back: each entry as `type name[ -> link]`, and each file's bytes. */
async function readBack(archive: Buffer): Promise<{ entries: string[]; files: Map<string, Buffer> }> {
  const entries: string[] = []
  const files = new Map<string, Buffer>()
  const extract = tar.extract()
  extract.on('entry', (header, stream, next) => {
    entries.push(`${header.type} ${header.name}${header.linkname ? ` -> ${header.linkname}` : ''}`)
    const parts: Buffer[] = []
    stream.on('data', (part: Buffer) => parts.push(part))
    stream.on('end', () => {
      if (header.type === 'file') files.set(header.name, Buffer.concat(parts))
      next()
    })
  })
  const finished = new Promise((resolve, reject) => extract.on('finish', resolve).on('error', reject))
  extract.end(archive)
  await finished
  return { entries, files }
}

test('gathering keeps order and passes a large piece untouched', async () => {
  const large = randomBytes(GATHER)
  const small = [0, 1, 2, 3, 4].map((n) => Buffer.alloc(1000, n))
  const got = await collect(gathered(from([small[0], small[1], large, small[2], small[3], small[4]])))
  assert.deepEqual(got, [
    Buffer.concat([small[0], small[1]]),
    large,
    Buffer.concat([small[2], small[3], small[4]]),
  ])
  assert.equal(got[1], large)
  assert.deepEqual(await collect(gathered(from([]))), [])
})

test('a packed tree of small files comes in runs of at least GATHER bytes, and is the same tar', async () => {
  const root = fs.mkdtempSync(join(tmpdir(), 'airlock-ts-gather-'))
  try {
    const contents = new Map<string, Buffer>()
    for (let n = 0; n < 300; n++) {
      const content = randomBytes(5000)
      fs.writeFileSync(join(root, `f${n}`), content)
      contents.set(`f${n}`, content)
    }
    const pieces = await collect(packTree(root, walkTree(root)))
    assert.ok(pieces.length < 5, `${pieces.length} pieces`)
    for (const piece of pieces.slice(0, -1)) assert.ok(piece.byteLength >= GATHER)
    assert.deepEqual((await readBack(Buffer.concat(pieces))).files, contents)
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
})

test('files read ahead and files streamed pack in order beside links and directories', async () => {
  const root = fs.mkdtempSync(join(tmpdir(), 'airlock-ts-ahead-'))
  try {
    fs.mkdirSync(join(root, 'd'))
    const contents = new Map<string, Buffer>()
    for (const [name, size] of [['a', 10], ['d/big', 3 * GATHER + 5], ['d/empty', 0], ['z', 70_000]] as const) {
      const content = randomBytes(size)
      fs.writeFileSync(join(root, name), content)
      contents.set(name, content)
    }
    fs.symlinkSync('a', join(root, 'link'))
    const { entries, files } = await readBack(Buffer.concat(await collect(packTree(root, walkTree(root)))))
    assert.deepEqual(entries, ['file a', 'directory d', 'file d/big', 'file d/empty', 'symlink link -> a', 'file z'])
    assert.deepEqual(files, contents)
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
})

test('a path gone before its turn fails the pack, and the entries read ahead of it are no unhandled rejection', async () => {
  const root = fs.mkdtempSync(join(tmpdir(), 'airlock-ts-gone-'))
  try {
    const names = Array.from({ length: 40 }, (_, n) => `f${n}`)
    for (const name of names) fs.writeFileSync(join(root, name), 'x')
    // Every path after the first is gone: many fail while the first waits its turn.
    const paths = names.map((name, n) => join(root, n === 0 ? name : `gone-${name}`))
    await assert.rejects(collect(packTree(root, pathsOf(paths))), { code: 'ENOENT' })
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
})


test('a small file is read exactly: cut if it grew, a failure if it shrank, no descriptor left', async () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'airlock-read-exactly-'))
  try {
    const content = randomBytes(5000)
    const path = join(dir, 'f')
    fs.writeFileSync(path, content)
    const open = (): number => fs.readdirSync('/proc/self/fd').length
    const before = open()
    assert.deepEqual(await readExactly(path, 5000), content)
    assert.deepEqual(await readExactly(path, 1000), content.subarray(0, 1000), 'grown: cut to the size seen')
    assert.equal((await readExactly(path, 0)).byteLength, 0)
    await assert.rejects(readExactly(path, 6000), /shrank while it was being sent/)
    await assert.rejects(readExactly(join(dir, 'missing'), 10), { code: 'ENOENT' })
    assert.equal(open(), before, 'every descriptor closed, failures too')
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
