/**
 * Mirror mode's decisions, with no I/O: given both sides' listings, which entries to
 * send and which to delete. An entry is the same on both sides when it is the same kind
 * and, for a file, the same size, mtime (whole seconds) and mode; for a symlink, the
 * same target. The Python SDK and the CLI decide the same way.
 */

/** One entry as either side sees it. */
export interface Side {
  /** `file`, `dir`, `symlink`, or `other` (what a mirror never carries). */
  kind: string
  size?: number
  mtime?: number
  mode?: number
  target?: string
}

/** Entries to send (relative paths, parents first) and to delete (none inside another). */
export interface Plan {
  send: string[]
  delete: string[]
}

/** Whole epoch seconds of the daemon's RFC 3339 times (UTC, nanoseconds). */
export function rfc3339Seconds(text: string): number {
  return Math.floor(Date.parse(`${text.slice(0, 19)}Z`) / 1000)
}

function same(source: Side, dest: Side): boolean {
  if (source.kind !== dest.kind) return false
  if (source.kind === 'symlink') return source.target === dest.target
  if (source.kind === 'file') {
    return (
      source.size === dest.size &&
      source.mtime === dest.mtime &&
      ((source.mode ?? 0) & 0o7777) === ((dest.mode ?? 0) & 0o7777)
    )
  }
  return true
}

/** What to send from `source` and, with `remove`, delete from `dest`. */
export function plan(source: Map<string, Side>, dest: Map<string, Side>, remove: boolean): Plan {
  const out: Plan = { send: [], delete: [] }
  for (const rel of [...source.keys()].sort()) {
    const entry = source.get(rel) as Side
    if (entry.kind === 'other') continue
    const there = dest.get(rel)
    if (!there || !same(entry, there)) out.send.push(rel)
  }
  if (remove) out.delete = topmost([...dest.keys()].filter((rel) => !source.has(rel)))
  return out
}

/** Orders paths' component lists, so a directory's descendants follow it directly. */
function byComponents(x: string[], y: string[]): number {
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1
  }
  return x.length - y.length
}

/**
 * The paths with no ancestor among them: removing those removes the rest. Sorted by
 * components (each path split once), one pass against the last path kept is enough;
 * checking each path against every kept one grew with the square of their number.
 */
export function topmost(paths: string[]): string[] {
  const sorted = paths.map((rel) => ({ rel, parts: rel.split('/') }))
  sorted.sort((a, b) => byComponents(a.parts, b.parts))
  const kept: string[] = []
  for (const { rel } of sorted) {
    const last = kept[kept.length - 1]
    if (last === undefined || !rel.startsWith(`${last}/`)) kept.push(rel)
  }
  return kept
}
