/**
 * Trees as tar streams, both ways, never holding a file whole. tar-stream does the
 * format (ustar, PAX and GNU long names, large sizes); the rules are ours.
 *
 * `packTree` walks a local directory and streams it as it reads: names relative to it,
 * modes, mtimes and symlinks (as links, never followed) kept. `extractTree` writes a tar
 * stream under a local directory as safely as the daemon extracts: no absolute names,
 * no `..`, never through a symlink (the archive's own or one already there), no devices
 * or FIFOs, and hard links only to files it has just written; all or nothing, moved into
 * place only once the whole archive is in. At the first entry that breaks a rule it
 * stops, writing nothing, with a `BadArchiveError`.
 */

import { randomBytes } from 'node:crypto'
import { close, constants, createReadStream, lstat as lstatCalling, open, read } from 'node:fs'
import * as fs from 'node:fs/promises'
import { dirname, join, relative, sep } from 'node:path'
import { promisify } from 'node:util'

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
 * The least a packed tree sends at a time: a tree of small files comes as two or three
 * pieces a file (its header, its bytes, their padding), and each piece went as a write
 * of its own.
 */
export const GATHER = 1 << 20

/**
 * The entries at `paths` (under `root`) as a tar stream, read as the stream is read, in
 * runs of at least `GATHER` bytes (`gathered`). FIFOs, sockets and devices are left
 * out, as the daemon leaves them out.
 */
export function packTree(root: string, paths: AsyncIterable<string>): AsyncIterable<Uint8Array> {
  return gathered(packPieces(root, paths))
}

/**
 * `pieces` joined into runs of at least `GATHER` bytes; a piece that large passes as it
 * is, so its bytes are not copied again.
 */
export async function* gathered(pieces: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let batch: Uint8Array[] = []
  let size = 0
  for await (const piece of pieces) {
    if (piece.byteLength >= GATHER) {
      if (batch.length) yield Buffer.concat(batch, size)
      batch = []
      size = 0
      yield piece
      continue
    }
    batch.push(piece)
    size += piece.byteLength
    if (size >= GATHER) {
      yield Buffer.concat(batch, size)
      batch = []
      size = 0
    }
  }
  if (batch.length) yield Buffer.concat(batch, size)
}

/** Entries prepared ahead of the packer: their `lstat`s and small files' reads overlap. */
const AHEAD = 16

/** Files up to this size are read whole while they wait their turn; larger ones stream. */
const SMALL = 64 * 1024

/** An entry ready to pack: its header, and a small file's bytes read whole. */
interface Prepared {
  header: tar.Headers
  path: string
  content?: Buffer
}

/**
 * The entries at `paths`, in order, each prepared while up to `AHEAD` before it are
 * packed: one at a time, each took a trip to libuv's threads for its `lstat` and for
 * each open, read and close of its file, one after another. FIFOs, sockets and devices
 * are left out, as the daemon leaves them out.
 */
async function* preparedAhead(root: string, paths: AsyncIterable<string>): AsyncGenerator<Prepared> {
  const window: Promise<Prepared | undefined>[] = []
  try {
    for await (const path of paths) {
      const next = prepare(root, path)
      // Its failure is met when its turn comes; until then it must not count as unhandled.
      next.catch(() => undefined)
      window.push(next)
      if (window.length < AHEAD) continue
      const entry = await window.shift()
      if (entry) yield entry
    }
    while (window.length) {
      const entry = await window.shift()
      if (entry) yield entry
    }
  } finally {
    // Left early (a failure): what is still being read finishes and closes its file.
    await Promise.allSettled(window)
  }
}

