/** Sandboxes: create, connect, list, kill; each with its `files` and `commands`. */

import { Commands } from './commands.js'
import { type ConnectionOptions, discover } from './config.js'
import { Files } from './files.js'
import { type CallOptions, Http, withSignal } from './http.js'
import { type SandboxInfo, sandboxInfo } from './models.js'
import { type Mode, modeText, sandboxRoute } from './routes.js'

/** A file placed in a sandbox before anything runs in it. */
export interface InjectedFile {
  path: string
  data: string | Uint8Array
  mode?: Mode
  /** Read-only even to root inside the sandbox. */
  readonly?: boolean
}

export interface CreateOptions extends ConnectionOptions, CallOptions {
  /** A registered template (default `host`: the host's userland, read-only). */
  template?: string
  env?: Record<string, string>
  files?: InjectedFile[]
  /** `{cpus, memory_mb, pids, disk_mb, ...}` as the daemon takes them. */
  limits?: Record<string, unknown>
  /** Seconds until the daemon deletes it. */
  ttl?: number
  labels?: Record<string, string>
  /** Start it now (default true). */
  start?: boolean
}

/** One sandbox. */
export class Sandbox {
  /** Its id. */
  readonly sandboxId: string
  /** Its files. */
  readonly files: Files
  /** Its commands and background processes. */
  readonly commands: Commands

  private constructor(
    /** It as the daemon last showed it. */
    public info: SandboxInfo,
    private readonly http: Http,
  ) {
    this.sandboxId = info.sandboxId
    this.files = new Files(http, info.sandboxId)
    this.commands = new Commands(http, info.sandboxId)
  }

  /** Creates a sandbox and (unless `start: false`) starts it. */
  static async create(options: CreateOptions = {}): Promise<Sandbox> {
    const http = new Http(discover(options))
    const json: Record<string, unknown> = {}
    if (options.template !== undefined) json.template = options.template
    if (options.env) json.env = options.env
    if (options.limits) json.limits = options.limits
    if (options.labels) json.labels = options.labels
    if (options.ttl !== undefined) json.ttl_secs = options.ttl
    if (options.start !== undefined) json.start = options.start
    if (options.files) json.files = options.files.map(injected)
    let info = sandboxInfo(await http.call('POST', '/v1/sandboxes', withSignal({ json }, options)))
    // On a cluster the daemon answers `pending` before the sandbox's pod runs; wait it out.
    // The daemon bounds the wait: a sandbox it cannot make is gone (NotFoundError, with why).
    while (info.state === 'pending') {
      await pause(PENDING_POLL_MS, options.signal)
      info = sandboxInfo(await http.call('GET', sandboxRoute(info.sandboxId), withSignal({ idempotent: true }, options)))
    }
    return new Sandbox(info, http)
  }

  /** An existing sandbox. */
  static async connect(sandboxId: string, options: ConnectionOptions & CallOptions = {}): Promise<Sandbox> {
    const http = new Http(discover(options))
    const answer = await http.call('GET', sandboxRoute(sandboxId), withSignal({ idempotent: true }, options))
    return new Sandbox(sandboxInfo(answer), http)
  }

  /** Every sandbox the token may reach, oldest first. */
  static async list(options: ConnectionOptions & CallOptions = {}): Promise<SandboxInfo[]> {
    const http = new Http(discover(options))
    const answer = await http.call('GET', '/v1/sandboxes', withSignal({ idempotent: true }, options))
    return (answer as object[]).map(sandboxInfo)
  }

  /** It as the daemon shows it now. */
  async getInfo(options: CallOptions = {}): Promise<SandboxInfo> {
    const answer = await this.http.call('GET', sandboxRoute(this.sandboxId), withSignal({ idempotent: true }, options))
    this.info = sandboxInfo(answer)
    return this.info
  }

  /**
   * A token for this sandbox alone, `read` (its files) or `write` (also writes and
   * commands), for a tool that should reach nothing else. The secret is shown once.
   */
  async createToken(access: 'read' | 'write' = 'read', options: CallOptions & { ttl?: number } = {}): Promise<string> {
    const json: Record<string, unknown> = { access }
    if (options.ttl !== undefined) json.ttl_secs = options.ttl
    const answer = await this.http.call('POST', sandboxRoute(this.sandboxId, '/tokens'), withSignal({ json }, options))
    return String(answer.token)
  }

  /** A signed URL that downloads `path` (GET, Range too) with no header until it expires. */
  downloadUrl(path: string, options: CallOptions & { ttl?: number } = {}): Promise<string> {
    return this.sign(path, 'GET', options)
  }

  /** A signed URL that replaces `path` with a PUT's body, with no header, until it expires. */
  uploadUrl(path: string, options: CallOptions & { ttl?: number } = {}): Promise<string> {
    return this.sign(path, 'PUT', options)
  }

  private async sign(path: string, method: string, options: CallOptions & { ttl?: number }): Promise<string> {
    const json = { path, method, ttl_secs: options.ttl ?? 300 }
    const route = sandboxRoute(this.sandboxId, '/files/signed-url')
    return String((await this.http.call('POST', route, withSignal({ json }, options))).url)
  }

  /** Deletes the sandbox: its processes and files are gone. */
  async kill(options: CallOptions = {}): Promise<void> {
    await this.http.call('DELETE', sandboxRoute(this.sandboxId), withSignal({ idempotent: true }, options))
  }
}

function injected(f: InjectedFile): Record<string, unknown> {
  const out: Record<string, unknown> = { path: f.path }
  if (typeof f.data === 'string') out.content = f.data
  else out.content_b64 = Buffer.from(f.data).toString('base64')
  if (f.mode !== undefined) out.mode = modeText(f.mode)
  if (f.readonly) out.readonly = true
  return out
}

/** Milliseconds between looks at a sandbox the daemon answered as pending. */
const PENDING_POLL_MS = 100

/** Waits `ms`, or rejects as soon as `signal` aborts. */
function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', aborted)
      resolve()
    }, ms)
    const aborted = (): void => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    signal?.addEventListener('abort', aborted, { once: true })
  })
}
