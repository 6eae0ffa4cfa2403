// Trees: uploadPath and downloadPath as tar streams (modes, mtimes, symlinks, excludes),
// mirror mode both ways, and hostile archives refused by the local extraction.
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'

import * as tar from 'tar-stream'

import { BadArchiveError, Sandbox } from '../src/index.js'
import { extractTree, makeStaging } from '../src/tar.js'
import { useSandbox } from './daemon.js'

const fx = useSandbox()

/** Scratch directories, removed when the file's tests are done. */
const made: string[] = []
const scratch = (): string => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'airlock-ts-tree-'))
  made.push(dir)
  return dir
}
after(() => {
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true })
})

/** A small project: nested files, an executable, a symlink, and things to exclude. */
function project(): string {
  const root = scratch()
  fs.mkdirSync(join(root, 'src/deep'), { recursive: true })
  fs.mkdirSync(join(root, 'node_modules/pkg'), { recursive: true })
  fs.writeFileSync(join(root, 'src/main.py'), 'print("hi")\n')
  fs.writeFileSync(join(root, 'src/deep/data.bin'), Buffer.from([0, 1, 2, 255]))
  fs.writeFileSync(join(root, 'run.sh'), '#!/bin/sh\necho run\n', { mode: 0o755 })
  fs.writeFileSync(join(root, 'node_modules/pkg/index.js'), 'x')
  fs.writeFileSync(join(root, 'debug.log'), 'noise')
  fs.symlinkSync('src/main.py', join(root, 'link.py'))
  fs.utimesSync(join(root, 'src/main.py'), 1_600_000_000, 1_600_000_000)
  return root
}

test('uploadPath and downloadPath carry a tree whole: modes, mtimes, symlinks, excludes', async () => {
  const local = project()
  const result = await fx.sandbox.files.uploadPath(local, '/workspace/proj', { exclude: ['node_modules', '*.log'] })
  assert.equal(result.files, 3)
  assert.equal(result.symlinks, 1)
  assert.equal(await fx.sandbox.files.exists('/workspace/proj/node_modules'), false)
  assert.equal(await fx.sandbox.files.exists('/workspace/proj/debug.log'), false)
  const run = await fx.sandbox.commands.run('/workspace/proj/run.sh')
  assert.equal(run.stdout, 'run\n')
  assert.equal((await fx.sandbox.files.stat('/workspace/proj/link.py')).symlinkTarget, 'src/main.py')

  const back = scratch()
  const count = await fx.sandbox.files.downloadPath('/workspace/proj', back)
  assert.ok(count >= 6, `${count} entries`)
  assert.deepEqual(fs.readFileSync(join(back, 'src/deep/data.bin')), Buffer.from([0, 1, 2, 255]))
  assert.equal(fs.statSync(join(back, 'run.sh')).mode & 0o777, 0o755)
  assert.equal(Math.floor(fs.statSync(join(back, 'src/main.py')).mtimeMs / 1000), 1_600_000_000)
  assert.equal(fs.readlinkSync(join(back, 'link.py')), 'src/main.py')
})

test('sync mirrors incrementally both ways, deleting only when asked', async () => {
  const local = project()
  const exclude = ['node_modules', '*.log']
  const first = await fx.sandbox.files.sync(local, '/workspace/mirror', { exclude })
  assert.equal(first.sent, 6)
  const again = await fx.sandbox.files.sync(local, '/workspace/mirror', { exclude })
  assert.deepEqual(again, { sent: 0, bytes: 0, deleted: 0 })

  fs.writeFileSync(join(local, 'src/main.py'), 'print("changed")\n')
  fs.rmSync(join(local, 'run.sh'))
  const changed = await fx.sandbox.files.sync(local, '/workspace/mirror', { exclude })
  assert.equal(changed.sent, 1)
  assert.equal(changed.deleted, 0)
  assert.equal(await fx.sandbox.files.exists('/workspace/mirror/run.sh'), true)
  const pruned = await fx.sandbox.files.sync(local, '/workspace/mirror', { exclude, delete: true })
  assert.equal(pruned.deleted, 1)
  assert.equal(await fx.sandbox.files.exists('/workspace/mirror/run.sh'), false)

  // A command changes the sandbox; sync back brings only that home.
  await fx.sandbox.commands.run('echo out > /workspace/mirror/result.txt; rm /workspace/mirror/link.py')
  const home = await fx.sandbox.files.sync(local, '/workspace/mirror', { back: true, delete: true, exclude })
  assert.equal(home.sent, 1)
  assert.equal(home.deleted, 1)
  assert.equal(fs.readFileSync(join(local, 'result.txt'), 'utf8'), 'out\n')
  assert.equal(fs.existsSync(join(local, 'link.py')), false)
  assert.equal(fs.existsSync(join(local, 'node_modules/pkg/index.js')), true, 'an excluded path was touched')
})

