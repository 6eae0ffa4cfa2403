// Commands: to the end (buffered and streamed to callbacks), with env, cwd, stdin,
// timeouts and exact binary output; and in the background, with a handle to wait on,
// feed, signal and kill, reconnected from a new handle.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { CommandExitError, ConflictError, NotFoundError } from '../src/index.js'
import { useSandbox } from './daemon.js'

const fx = useSandbox({ env: { FROM_SANDBOX: 'yes' } })

test('run to the end: output, exit code, env, cwd, stdin, argv', async () => {
  const result = await fx.sandbox.commands.run('echo out; echo err >&2; exit 3')
  assert.deepEqual([result.stdout, result.stderr, result.exitCode], ['out\n', 'err\n', 3])
  const env = await fx.sandbox.commands.run('echo $FROM_SANDBOX $MINE; pwd', { env: { MINE: 'mine' }, cwd: '/tmp' })
  assert.equal(env.stdout, 'yes mine\n/tmp\n')
  assert.equal((await fx.sandbox.commands.run('cat', { stdin: 'piped' })).stdout, 'piped')
  const argv = await fx.sandbox.commands.run(['printf', '%s|', 'a b', '$HOME'])
  assert.equal(argv.stdout, 'a b|$HOME|')
  await assert.rejects(fx.sandbox.commands.run('exit 9', { check: true }), (e: unknown) => {
    return e instanceof CommandExitError && e.exitCode === 9
  })
})

test('binary output and input are exact', async () => {
  const bytes = new Uint8Array([0, 0xff, 0xc3, 0x28, 10])
  const result = await fx.sandbox.commands.run('cat', { stdin: bytes })
  assert.deepEqual(result.stdoutBytes, bytes)
  const streamed = await fx.sandbox.commands.run('cat', { stdin: bytes, onStdout: () => {} })
  assert.deepEqual(streamed.stdoutBytes, bytes)
})

test('callbacks get output as it happens', async () => {
  const seen: Array<[string, number]> = []
  const started = Date.now()
  const result = await fx.sandbox.commands.run('echo first; sleep 1; echo second >&2', {
    onStdout: (d) => seen.push([d, Date.now() - started]),
    onStderr: (d) => seen.push([d, Date.now() - started]),
  })
  assert.equal(result.exitCode, 0)
  assert.deepEqual(seen.map(([d]) => d), ['first\n', 'second\n'])
  assert.ok((seen[0]?.[1] ?? 0) < (seen[1]?.[1] ?? 0) - 500, JSON.stringify(seen))
})

test('a timeout kills the command: 124 and timedOut', async () => {
  const result = await fx.sandbox.commands.run('sleep 30', { timeoutMs: 300 })
  assert.equal(result.exitCode, 124)
  assert.equal(result.timedOut, true)
})

test('background processes: wait, list, connect, stdin, signal, kill', async () => {
  const handle = await fx.sandbox.commands.run('echo started; sleep 1; echo done', { background: true, tag: 'job' })
  assert.ok((await fx.sandbox.commands.list()).some((p) => p.pid === handle.pid && p.tag === 'job'))
  const out: string[] = []
  const result = await handle.wait({ onStdout: (d) => out.push(d) })
  assert.equal(result.stdout, 'started\ndone\n')
  assert.equal(out.join(''), 'started\ndone\n')
  assert.equal((await handle.info()).exitCode, 0)

  const cat = await fx.sandbox.commands.run('cat', { background: true, keepStdin: true })
  await cat.sendStdin('fed ')
  await fx.sandbox.commands.sendStdin(cat.pid, new Uint8Array([0x61, 0x62]))
  await cat.closeStdin()
  assert.equal((await cat.wait()).stdout, 'fed ab')

  const sleeper = await fx.sandbox.commands.run('sleep 30', { background: true })
  const again = await fx.sandbox.commands.connect(sleeper.pid)
  await again.signal('SIGTERM')
  assert.equal((await sleeper.wait()).exitCode, 143)

  const tree = await fx.sandbox.commands.run('sleep 30 & sleep 30; wait', { background: true })
  await fx.sandbox.commands.kill(tree.pid)
  await assert.rejects(tree.wait({ check: true }), (e: unknown) => e instanceof CommandExitError && e.exitCode === 137)
  await assert.rejects(fx.sandbox.commands.connect(99999), NotFoundError)
  await assert.rejects(cat.sendStdin('late'), ConflictError)
})