async function prepare(root: string, path: string): Promise<Prepared | undefined> {
  const info = await lstat(path)
  const header: tar.Headers = {
    name: posixRelative(root, path),
    mode: info.mode & 0o7777,
    mtime: new Date(Math.floor(info.mtimeMs / 1000) * 1000),
  }
  if (info.isSymbolicLink()) return { header: { ...header, type: 'symlink', linkname: await fs.readlink(path) }, path }
  if (info.isDirectory()) return { header: { ...header, type: 'directory' }, path }
  if (!info.isFile()) return undefined
  const file = { header: { ...header, type: 'file' as const, size: info.size }, path }
  return info.size > SMALL ? file : { ...file, content: await readExactly(path, info.size) }
}

/** `lstat` through the callback API: cheaper per call than `fs.promises.lstat` here. */
const lstat = promisify(lstatCalling)

/**
 * The first `size` bytes of the file at `path`: one that grew is cut, one that shrank
 * fails. Through the callback API on a plain descriptor, one promise for the whole read:
 * a `FileHandle` took a promise and a trip through its own bookkeeping for each of its
 * open, read and close, and those were a third of the packer's time.
 */
export function readExactly(path: string, size: number): Promise<Buffer> {
  const content = Buffer.allocUnsafe(size)
  if (size === 0) return Promise.resolve(content)
  return new Promise((resolve, reject) => {
    open(path, constants.O_RDONLY, (opened, fd) => {
      if (opened) return reject(opened)
      const finish = (error: Error | null): void =>
        close(fd, (closed) => {
          const failed = error ?? closed
          if (failed) reject(failed)
          else resolve(content)
        })
      const more = (got: number): void => {
        if (got === size) return finish(null)
        read(fd, content, got, size - got, got, (failed, bytesRead) => {
          if (failed) return finish(failed)
          if (bytesRead === 0) return finish(new Error(`${path} shrank while it was being sent`))
          more(got + bytesRead)
        })
      }
      more(0)
    })
  })
}

function packPieces(root: string, paths: AsyncIterable<string>): AsyncIterable<Uint8Array> {
  const pack = tar.pack()
  const add = (header: tar.Headers, content?: Buffer): Promise<void> =>
    new Promise((resolve, reject) => {
      const done = (error?: Error | null): void => (error ? reject(error) : resolve())
      if (content) pack.entry(header, content, done)
      else pack.entry(header, done)
    })
  const fill = async (): Promise<void> => {
    for await (const { header, path, content } of preparedAhead(root, paths)) {
      if (header.type !== 'file' || content) {
        await add(header, content)
        continue
      }
      await new Promise<void>((resolve, reject) => {
        const sink = pack.entry(header, (error) => (error ? reject(error) : resolve()))
        // Exactly the size announced: a file that grows is cut, one that shrinks fails.
        createReadStream(path, { start: 0, end: (header.size ?? 0) - 1 }).on('error', reject).pipe(sink)
      })
    }
    pack.finalize()
  }
  fill().catch((error: unknown) => pack.destroy(error as Error))
  return pack
}

/**
 * Extracts a tar stream under `local` (made if missing); answers the entries written.
 * Throws `BadArchiveError`, writing nothing, at the first entry that would land outside
 * `local` or through a symlink.
 *
 * All or nothing: the entries land in a staging directory inside `local` and are moved
 * into place only once the whole archive is in, so a download that breaks off (or an
 * archive refused midway) leaves `local` as it was.
 */
export async function extractTree(source: AsyncIterable<Uint8Array>, local: string): Promise<number> {
  await fs.mkdir(local, { recursive: true })
  const root = await fs.realpath(local)
  const staging = await makeStaging(root)
  try {
    const described: Described = new Map()
    const count = await extractInto(source, staging, root, described)
    await merge(staging, root, described)
    const own = described.get(staging) // the archive's own entry for `local` itself
    if (own) await describe(root, own)
    return count
  } finally {
    await fs.rm(staging, { recursive: true, force: true })
  }
}

/** A directory's mode and mtime, as its archive entry gave them. */
type Described = Map<string, { mode: number; mtime: Date | undefined }>

/**
 * The prefix of the directory a tree download is extracted into; 16 hex digits follow,
 * the form the daemon reserves, so that one a killed process left behind is skipped if
 * its folder is uploaded later.
 */
