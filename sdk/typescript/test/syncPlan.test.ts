// Mirror mode's decisions alone, without a daemon: what a sync sends and deletes.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { type Side, plan, topmost } from '../src/syncPlan.js'

test('only the topmost of what is gone is deleted', () => {
  // As strings, "a-c" and "a.txt" sort between "a" and "a/b"; by components they do not,
  // and "a/b" goes with "a".
  const gone = ['a.txt', 'a/b', 'a-c/d', 'a', 'a-c', 'b/c/d', 'b/e', 'a/b/c']
  assert.deepEqual(topmost(gone).sort(), ['a', 'a-c', 'a.txt', 'b/c/d', 'b/e'])
  assert.deepEqual(topmost([]), [])
})

test('a plan sends what differs and deletes what the source lacks', () => {
  const file = (size: number): Side => ({ kind: 'file', size, mtime: 10, mode: 0o644 })
  const source = new Map<string, Side>([
    ['src', { kind: 'dir' }],
    ['src/new', file(3)],
  ])
  const dest = new Map<string, Side>([
    ['src', { kind: 'dir' }],
    ['src/old', file(3)],
    ['build', { kind: 'dir' }],
    ['build/x', file(1)],
    ['build/y/z', file(1)],
  ])
  assert.deepEqual(plan(source, dest, false), { send: ['src/new'], delete: [] })
  assert.deepEqual(plan(source, dest, true).delete.sort(), ['build', 'src/old'])
})

test('thousands of scattered deletions are planned whole', () => {
  // Each deleted file in a directory of its own, which stays: none is inside another.
  const source = new Map<string, Side>()
  for (let i = 0; i < 20_000; i++) source.set(`d${i}`, { kind: 'dir' })
  const dest = new Map(source)
  for (let i = 0; i < 20_000; i++) dest.set(`d${i}/f`, { kind: 'file', size: 1, mtime: 0, mode: 0o644 })
  assert.equal(plan(source, dest, true).delete.length, 20_000)
})
