/**
 * Running commands in a sandbox: to the end (buffered, or with output streamed to
 * callbacks), or in the background as processes that outlive the call, with a handle to
 * wait on, feed, signal and kill them.
 */

import { type Data, lines, toStream } from './body.js'
import { AirlockError, CommandExitError } from './errors.js'
import { type CallOptions, type Http, withSignal } from './http.js'
import { type CommandResult, type ProcessInfo, processInfo } from './models.js'
import { sandboxRoute } from './routes.js'

/** Called with each piece of output as it arrives (text; invalid UTF-8 replaced). */
export type OnOutput = (data: string) => void

export interface RunOptions extends CallOptions {
  env?: Record<string, string>
  cwd?: string
  /** Kill the whole process tree after this long (exit code 124, `timedOut`). */
  timeoutMs?: number
  /** Input for the command's stdin. */
  stdin?: string | Uint8Array
  onStdout?: OnOutput
  onStderr?: OnOutput
  /** Throw `CommandExitError` on a non-zero exit (as `execFileSync` does). */
  check?: boolean
}

export interface BackgroundOptions extends RunOptions {
  background: true
  /** A name to find it by later. */
  tag?: string
  /** Keep stdin open after `stdin`, for `sendStdin`. */
  keepStdin?: boolean
}

/** Commands of one sandbox (`sandbox.commands`). */
export class Commands {
  constructor(
    private readonly http: Http,
    private readonly sandboxId: string,
  ) {}

  /**
   * Runs `cmd` (a string for `/bin/sh -c`, or an argv array) to the end. With callbacks,
   * output reaches them as it happens. With `background: true`, answers at once with a
   * handle: the process runs on when this program goes away.
   */
  run(cmd: string | string[], options: BackgroundOptions): Promise<CommandHandle>
  run(cmd: string | string[], options?: RunOptions): Promise<CommandResult>
  async run(cmd: string | string[], options: RunOptions | BackgroundOptions = {}): Promise<CommandResult | CommandHandle> {
    const body = commandBody(cmd, options)
    if ('background' in options && options.background) {
      const params = { tag: options.tag, stdin: options.keepStdin ? 'true' : undefined }
      const route = sandboxRoute(this.sandboxId, '/processes')
      const info = processInfo(await this.http.call('POST', route, withSignal({ params, json: body }, options)))
      return new CommandHandle(this.http, this.sandboxId, info.pid, options)
    }
    const route = sandboxRoute(this.sandboxId, '/exec')
    let result: CommandResult
    if (options.onStdout || options.onStderr) {
      const spec = withSignal({ params: { stream: 'true' }, json: body }, options)
      const answer = await this.http.request('POST', route, spec)
      result = await collect(lines(answer.body), options)
    } else {
      result = commandResult(await this.http.call('POST', route, withSignal({ json: body }, options)))
    }
    if (options.check && result.exitCode !== 0) {
      throw new CommandExitError(result.exitCode, result.stdout, result.stderr)
    }
    return result
  }

  /** The sandbox's background processes, running and recently ended. */
  async list(options: CallOptions = {}): Promise<ProcessInfo[]> {
    const route = sandboxRoute(this.sandboxId, '/processes')
    const all = await this.http.call('GET', route, withSignal({ idempotent: true }, options))
    return (all as object[]).map(processInfo)
  }

  /** A handle on a background process started earlier (by this program or another). */
  async connect(pid: number, options: CallOptions = {}): Promise<CommandHandle> {
    const route = sandboxRoute(this.sandboxId, `/processes/${pid}`)
    await this.http.call('GET', route, withSignal({ idempotent: true }, options))
    return new CommandHandle(this.http, this.sandboxId, pid, {})
  }

  /** Kills a background process and everything it started. */
  async kill(pid: number, options: CallOptions = {}): Promise<void> {
    return new CommandHandle(this.http, this.sandboxId, pid, {}).kill(options)
  }

  /** Sends `data` to a background process's stdin (started with `keepStdin`). */
  async sendStdin(pid: number, data: Data, options: CallOptions = {}): Promise<void> {
    return new CommandHandle(this.http, this.sandboxId, pid, {}).sendStdin(data, options)
  }
}

/** A background process: wait for it, feed it, signal it, kill it. */
export class CommandHandle {
  constructor(
    private readonly http: Http,
    private readonly sandboxId: string,
    /** The daemon's number for it, unique in its sandbox. */
    readonly pid: number,
    private readonly callbacks: Pick<RunOptions, 'onStdout' | 'onStderr' | 'check'>,
  ) {}

  private route(sub = ''): string {
    return sandboxRoute(this.sandboxId, `/processes/${this.pid}${sub}`)
  }