const UNPACK_PREFIX = '.airlock-unpack-'

/**
 * A new directory in `root` to extract into: private (0700), and on the same
 * filesystem, so the move into place is renames.
 */
export async function makeStaging(root: string): Promise<string> {
  for (;;) {
    const staging = join(root, UNPACK_PREFIX + randomBytes(8).toString('hex'))
    try {
      await fs.mkdir(staging, { mode: 0o700 })
      return staging
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
  }
}

/**
 * Extracts under `staging`, checking each entry against what `root` already holds;
 * answers the entries written, and fills `described` with the directories the archive
 * described.
 */
async function extractInto(
  source: AsyncIterable<Uint8Array>,
  staging: string,
  root: string,
  described: Described,
): Promise<number> {
  const written = new Set<string>()
  const known = new Map<string, boolean>()
  const realDirs = new Set<string>([staging])
  const extract = tar.extract()
  const feeding = feed(source, extract)
  // Its failure (a broken download) also ends the loop below, which reports it; until
  // the loop has, it must not count as unhandled, which would end the whole process.
  feeding.catch(() => undefined)
  let count = 0
  try {
    for await (const entry of extract) {
      const { header } = entry
      const target = targetOf(staging, header.name)
      await checkParents(staging, target, realDirs)
      await checkDestination(staging, root, target, described, header.type === 'directory', known)
      const mode = (header.mode ?? 0o644) & 0o7777
      switch (header.type) {
        case 'directory':
          entry.resume()
          if (!(await isRealDir(target))) {
            await clear(target)
            await fs.mkdir(target, { mode: 0o755 })
          }
          realDirs.add(target)
          await fs.chmod(target, mode)
          described.set(target, { mode, mtime: header.mtime })
          break
        case 'file':
        case 'contiguous-file':
          await clear(target) // the archive's own earlier entry of that name
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
          const source = targetOf(staging, header.linkname ?? '')
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

/**
 * Refuses an entry that the move into `root` could not place without writing through
 * something `root` already holds: a symlink or a file where a directory on its way is,
 * unless the archive's own directory replaces it; or a directory where the entry, not
 * one itself, goes. `known` remembers, for one extraction, which directories on the way
 * `root` has (true) and lacks (false): nothing is written into `root` before the move,
 * so each is looked at once, not once an entry. An entry whose parent is known starts
 * there: a deep tree would otherwise take quadratic time.
 */
async function checkDestination(
  staging: string,
  root: string,
  target: string,
  described: Described,
  isDir: boolean,
  known: Map<string, boolean>,
): Promise<void> {
  const rel = relative(staging, target).split(sep).filter((p) => p !== '')
  let first = 1
  if (rel.length > 1) {
    const parent = known.get(join(root, ...rel.slice(0, -1)))
    if (parent === false) return // from here down, all new
    if (parent === true) first = rel.length
  }
  for (let depth = first; depth <= rel.length; depth++) {
    const there = join(root, ...rel.slice(0, depth))
    const last = depth === rel.length
    const seen = last ? undefined : known.get(there)
    if (seen === true) continue
    if (seen === false) return // from here down, all new
    let info
    try {
      info = await fs.lstat(there)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
      if (!last || isDir) known.set(there, false)
      return // from here down, all new
    }
    if (info.isDirectory()) {
      if (last && !isDir) {
        throw isADirectory(`${there} is a directory; ${rel.join('/')} is not`)
      }
      known.set(there, true)
      continue
    }
    if (last || described.has(join(staging, ...rel.slice(0, depth)))) return // replaced whole by the move
    throw new BadArchiveError(`${rel.join('/')} would be written through ${there}`, 'bad_archive')
  }
}

/**
 * Moves everything under `staged` into `into`. A name `into` lacks is renamed across
 * whole; a directory meets a directory by merging; anything else replaces what is
 * there, never followed.
 */
async function merge(staged: string, into: string, described: Described): Promise<void> {
  for (const name of await fs.readdir(staged)) {
    const source = join(staged, name)
    const dest = join(into, name)
    const sourceIsDir = (await fs.lstat(source)).isDirectory()
    let destInfo
    try {
      destInfo = await fs.lstat(dest)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
      await fs.rename(source, dest)
      continue
    }
    if (sourceIsDir && destInfo.isDirectory()) {
      await merge(source, dest, described)
      const own = described.get(source)
      if (own) await describe(dest, own)
      await fs.rmdir(source)
    } else if (destInfo.isDirectory()) {
      throw isADirectory(`${dest} is a directory; the archive's ${name} is not`)
    } else if (sourceIsDir) {
      if (!described.has(source)) {
        throw new BadArchiveError(`${dest} is in the way of a directory`, 'bad_archive')
      }
      await fs.unlink(dest)
      await fs.rename(source, dest)
    } else {
      await fs.rename(source, dest)
    }
  }
}

/** The error a file written over a directory meets, as Node's own would say it. */
function isADirectory(message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`EISDIR: ${message}`), { code: 'EISDIR' })
}

/** Gives an existing directory the mode and mtime its archive entry gave. */
async function describe(dest: string, own: { mode: number; mtime: Date | undefined }): Promise<void> {
  await fs.chmod(dest, own.mode)
  if (own.mtime) await fs.utimes(dest, own.mtime, own.mtime)
}

/** Writes `source` into the extractor, waiting when it is full, then ends it. */
async function feed(source: AsyncIterable<Uint8Array>, extract: tar.Extract): Promise<void> {
  try {
    for await (const chunk of source) {
      if (extract.destroyed) return
      if (!extract.write(chunk)) await drainedOrClosed(extract)
    }
    extract.end()
  } catch (error) {
    extract.destroy(error as Error)
    throw error
  }
}

/**
 * Waits until `extract` takes more input or closes. Both listeners go when either
 * fires: a `close` listener left behind at each wait piled up over a big download
 * (and Node warned of a leak past ten).
 */
function drainedOrClosed(extract: tar.Extract): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      extract.off('drain', done)
      extract.off('close', done)
      resolve()
    }
    extract.on('drain', done)
    extract.on('close', done)
  })
}

