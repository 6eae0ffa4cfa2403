// Sandboxes: create (with every option), connect, list, info, tokens, signed URLs, kill;
// errors as classes with the daemon's code; every call cancellable.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'

import { AuthenticationError, NotFoundError, PermissionDeniedError, Sandbox } from '../src/index.js'
import { type Daemon, startDaemon } from './daemon.js'

let daemon: Daemon
before(async () => {
  daemon = await startDaemon()
})
after(async () => daemon.stop())

test('create with every option, connect, list, info, kill', async () => {
  const sandbox = await Sandbox.create({
    env: { GREETING: 'hi' },
    files: [
      { path: '/workspace/seed.txt', data: 'seeded', mode: 0o640 },
      { path: '/workspace/bin.dat', data: new Uint8Array([0, 255]) },
      { path: '/etc/airlock-policy', data: 'fixed', readonly: true },
    ],
    labels: { purpose: 'ts' },
    limits: { pids: 256 },
    ttl: 600,
  })
  assert.match(sandbox.sandboxId, /^[0-9a-f]{12}$/)
  assert.equal(sandbox.info.state, 'running')
  assert.equal(sandbox.info.labels.purpose, 'ts')
  assert.ok(sandbox.info.expiresAt)
  assert.equal(await sandbox.files.read('/workspace/seed.txt', { format: 'text' }), 'seeded')
  assert.equal((await sandbox.files.stat('/workspace/seed.txt')).mode, 0o640)
  assert.deepEqual([...(await sandbox.files.read('/workspace/bin.dat'))], [0, 255])
  const env = await sandbox.commands.run('echo $GREETING; echo x > /etc/airlock-policy')
  assert.equal(env.stdout, 'hi\n')
  assert.notEqual(env.exitCode, 0, 'a read-only injected file was changed')

  const again = await Sandbox.connect(sandbox.sandboxId)
  assert.equal(again.sandboxId, sandbox.sandboxId)
  assert.ok((await Sandbox.list()).some((s) => s.sandboxId === sandbox.sandboxId))
  assert.equal((await again.getInfo()).template, sandbox.info.template)

  await sandbox.kill()
  await assert.rejects(Sandbox.connect(sandbox.sandboxId), (e: unknown) => {
    return e instanceof NotFoundError && e.code === 'not_found' && e.status === 404
  })
})

test('explicit url and token win over the environment; a wrong token is an AuthenticationError', async () => {
  const list = await Sandbox.list({ url: daemon.url, token: daemon.token })
  assert.ok(Array.isArray(list))
  await assert.rejects(Sandbox.list({ token: 'wrong' }), AuthenticationError)
})

test('a sandbox token reaches its sandbox alone, and only as far as its access', async () => {
  const sandbox = await Sandbox.create()
  const other = await Sandbox.create()
  try {
    await sandbox.files.write('/workspace/r.txt', 'readable')
    const token = await sandbox.createToken('read')
    const reader = await Sandbox.connect(sandbox.sandboxId, { token })
    assert.equal(await reader.files.read('/workspace/r.txt', { format: 'text' }), 'readable')
    await assert.rejects(reader.files.write('/workspace/w.txt', 'no'), PermissionDeniedError)
    // Refused while a big body is still streaming: the refusal is what the caller sees.
    const big = new Blob([new Uint8Array(64 << 20)]).stream()
    await assert.rejects(reader.files.write('/workspace/big.bin', big), PermissionDeniedError)
    await assert.rejects(Sandbox.connect(other.sandboxId, { token }), NotFoundError)
  } finally {
    await sandbox.kill()
    await other.kill()
  }
})

test('signed URLs work with no header', async () => {
  const sandbox = await Sandbox.create()
  try {
    const put = await sandbox.uploadUrl('/workspace/signed.txt', { ttl: 60 })
    assert.equal((await fetch(put, { method: 'PUT', body: 'via url' })).status < 300, true)
    const get = await sandbox.downloadUrl('/workspace/signed.txt')
    assert.equal(await (await fetch(get)).text(), 'via url')
  } finally {
    await sandbox.kill()
  }
})

test('an AbortSignal cancels any call', async () => {
  await assert.rejects(Sandbox.list({ signal: AbortSignal.abort() }), { name: 'AbortError' })
  const sandbox = await Sandbox.create()
  try {
    const controller = new AbortController()
    const running = sandbox.commands.run('sleep 30', { signal: controller.signal, onStdout: () => {} })
    setTimeout(() => controller.abort(), 300)
    await assert.rejects(running, { name: 'AbortError' })
    await assert.rejects(sandbox.files.list('/', { signal: AbortSignal.abort() }), { name: 'AbortError' })
  } finally {
    await sandbox.kill()
  }
})
