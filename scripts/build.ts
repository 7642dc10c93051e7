// `npm run build`: the compiled entry, dist/provision.js, for fleets that run runner-fleet from cron or CI (no npx,
// no tsx). Start-up is part of every no-op rerun: the code that runs before the first SSH connect, the
// packages it uses included, is bundled into a few files, so node reads and links a handful of modules instead of
// some two hundred (measured: 141 -> 96 ms from node's start to the first connect; bench/RESULTS.md). ssh2 is bundled
// too; its optional native crypto binding and cpu-features stay outside, loaded from node_modules where their
// install scripts built them (ssh2 falls back to its own JavaScript and node's crypto where they did not). The
// binding is worth loading: without it ssh2 makes a new node Decipher for every packet it receives (measured on a
// no-op: ~2-4 million instructions per node of ~25, callgrind; bench/RESULTS.md).
// @kubernetes/client-node is bundled as well, into the chunk that only the runner phases import: as a package it
// takes ~0.7 s of CPU to load (some 400 modules, its generated API classes included) on every rerun that checks the
// cluster; minified in one chunk, ~0.1 s. Minified because V8 then pre-parses a third of the text; keepNames because
// libraries (and our errors' stack traces) read constructor names. Left as packages, loaded only when needed:
// - openpgp: large, and imported only for host placement when a repository key is checked;
// - zx: only `render --seal` starts a local process.
import { chmodSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { build, type Plugin } from 'esbuild';

const REPO = join(import.meta.dirname, '..');

/**
 * ssh2 requires its binding by a path relative to its own file (`./crypto/build/Release/sshcrypto.node`), which
 * from a chunk in dist/ names nothing; the package path finds it in node_modules instead.
 */
const ssh2Binding: Plugin = {
  name: 'ssh2-binding',
  setup(b) {
    b.onResolve({ filter: /^\.\/crypto\/build\/Release\/sshcrypto\.node$/ }, (args) =>
      /[\\/]ssh2[\\/]lib[\\/]protocol[\\/]/.test(args.importer)
        ? { path: 'ssh2/lib/protocol/crypto/build/Release/sshcrypto.node', external: true }
        : undefined,
    );
  },
};
// The end-to-end suites build their own copy beside dist/ (test/support/e2e-global.ts): a folder directly in the
// checkout, as the bundle finds manifests/ and node_modules/ from its own place.
const OUT = join(REPO, process.env.RUNNER_FLEET_BUILD_DIR ?? 'dist');

rmSync(OUT, { recursive: true, force: true });
await build({
  entryPoints: [join(REPO, 'provision.ts')],
  outdir: OUT,
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['*.node', 'cpu-features', 'openpgp', 'zx'],
  plugins: [ssh2Binding],
  minify: true,
  keepNames: true,
  // CommonJS packages in an ES module bundle still call require() for node's built-ins, and ssh2 reads __dirname.
  banner: {
    js: [
      '#!/usr/bin/env node',
      "import { createRequire as __rfRequire } from 'node:module';",
      "import { dirname as __rfDirname } from 'node:path';",
      "import { fileURLToPath as __rfPath } from 'node:url';",
      'const require = __rfRequire(import.meta.url);',
      'const __filename = __rfPath(import.meta.url);',
      'const __dirname = __rfDirname(__filename);',
    ].join('\n'),
  },
  logLevel: 'warning',
});
chmodSync(join(OUT, 'provision.js'), 0o755);