  /**
   * Waits for it to end: its output (what it wrote before this call too, up to the
   * last MiB) goes to the callbacks given here or to `run`, and its result is answered.
   */
  async wait(options: CallOptions & Pick<RunOptions, 'onStdout' | 'onStderr' | 'check'> = {}): Promise<CommandResult> {
    const merged = { ...this.callbacks, ...options }
    const spec = withSignal({ params: { replay: 'true' } }, options)
    const answer = await this.http.request('GET', this.route('/events'), spec)
    const result = await collect(lines(answer.body), merged)
    if (merged.check && result.exitCode !== 0) {
      throw new CommandExitError(result.exitCode, result.stdout, result.stderr)
    }
    return result
  }

  /** It as the daemon shows it now. */
  async info(options: CallOptions = {}): Promise<ProcessInfo> {
    return processInfo(await this.http.call('GET', this.route(), withSignal({ idempotent: true }, options)))
  }

  /** Writes `data` to its stdin (kept open with `keepStdin`), streamed. */
  async sendStdin(data: Data, options: CallOptions = {}): Promise<void> {
    await this.http.call('POST', this.route('/stdin'), withSignal({ body: toStream(data) }, options))
  }

  /** Closes its stdin: it reads the end of its input. */
  async closeStdin(options: CallOptions = {}): Promise<void> {
    await this.http.call('POST', this.route('/stdin'), withSignal({ params: { close: 'true' }, body: '' }, options))
  }

  /** Sends a signal by name (`SIGTERM`, `SIGINT`, ...; `SIGKILL` kills its whole tree). */
  async signal(name: string, options: CallOptions = {}): Promise<void> {
    await this.http.call('POST', this.route('/signal'), withSignal({ json: { signal: name } }, options))
  }

  /** Kills it and everything it started. */
  async kill(options: CallOptions = {}): Promise<void> {
    await this.http.call('DELETE', this.route(), withSignal({}, options))
  }
}

function commandBody(cmd: string | string[], options: RunOptions): Record<string, unknown> {
  const body: Record<string, unknown> = typeof cmd === 'string' ? { shell: cmd } : { cmd: [...cmd] }
  if (options.env) body.env = options.env
  if (options.cwd !== undefined) body.cwd = options.cwd
  if (options.timeoutMs !== undefined) body.timeout_ms = options.timeoutMs
  if (typeof options.stdin === 'string') body.stdin = options.stdin
  else if (options.stdin !== undefined) body.stdin_b64 = Buffer.from(options.stdin).toString('base64')
  return body
}

/** The exact bytes of a text field that may have a base64 twin. */
function exact(text: string | undefined, encoded: string | undefined): Uint8Array {
  return encoded ? new Uint8Array(Buffer.from(encoded, 'base64')) : new TextEncoder().encode(text ?? '')
}

const decoder = new TextDecoder()

function commandResult(j: Record<string, any>): CommandResult {
  return {
    exitCode: Number(j.exit_code),
    stdout: j.stdout ?? '',
    stderr: j.stderr ?? '',
    stdoutBytes: exact(j.stdout, j.stdout_b64),
    stderrBytes: exact(j.stderr, j.stderr_b64),
    timedOut: Boolean(j.timed_out),
    truncated: Boolean(j.truncated),
  }
}

/** Reads a command's NDJSON events to its exit, handing output to the callbacks. */
async function collect(events: AsyncIterable<string>, callbacks: Pick<RunOptions, 'onStdout' | 'onStderr'>): Promise<CommandResult> {
  const out: Uint8Array[] = []
  const err: Uint8Array[] = []
  let exitCode = -1
  let timedOut = false
  // One decoder per stream, so a character split between chunks reaches a callback whole.
  const streaming = { stdout: new TextDecoder(), stderr: new TextDecoder() }
  for await (const line of events) {
    if (!line.trim()) continue
    const event = JSON.parse(line) as Record<string, any>
    if (event.type === 'stdout' || event.type === 'stderr') {
      const data = exact(event.data, event.data_b64)
      ;(event.type === 'stdout' ? out : err).push(data)
      const callback = event.type === 'stdout' ? callbacks.onStdout : callbacks.onStderr
      const text = streaming[event.type as 'stdout' | 'stderr'].decode(data, { stream: true })
      if (text) callback?.(text)
    } else if (event.type === 'exit') {
      exitCode = Number(event.exit_code)
      timedOut = Boolean(event.timed_out)
    } else if (event.type === 'error') {
      throw new AirlockError(String(event.message), 'internal')
    }
  }
  const stdoutBytes = new Uint8Array(Buffer.concat(out))
  const stderrBytes = new Uint8Array(Buffer.concat(err))
  return {
    exitCode,
    stdout: decoder.decode(stdoutBytes),
    stderr: decoder.decode(stderrBytes),
    stdoutBytes,
    stderrBytes,
    timedOut,
    truncated: false,
  }
}
