/**
 * A real daemon for the SDK's tests: `airlock serve` on a free loopback port with its
 * own home, one per test file (the binary is the workspace's debug build, or
 * AIRLOCK_BIN). Its URL and token are set as AIRLOCK_URL and AIRLOCK_TOKEN, as users
 * set them.
 */

import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { after, before } from 'node:test'
import { fileURLToPath } from 'node:url'

import { type CreateOptions, Sandbox } from '../src/index.js'

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..')

export interface Daemon {
  url: string
  token: string
  home: string
  pid: number
  /** SIGKILL, at once: no cleanup. */
  kill(): void
  stop(): Promise<void>
}

/** Starts a daemon; with `again`, the same home on the same address (a restart). */
export async function startDaemon(again?: Daemon): Promise<Daemon> {
  const binary = process.env.AIRLOCK_BIN ?? join(REPO, 'target', 'debug', 'airlock')
  if (!existsSync(binary)) throw new Error(`no daemon binary at ${binary}: cargo build -p airlock-cli`)
  const scratch = again ? dirname(again.home) : mkdtempSync(join(tmpdir(), 'airlock-ts-'))
  const home = join(scratch, 'home')
  const listen = again ? again.url.replace('http://', '') : '127.0.0.1:0'
  if (again) rmSync(join(home, 'listen'), { force: true })
  const log = openSync(join(scratch, 'daemon.log'), 'a')
  const child: ChildProcess = spawn(binary, ['serve', '--listen', listen, '--home', home], {
    stdio: ['ignore', log, log],
  })
  const url = await ready(child, home)
  const token = readFileSync(join(home, 'token'), 'utf8').trim()
  process.env.AIRLOCK_URL = url
  process.env.AIRLOCK_TOKEN = token
  return {
    url,
    token,
    home,
    pid: child.pid as number,
    kill() {
      child.kill('SIGKILL')
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((done) => child.once('exit', done))
        child.kill('SIGTERM')
        await exited
      }
      rmSync(scratch, { recursive: true, force: true })
    },
  }
}

async function ready(child: ChildProcess, home: string): Promise<string> {
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the daemon exited with ${child.exitCode}`)
    const listen = join(home, 'listen')
    if (existsSync(listen)) {
      const url = `http://${readFileSync(listen, 'utf8').trim()}`
      try {
        if ((await fetch(`${url}/healthz`)).ok) return url
      } catch {
        // Not listening yet.
      }
    }
    await new Promise((done) => setTimeout(done, 50))
  }
  throw new Error('the daemon did not become ready')
}

/** The daemon's resident memory, in KiB. */
export function rssKib(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const line = status.split('\n').find((l) => l.startsWith('VmRSS:')) ?? 'VmRSS: 0 kB'
  return Number(line.split(/\s+/)[1])
}

/** A daemon and a sandbox for one test file: made before its tests, removed after. */
export function useSandbox(options: CreateOptions = {}): { readonly daemon: Daemon; readonly sandbox: Sandbox } {
  const held = {} as { daemon: Daemon; sandbox: Sandbox }
  before(async () => {
    held.daemon = await startDaemon()
    held.sandbox = await Sandbox.create(options)
  })
  after(async () => {
    await held.sandbox?.kill()
    await held.daemon?.stop()
  })
  return held
}