test('sync reaches the bottom of a tree deeper than a listing used to go', async () => {
  // At 64 levels the bottom was resent on every push, never pulled, and removed locally
  // by a pull that deletes.
  const local = scratch()
  const bottom = join(local, ...Array<string>(150).fill('d'))
  fs.mkdirSync(bottom, { recursive: true })
  fs.writeFileSync(join(bottom, 'leaf'), 'leaf\n')
  assert.equal((await fx.sandbox.files.sync(local, '/workspace/deep')).sent, 151)
  assert.equal((await fx.sandbox.files.sync(local, '/workspace/deep')).sent, 0)
  const there = `/workspace/deep/${'d/'.repeat(150)}`
  await fx.sandbox.commands.run(`echo made > ${there}new && rm ${there}leaf`)
  const pulled = await fx.sandbox.files.sync(local, '/workspace/deep', { back: true, delete: true })
  assert.deepEqual([pulled.sent, pulled.deleted], [1, 1])
  assert.equal(fs.readFileSync(join(bottom, 'new'), 'utf8'), 'made\n')
  assert.equal(fs.existsSync(join(bottom, 'leaf')), false)
})

test('downloadPath never writes through a symlink already in the destination', async () => {
  await fx.sandbox.files.write('/workspace/victim/dir/planted.txt', 'pwned')
  const outside = scratch()
  const local = scratch()
  fs.symlinkSync(outside, join(local, 'dir'))
  await fx.sandbox.files.downloadPath('/workspace/victim', local)
  // The link is replaced by the archive's directory, never followed.
  assert.deepEqual(fs.readdirSync(outside), [], 'a file landed outside the destination')
  assert.ok(fs.lstatSync(join(local, 'dir')).isDirectory())
  assert.equal(fs.readFileSync(join(local, 'dir/planted.txt'), 'utf8'), 'pwned')
})

/** A tar stream of the given entries, crafted as a hostile server could send. */
async function* crafted(entries: Array<tar.Headers & { body?: string }>): AsyncGenerator<Uint8Array> {
  const pack = tar.pack()
  for (const { body, ...header } of entries) pack.entry(header, body ?? '')
  pack.finalize()
  for await (const chunk of pack) yield chunk
}

test('hostile archives are refused, writing nothing outside the destination', async () => {
  const attacks: Record<string, Array<tar.Headers & { body?: string }>> = {
    'a climbing name': [{ name: '../escaped.txt', body: 'x' }],
    'an absolute name': [{ name: '/tmp/airlock-ts-absolute.txt', body: 'x' }],
    'a climbing name inside': [{ name: 'a/../../escaped.txt', body: 'x' }],
    'a symlink, then a file through it': [
      { name: 'link', type: 'symlink', linkname: '/tmp' },
      { name: 'link/through-link.txt', body: 'x' },
    ],
    'a relative symlink out, then a file through it': [
      { name: 'up', type: 'symlink', linkname: '../..' },
      { name: 'up/through-up.txt', body: 'x' },
    ],
    'a hard link to a host file': [{ name: 'passwd', type: 'link', linkname: '../../../../etc/passwd' }],
    'a hard link to a file not in the archive': [{ name: 'copy', type: 'link', linkname: 'elsewhere' }],
  }
  for (const [attack, entries] of Object.entries(attacks)) {
    const parent = scratch()
    const local = join(parent, 'dest')
    await assert.rejects(extractTree(crafted(entries), local), BadArchiveError, attack)
    const left = fs.readdirSync(parent)
    assert.deepEqual(left, ['dest'], `${attack}: ${left}`)
  }
  assert.equal(fs.existsSync('/tmp/airlock-ts-absolute.txt'), false)
  assert.equal(fs.existsSync('/tmp/through-link.txt'), false)

  // Devices and FIFOs are skipped, not made; a symlink itself is fine.
  const local = scratch()
  const count = await extractTree(
    crafted([
      { name: 'null', type: 'character-device', devmajor: 1, devminor: 3 },
      { name: 'pipe', type: 'fifo' },
      { name: 'ok.txt', body: 'fine' },
      { name: 'ok-link', type: 'symlink', linkname: '/etc/passwd' },
      { name: 'twin', type: 'link', linkname: 'ok.txt' },
    ]),
    local,
  )
  assert.equal(count, 3)
  assert.deepEqual(fs.readdirSync(local).sort(), ['ok-link', 'ok.txt', 'twin'])
  assert.equal(fs.readFileSync(join(local, 'twin'), 'utf8'), 'fine')
})

