/**
 * Trees as tar streams, both ways, never holding a file whole. tar-stream does the
 * format (ustar, PAX and GNU long names, large sizes); the rules are ours.
 *
 * `packTree` walks a local directory and streams it as it reads: names relative to it,
 * modes, mtimes and symlinks (as links, never followed) kept. `extractTree` writes a tar
 * stream under a local directory as safely as the daemon extracts: no absolute names,
 * no `..`, never through a symlink (the archive's own or one already there), no devices
 * or FIFOs, and hard links only to files it has just written. At the first entry that
 * breaks a rule it stops, writing nothing further, with a `BadArchiveError`.
 */

import { randomBytes } from 'node:crypto'
import { constants, createReadStream } from 'node:fs'
import * as fs from 'node:fs/promises'
import { dirname, join, relative, sep } from 'node:path'

import * as tar from 'tar-stream'

import { BadArchiveError } from './errors.js'
import { excluded } from './glob.js'

/**
 * Every path under `root` that a tree upload sends, parents before children, names
 * sorted, less what `exclude` matches (by name or by path relative to `root`); a
 * symlink to a directory is yielded as itself and never followed.
 */
export async function* walkTree(root: string, exclude: readonly string[] = []): AsyncGenerator<string> {
  async function* below(dir: string): AsyncGenerator<string> {
    const entries = await fs.readdir(dir, { withFileTypes: true })
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    for (const entry of entries) {
      const path = join(dir, entry.name)
      if (excluded(entry.name, posixRelative(root, path), exclude)) continue
      yield path
      if (entry.isDirectory()) yield* below(path)
    }
  }
  yield* below(root)
}

/** `path` relative to `root`, with `/` between its parts. */
export function posixRelative(root: string, path: string): string {
  return relative(root, path).split(sep).join('/')
}

/**
 * The entries at `paths` (under `root`) as a tar stream, read as the stream is read.
 * FIFOs, sockets and devices are left out, as the daemon leaves them out.
 */
export function packTree(root: string, paths: AsyncIterable<string>): AsyncIterable<Uint8Array> {
  const pack = tar.pack()
  const add = (header: tar.Headers): Promise<void> =>
    new Promise((resolve, reject) => {
      pack.entry(header, (error) => (error ? reject(error) : resolve()))
    })
  const fill = async (): Promise<void> => {
    for await (const path of paths) {
      const info = await fs.lstat(path)
      const header: tar.Headers = {
        name: posixRelative(root, path),
        mode: info.mode & 0o7777,
        mtime: new Date(Math.floor(info.mtimeMs / 1000) * 1000),
      }
      if (info.isSymbolicLink()) {
        await add({ ...header, type: 'symlink', linkname: await fs.readlink(path) })
      } else if (info.isDirectory()) {
        await add({ ...header, type: 'directory' })
      } else if (info.isFile()) {
        const size = info.size
        const done = new Promise<void>((resolve, reject) => {
          const sink = pack.entry({ ...header, type: 'file', size }, (error) =>
            error ? reject(error) : resolve(),
          )
          if (size === 0) sink.end()
          else {
            // Exactly the size announced: a file that grows is cut, one that shrinks fails.
            createReadStream(path, { start: 0, end: size - 1 }).on('error', reject).pipe(sink)
          }
        })
        await done
      }
    }
    pack.finalize()
  }
  fill().catch((error: unknown) => pack.destroy(error as Error))
  return pack
}

/**
 * Extracts a tar stream under `local` (made if missing); answers the entries written.
 * Throws `BadArchiveError`, writing nothing further, at the first entry that would land
 * outside `local` or through a symlink.
 */
