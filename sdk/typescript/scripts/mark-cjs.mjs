// The package is ESM ("type": "module"); the CommonJS build under dist/cjs says so of
// itself, so Node loads its .js files as CommonJS.
import { writeFileSync } from 'node:fs'

writeFileSync(new URL('../dist/cjs/package.json', import.meta.url), '{"type": "commonjs"}\n')
