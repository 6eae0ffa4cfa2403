// The package as users get it: `npm pack`, installed into a fresh project, imported from
// ESM and from CommonJS (each then talks to a real daemon), and its types checked from a
// TypeScript consumer.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'

import { type Daemon, REPO, startDaemon } from './daemon.js'

let daemon: Daemon
before(async () => {
  daemon = await startDaemon()
})
after(async () => daemon.stop())

const SDK = join(REPO, 'sdk', 'typescript')

test('npm pack installs into a fresh project and works from ESM, CommonJS and TypeScript', () => {
  const project = mkdtempSync(join(tmpdir(), 'airlock-ts-consumer-'))
  execFileSync('npm', ['pack', '--pack-destination', project], { cwd: SDK, stdio: 'pipe' })
  const tarball = readdirSync(project).find((f) => f.endsWith('.tgz'))
  assert.ok(tarball, 'npm pack made no tarball')
  writeFileSync(join(project, 'package.json'), '{"name": "consumer", "private": true}\n')
  execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', `./${tarball}`], {
    cwd: project,
    stdio: 'pipe',
  })
  const script = (load: string): string => `
    ${load}
    const sandbox = await Sandbox.create()
    await sandbox.files.write('/workspace/hello.txt', 'packed')
    const out = await sandbox.commands.run('cat /workspace/hello.txt')
    let missing = ''
    try { await sandbox.files.stat('/workspace/none') } catch (e) { missing = e instanceof NotFoundError ? 'NotFoundError' : String(e) }
    await sandbox.kill()
    console.log(out.stdout + ' ' + missing)
  `
  writeFileSync(join(project, 'esm.mjs'), script("import { Sandbox, NotFoundError } from '@airlock/sdk'"))
  writeFileSync(
    join(project, 'cjs.cjs'),
    `(async () => { ${script("const { Sandbox, NotFoundError } = require('@airlock/sdk')")} })().catch((e) => { console.error(e); process.exit(1) })`,
  )
  const env = { ...process.env, AIRLOCK_URL: daemon.url, AIRLOCK_TOKEN: daemon.token }
  for (const file of ['esm.mjs', 'cjs.cjs']) {
    const printed = execFileSync('node', [file], { cwd: project, env, encoding: 'utf8' })
    assert.equal(printed.trim(), 'packed NotFoundError', file)
  }
  // The types, as a TypeScript user's compiler sees them.
  writeFileSync(
    join(project, 'consumer.ts'),
    `import { Sandbox, type CommandResult } from '@airlock/sdk'
     export async function run(): Promise<CommandResult> {
       const sandbox = await Sandbox.create({ ttl: 60 })
       const text: string = await sandbox.files.read('/etc/hostname', { format: 'text' })
       const stream: ReadableStream<Uint8Array> = await sandbox.files.read('/etc/hostname', { format: 'stream' })
       void text; void stream
       return sandbox.commands.run(['true'])
     }\n`,
  )
  const tsc = join(SDK, 'node_modules', 'typescript', 'bin', 'tsc')
  for (const module of ['NodeNext', 'CommonJS']) {
    const resolution = module === 'NodeNext' ? 'NodeNext' : 'Node10'
    execFileSync(
      'node',
      [tsc, '--noEmit', '--strict', '--skipLibCheck', '--module', module, '--moduleResolution', resolution,
        '--target', 'ES2022', '--types', 'node', '--typeRoots', join(SDK, 'node_modules', '@types'), 'consumer.ts'],
      { cwd: project, stdio: 'pipe' },
    )
  }
  rmSync(project, { recursive: true, force: true })
})