/** A tar stream of `entries` cut inside the bytes of the file whose content is `at`. */
async function cutInside(entries: Array<tar.Headers & { body?: string }>, at: string): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  for await (const chunk of crafted(entries)) chunks.push(chunk)
  const whole = Buffer.concat(chunks)
  return whole.subarray(0, whole.indexOf(at) + 1024)
}

test('a download cut off midway leaves the destination as it was', async () => {
  const entries = [
    { name: 'first', body: '1'.repeat(600) },
    { name: 'dir/inside', body: '2'.repeat(600) },
    { name: 'kept', body: 'n'.repeat(5000) },
  ]
  // Cut inside the last file's bytes: two whole entries and part of a third arrived.
  const part = await cutInside(entries, 'n'.repeat(512))
  async function* broken(): AsyncGenerator<Uint8Array> {
    yield part
    throw new Error('the connection broke')
  }
  async function* ended(): AsyncGenerator<Uint8Array> {
    yield part
  }
  // The first entry whole (a header and two blocks of content), then the break: a tar
  // cut there reads like a whole one.
  async function* brokenBetweenEntries(): AsyncGenerator<Uint8Array> {
    yield part.subarray(0, 3 * 512)
    throw new Error('the connection broke')
  }
  for (const [how, source] of [
    ['broken', broken],
    ['ended early', ended],
    ['broken between entries', brokenBetweenEntries],
  ] as const) {
    const local = scratch()
    fs.mkdirSync(join(local, 'dir'))
    fs.writeFileSync(join(local, 'kept'), 'old content')
    await assert.rejects(extractTree(source(), local), how)
    assert.equal(fs.readFileSync(join(local, 'kept'), 'utf8'), 'old content', how)
    assert.deepEqual(fs.readdirSync(local).sort(), ['dir', 'kept'], `${how}: nothing new, no staging`)
    assert.deepEqual(fs.readdirSync(join(local, 'dir')), [], how)
  }
})

test('a tree 1,500 levels deep goes up and comes back, twice into the same place', async () => {
  // A sandbox makes chains like this in seconds; 1,500 one-letter levels stay under
  // PATH_MAX. The big file makes the download wait on the disk many times over.
  const local = scratch()
  const chain = Array.from({ length: 1500 }, () => 'd').join('/')
  fs.mkdirSync(join(local, chain), { recursive: true })
  fs.writeFileSync(join(local, chain, 'f'), 'bottom')
  fs.writeFileSync(join(local, 'big.bin'), Buffer.alloc(8 << 20, 7))
  const warnings: Error[] = []
  const warned = (w: Error): void => void warnings.push(w)
  process.on('warning', warned)
  try {
    const sent = await fx.sandbox.files.uploadPath(local, '/workspace/chain')
    assert.ok(sent.dirs >= 1500, `${sent.dirs} directories`)
    const back = scratch()
    await fx.sandbox.files.downloadPath('/workspace/chain', back)
    await fx.sandbox.files.write(`/workspace/chain/${chain}/f`, 'changed')
    await fx.sandbox.files.downloadPath('/workspace/chain', back)
    assert.equal(fs.readFileSync(join(back, chain, 'f'), 'utf8'), 'changed')
    assert.deepEqual(fs.readdirSync(back).sort(), ['big.bin', 'd'], 'no staging left behind')
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepEqual(warnings, [], 'no listener piles up while the download waits')
  } finally {
    process.off('warning', warned)
  }
})

test('a staging directory a killed download left in a folder is skipped by its next upload', async () => {
  const local = scratch()
  const stale = await makeStaging(local) // named as a real download names it
  fs.writeFileSync(join(stale, 'half'), 'x')
  fs.writeFileSync(join(local, 'kept'), 'kept')
  const sent = await fx.sandbox.files.uploadPath(local, '/workspace/stale')
  assert.equal(sent.files, 1)
  const name = stale.slice(local.length + 1)
  assert.deepEqual(sent.skipped.map((s) => s.path).sort(), [`/workspace/stale/${name}`, `/workspace/stale/${name}/half`])
  const listed = await fx.sandbox.commands.run('ls -A /workspace/stale')
  assert.equal(listed.stdout, 'kept\n')
})

