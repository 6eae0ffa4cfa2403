/**
 * Exclude patterns as the CLI and the Python SDK read them (shell-style, as Python's
 * `fnmatch`): `*` is any run of characters (`/` too), `?` one character, `[abc]` and
 * `[!abc]` a set. A pattern excludes an entry when it matches its name or its path
 * relative to the tree's root.
 */

const cache = new Map<string, RegExp>()

export function globToRegExp(pattern: string): RegExp {
  let cached = cache.get(pattern)
  if (cached) return cached
  let source = ''
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string
    if (c === '*') source += '.*'
    else if (c === '?') source += '.'
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2)
      if (end < 0) {
        source += '\\['
        continue
      }
      let set = pattern.slice(i + 1, end)
      const negated = set.startsWith('!')
      if (negated) set = set.slice(1)
      set = set.replace(/[\\\]^]/g, '\\$&')
      source += `[${negated ? '^' : ''}${set}]`
      i = end
    } else source += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
  }
  cached = new RegExp(`^${source}$`, 's')
  cache.set(pattern, cached)
  return cached
}

/** Whether `name` or `relative` matches one of `patterns`. */
export function excluded(name: string, relative: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => {
    const re = globToRegExp(p)
    return re.test(name) || re.test(relative)
  })
}