/** Where an archive name lands under `root`; a name that would leave it is refused. */
function targetOf(root: string, name: string): string {
  const parts = name.split('/').filter((p) => p !== '' && p !== '.')
  if (name.startsWith('/') || parts.includes('..')) {
    throw new BadArchiveError(`${JSON.stringify(name)} names a place outside the target`, 'bad_archive')
  }
  return parts.length ? join(root, ...parts) : root
}

/**
 * Every directory between `root` and `target` is a real directory (made if missing).
 * `realDirs` holds those already found or made in this extraction (nothing here ever
 * removes a directory), so an entry whose parent is one costs no look at all, not one
 * a level: a deep tree would take quadratic time.
 */
async function checkParents(root: string, target: string, realDirs: Set<string>): Promise<void> {
  if (target === root || realDirs.has(dirname(target))) return
  const parts = relative(root, target).split(sep).slice(0, -1)
  let current = root
  for (const part of parts) {
    current = join(current, part)
    if (realDirs.has(current)) continue
    let info
    try {
      info = await fs.lstat(current)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
      await fs.mkdir(current, { mode: 0o755 })
      realDirs.add(current)
      continue
    }
    if (!info.isDirectory()) {
      throw new BadArchiveError(
        `${posixRelative(root, target)} would be written through ${current}, which is not a directory`,
        'bad_archive',
      )
    }
    realDirs.add(current)
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

/** A new file (never through a link that appeared since) with `source`'s bytes. */
async function writeFile(target: string, source: AsyncIterable<Uint8Array>, mode: number): Promise<void> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW
  const handle = await fs.open(target, flags, 0o600)
  try {
    for await (const chunk of source) await handle.write(chunk)
    await handle.chmod(mode)
  } finally {
    await handle.close()
  }
}