test('an archive refused midway leaves nothing of its earlier entries', async () => {
  const local = scratch()
  await assert.rejects(
    extractTree(crafted([{ name: 'fine', body: 'ok' }, { name: '../escaped', body: 'x' }]), local),
    BadArchiveError,
  )
  assert.deepEqual(fs.readdirSync(local), [])
})

test('a tree merges into what is there; a link in the way is replaced, never followed', async () => {
  const outside = scratch()
  const local = scratch()
  fs.mkdirSync(join(local, 'a'))
  fs.writeFileSync(join(local, 'a', 'old.txt'), 'old')
  fs.writeFileSync(join(local, 'a', 'replaced.txt'), 'before')
  fs.writeFileSync(join(local, 'was-a-file'), 'file')
  fs.symlinkSync(outside, join(local, 'was-a-link'))
  const mtime = new Date(1_000_000_000_000)
  const entries = [
    { name: 'a', type: 'directory' as const, mode: 0o750, mtime },
    { name: 'a/new.txt', body: 'new' },
    { name: 'a/replaced.txt', body: 'after' },
    { name: 'was-a-file', type: 'directory' as const },
    { name: 'was-a-file/x', body: 'x' },
    { name: 'was-a-link', type: 'directory' as const },
    { name: 'was-a-link/y', body: 'y' },
  ]
  assert.equal(await extractTree(crafted(entries), local), entries.length)
  assert.equal(fs.readFileSync(join(local, 'a', 'old.txt'), 'utf8'), 'old')
  assert.equal(fs.readFileSync(join(local, 'a', 'new.txt'), 'utf8'), 'new')
  assert.equal(fs.readFileSync(join(local, 'a', 'replaced.txt'), 'utf8'), 'after')
  assert.equal(fs.statSync(join(local, 'a')).mode & 0o7777, 0o750)
  assert.equal(fs.statSync(join(local, 'a')).mtimeMs, mtime.getTime())
  assert.equal(fs.readFileSync(join(local, 'was-a-file', 'x'), 'utf8'), 'x')
  assert.equal(fs.lstatSync(join(local, 'was-a-link')).isSymbolicLink(), false)
  assert.equal(fs.readFileSync(join(local, 'was-a-link', 'y'), 'utf8'), 'y')
  assert.deepEqual(fs.readdirSync(outside), [], 'the link was replaced, never followed')
  assert.deepEqual(fs.readdirSync(local).sort(), ['a', 'was-a-file', 'was-a-link'])
})

test('a file where a directory is is refused before anything moves', async () => {
  const local = scratch()
  fs.mkdirSync(join(local, 'd'))
  await assert.rejects(
    extractTree(crafted([{ name: 'new', body: 'n' }, { name: 'd', body: 'file' }]), local),
    (error: NodeJS.ErrnoException) => error.code === 'EISDIR',
  )
  assert.deepEqual(fs.readdirSync(local), ['d'])
})

test('downloadPath from a hostile server: a link out and a file through it is refused', async () => {
  // The threat is the server itself (a compromised daemon, a man in the middle): this
  // one answers the sandbox lookup, then an archive that plants a link and writes
  // through it.
  const server = http.createServer(async (request, answer) => {
    if (request.url?.startsWith('/v1/sandboxes/0123456789ab/files/archive')) {
      answer.writeHead(200, { 'content-type': 'application/x-tar' })
      for await (const chunk of crafted([
        { name: 'out', type: 'symlink', linkname: outside },
        { name: 'out/planted.txt', body: 'pwned' },
      ])) {
        answer.write(chunk)
      }
      answer.end()
      return
    }
    answer.writeHead(200, { 'content-type': 'application/json' })
    answer.end(JSON.stringify({ id: '0123456789ab', template: 'host', state: 'running', created_at: '' }))
  })
  const outside = scratch()
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
  try {
    const { port } = server.address() as { port: number }
    const hostile = await Sandbox.connect('0123456789ab', { url: `http://127.0.0.1:${port}`, token: 't' })
    const local = scratch()
    await assert.rejects(hostile.files.downloadPath('/workspace', local), BadArchiveError)
    assert.deepEqual(fs.readdirSync(outside), [], 'a file landed outside the destination')
  } finally {
    server.close()
  }
})