export async function extractTree(source: AsyncIterable<Uint8Array>, local: string): Promise<number> {
  await fs.mkdir(local, { recursive: true })
  const root = await fs.realpath(local)
  const written = new Set<string>()
  const extract = tar.extract()
  const feeding = feed(source, extract)
  // Its failure (a broken download) also ends the loop below, which reports it; until
  // the loop has, it must not count as unhandled, which would end the whole process.
  feeding.catch(() => undefined)
  let count = 0
  try {
    for await (const entry of extract) {
      const { header } = entry
      const target = targetOf(root, header.name)
      await checkParents(root, target)
      const mode = (header.mode ?? 0o644) & 0o7777
      switch (header.type) {
        case 'directory':
          entry.resume()
          if (!(await isRealDir(target))) {
            await clear(target)
            await fs.mkdir(target, { mode: 0o755 })
          }
          await fs.chmod(target, mode)
          break
        case 'file':
        case 'contiguous-file':
          // No clear(): the new file replaces whatever file or link has the name in one
          // rename, so a download cut off mid-file leaves the old one.
          await writeFile(target, entry, mode)
          written.add(target)
          break
        case 'symlink':
          entry.resume()
          await clear(target)
          await fs.symlink(header.linkname ?? '', target)
          break
        case 'link': {
          entry.resume()
          const source = targetOf(root, header.linkname ?? '')
          if (!written.has(source)) {
            throw new BadArchiveError(
              `${header.name}: a hard link to ${JSON.stringify(header.linkname)}, not to a file of this archive`,
              'bad_archive',
            )
          }
          await clear(target)
          await fs.link(source, target)
          break
        }
        default:
          // Devices and FIFOs are never made.
          entry.resume()
          continue
      }
      if (header.type !== 'symlink' && header.mtime) {
        await fs.utimes(target, header.mtime, header.mtime)
      }
      count++
    }
  } catch (error) {
    extract.destroy()
    await feeding.catch(() => undefined)
    throw error
  }
  await feeding
  return count
}

/** Writes `source` into the extractor, waiting when it is full, then ends it. */
async function feed(source: AsyncIterable<Uint8Array>, extract: tar.Extract): Promise<void> {
  try {
    for await (const chunk of source) {
      if (extract.destroyed) return
      if (!extract.write(chunk)) {
        await new Promise<void>((resolve) => {
          extract.once('drain', resolve)
          extract.once('close', resolve)
        })
      }
    }
    extract.end()
  } catch (error) {
    extract.destroy(error as Error)
    throw error
  }
}

/** Where an archive name lands under `root`; a name that would leave it is refused. */
function targetOf(root: string, name: string): string {
  const parts = name.split('/').filter((p) => p !== '' && p !== '.')
  if (name.startsWith('/') || parts.includes('..')) {
    throw new BadArchiveError(`${JSON.stringify(name)} names a place outside the target`, 'bad_archive')
  }
  return parts.length ? join(root, ...parts) : root
}

/** Every directory between `root` and `target` is a real directory (made if missing). */
async function checkParents(root: string, target: string): Promise<void> {
  const parts = relative(root, target).split(sep).slice(0, -1)
  let current = root
  for (const part of parts) {
    current = join(current, part)
    let info
    try {
      info = await fs.lstat(current)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
      await fs.mkdir(current, { mode: 0o755 })
      continue
    }
    if (!info.isDirectory()) {
      throw new BadArchiveError(
        `${posixRelative(root, target)} would be written through ${current}, which is not a directory`,
        'bad_archive',
      )
    }
  }
}

async function isRealDir(path: string): Promise<boolean> {
  try {
    return (await fs.lstat(path)).isDirectory()
  } catch {
    return false
  }
}

/** Removes what is in the way (a file or a link, never followed); keeps directories. */
async function clear(target: string): Promise<void> {
  let info
  try {
    info = await fs.lstat(target)
  } catch {
    return
  }
  if (!info.isDirectory()) await fs.unlink(target)
}

/** The prefix of a file being written, as the daemon names its own (and 16 hex digits). */
const TEMP_PREFIX = '.airlock-tmp-'

/**
 * Fills a new temporary file beside `target` (never through a link that appeared
 * since) with `source`'s bytes, then renames it over `target`: a file or a link there
 * is replaced, never followed; a directory there is an error. Whatever stops it midway,
 * a broken download above all, removes the temporary file and leaves `target` as it was.
 */
async function writeFile(target: string, source: AsyncIterable<Uint8Array>, mode: number): Promise<void> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW
  let temp: string
  let handle: fs.FileHandle
  for (;;) {
    temp = join(dirname(target), `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`)
    try {
      handle = await fs.open(temp, flags, 0o600)
      break
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
  }
  try {
    try {
      for await (const chunk of source) await handle.write(chunk)
      await handle.chmod(mode)
    } finally {
      await handle.close()
    }
    await fs.rename(temp, target)
  } catch (error) {
    await fs.unlink(temp).catch(() => undefined)
    throw error
  }
}
