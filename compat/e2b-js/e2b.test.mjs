// The unmodified E2B JavaScript SDK (npm `e2b`, pinned in package.json) drives Airlock,
// configured by environment alone: E2B_API_URL=$AIRLOCK_URL/e2b,
// E2B_SANDBOX_URL=$AIRLOCK_URL/e2b/envd, E2B_API_KEY=<an Airlock API token>.
// Run by crates/airlock-cli/tests/compat_e2b.rs with `node --test`.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CommandExitError, FileType, Sandbox } from 'e2b'

test('files, commands and lifecycle through the E2B SDK', async () => {
  const sb = await Sandbox.create({ metadata: { purpose: 'js' } })
  try {
    // Files: text, bytes, several at once, read back three ways.
    const info = await sb.files.write('/home/user/a.txt', 'text é')
    assert.equal(info.path, '/home/user/a.txt')
    await sb.files.write('b.bin', new Uint8Array([0, 1, 2, 255]).buffer)
    const many = await sb.files.write([
      { path: '/home/user/many/one.txt', data: '1' },
      { path: '/home/user/many/two.txt', data: '2' },
    ])
    assert.deepEqual(many.map((w) => w.name).sort(), ['one.txt', 'two.txt'])
    assert.equal(await sb.files.read('/home/user/a.txt'), 'text é')
    const bytes = await sb.files.read('/home/user/b.bin', { format: 'bytes' })
    assert.deepEqual([...bytes], [0, 1, 2, 255])
    const stream = await sb.files.read('/home/user/a.txt', { format: 'stream' })
    const chunks = []
    for await (const chunk of stream) chunks.push(Buffer.from(chunk))
    assert.equal(Buffer.concat(chunks).toString(), 'text é')
    const listed = await sb.files.list('/home/user', { depth: 2 })
    assert.ok(listed.some((e) => e.path === '/home/user/many/one.txt'))
    assert.ok(await sb.files.exists('/home/user/a.txt'))
    assert.ok(!(await sb.files.exists('/home/user/none')))
    const entry = await sb.files.getInfo('/home/user/a.txt')
    assert.equal(entry.type, FileType.FILE)
    await sb.files.rename('/home/user/a.txt', '/home/user/renamed.txt')
    assert.equal(await sb.files.makeDir('/home/user/d/e'), true)
    await sb.files.remove('/home/user/d')
    assert.ok(!(await sb.files.exists('/home/user/d')))

    // Watch.
    await sb.files.makeDir('/home/user/w')
    const seen = []
    const watcher = await sb.files.watchDir('/home/user/w', (e) => seen.push(e.name))
    await sb.files.write('/home/user/w/new.txt', 'x')
    for (let i = 0; i < 100 && !seen.includes('new.txt'); i++) {
      await new Promise((r) => setTimeout(r, 100))
    }
    await watcher.stop()
    assert.ok(seen.includes('new.txt'), JSON.stringify(seen))

    // Commands: output callbacks, exit codes, background, stdin, kill.
    const out = []
    const ran = await sb.commands.run('echo one; echo two >&2', { onStdout: (d) => out.push(d) })
    assert.equal(ran.stdout, 'one\n')
    assert.equal(ran.stderr, 'two\n')
    assert.equal(out.join(''), 'one\n')
    await assert.rejects(sb.commands.run('exit 5'), (e) => e instanceof CommandExitError && e.exitCode === 5)
    const cat = await sb.commands.run('cat', { background: true, stdin: true })
    await sb.commands.sendStdin(cat.pid, 'fed')
    await sb.commands.closeStdin(cat.pid)
    assert.equal((await cat.wait()).stdout, 'fed')
    const sleeper = await sb.commands.run('sleep 30', { background: true })
    assert.ok((await sb.commands.list()).some((p) => p.pid === sleeper.pid))
    assert.ok(await sb.commands.kill(sleeper.pid))

    // A terminal: an interactive shell typed at and resized.
    let screen = ''
    const until = async (text) => {
      for (let i = 0; i < 200 && !screen.includes(text); i++) {
        await new Promise((r) => setTimeout(r, 50))
      }
      assert.ok(screen.includes(text), `${text} never appeared in ${JSON.stringify(screen)}`)
    }
    const term = await sb.pty.create({
      cols: 80,
      rows: 24,
      onData: (d) => { screen += Buffer.from(d).toString() },
    })
    const typed = (line) => sb.pty.sendInput(term.pid, new TextEncoder().encode(line))
    await typed('stty size\n')
    await until('24 80')
    await sb.pty.resize(term.pid, { cols: 132, rows: 50 })
    await typed('stty size\n')
    await until('50 132')
    await typed('exit 3\n')
    await assert.rejects(term.wait(), (e) => e instanceof CommandExitError && e.exitCode === 3)

    // Lifecycle.
    const got = await sb.getInfo()
    assert.deepEqual(got.metadata, { purpose: 'js' })
    await sb.setTimeout(600_000)
    const again = await Sandbox.connect(sb.sandboxId)
    assert.equal(await again.files.read('/home/user/renamed.txt'), 'text é')
    const page = await Sandbox.list().nextItems()
    assert.ok(page.some((s) => s.sandboxId === sb.sandboxId))
  } finally {
    await sb.kill()
  }
})
