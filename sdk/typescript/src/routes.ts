/** The daemon's routes for one sandbox, and how the SDK writes modes and times. */

export function sandboxRoute(sandboxId: string, sub = ''): string {
  return `/v1/sandboxes/${encodeURIComponent(sandboxId)}${sub}`
}

export function filesRoute(sandboxId: string, sub = ''): string {
  return sandboxRoute(sandboxId, `/files${sub}`)
}

/** A mode as a number (`0o644`) or octal text (`'644'`). */
export type Mode = number | string
/** A time as epoch seconds, RFC 3339 text, or a `Date`. */
export type Mtime = number | string | Date

/** Octal text, as the daemon reads modes: `0o644` and `'644'` are the same. */
export function modeText(mode: Mode): string {
  return typeof mode === 'string' ? mode : mode.toString(8)
}

/** Epoch seconds or RFC 3339, as the daemon reads times. */
export function mtimeText(mtime: Mtime): string {
  return mtime instanceof Date ? mtime.toISOString() : String(mtime)
}

export function flag(value: boolean | undefined): string | undefined {
  return value === undefined ? undefined : value ? 'true' : 'false'
}
