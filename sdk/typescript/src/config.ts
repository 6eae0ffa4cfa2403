/**
 * Where the daemon is and what token to send: the options, then `AIRLOCK_URL` and
 * `AIRLOCK_TOKEN`, then the daemon's own token file (as the CLI finds it).
 */

import { readFileSync } from 'node:fs'
import { join } from 'node:path'

export const DEFAULT_URL = 'http://127.0.0.1:7711'
const DEFAULT_HOME = '/var/lib/airlock'

/** How to reach one daemon: pass these to any call that connects. */
export interface ConnectionOptions {
  /** The daemon's URL; default `AIRLOCK_URL`, then `http://127.0.0.1:7711`. */
  url?: string
  /** An API or sandbox token; default `AIRLOCK_TOKEN`, then the daemon home's `token`. */
  token?: string
}

export interface Config {
  url: string
  token: string
}

export function discover(options: ConnectionOptions = {}): Config {
  const url = options.url || process.env.AIRLOCK_URL || DEFAULT_URL
  const token = options.token || process.env.AIRLOCK_TOKEN || tokenFile()
  if (!token) {
    throw new Error(
      'no token: pass { token }, set AIRLOCK_TOKEN, or run where the daemon\'s home ' +
        '(AIRLOCK_HOME, default /var/lib/airlock) holds its `token` file',
    )
  }
  return { url: url.replace(/\/+$/, ''), token }
}

function tokenFile(): string {
  const home = process.env.AIRLOCK_HOME || DEFAULT_HOME
  try {
    return readFileSync(join(home, 'token'), 'utf8').trim()
  } catch {
    return ''
  }
}
