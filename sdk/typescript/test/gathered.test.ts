// A packed tree goes in runs of at least GATHER bytes: small files' pieces are joined,
// a piece that large passes untouched, and the stream is still the same tar.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'

import * as tar from 'tar-stream'

import { GATHER, gathered, packTree, walkTree } from '../src/tar.js'

async function collect(pieces: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = []
  for await (const piece of pieces) out.push(piece)
  return out
}

async function* from(pieces: Uint8Array[]): AsyncGenerator<Uint8Array> {
  yield* pieces
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
    const extract = tar.extract()
    const seen = new Map<string, Buffer>()
    extract.on('entry', (header, stream, next) => {
      const parts: Buffer[] = []
      stream.on('data', (part: Buffer) => parts.push(part))
      stream.on('end', () => {
        seen.set(header.name, Buffer.concat(parts))
        next()
      })
    })
    const finished = new Promise((resolve, reject) => extract.on('finish', resolve).on('error', reject))
    extract.end(Buffer.concat(pieces))
    await finished
    assert.deepEqual(seen, contents)
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
})
