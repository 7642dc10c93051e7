// Whether a state root is the testbed's to remove: marked, half-removed (an interrupted down), or someone else's.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { ROOT_MARKER } from './paths.js';
import { OWNER_FILE } from './slot-owner.js';

/**
 * What `up` and the test suites put directly in a state root (paths.ts files, the services' and nodes' directories,
 * the suites' inventory variants). A directory holding only such names is a state root whose marker went first.
 */
const KNOWN_ENTRIES: readonly RegExp[] = [
  /^testbed\.json(\.tmp)?$/,
  /^fleet(\.variant-[\w.-]+)?\.yaml$/,
  /^id_ed25519(\.pub)?$/,
  /^(authorized_keys|known_hosts|image|host|services)$/,
  /^pi\d+$/,
  new RegExp(`^${OWNER_FILE.replace('.', '\\.')}(\\.\\d+\\.tmp)?$`),
];

/** The default state roots of the slots (paths.ts stateRoot without RUNNER_FLEET_TESTBED). */
const BASE_ROOT = /^\/var\/tmp\/runner-fleet-testbed(-[0-9])?$/;

export type RootKind =
  /** nothing there, or only our lock */
  | 'unused'
  /** made by up (has the marker) */
  | 'marked'
  /** no marker, but at a testbed base path and holding only what up makes: an interrupted removal */
  | 'half-removed'
  /** not ours to remove */
  | 'foreign';

/** Pure: `entries` are the names in the root (undefined: it does not exist). */
export function classifyRoot(root: string, entries: string[] | undefined): RootKind {
  if (entries === undefined) return 'unused';
  if (entries.includes(ROOT_MARKER)) return 'marked';
  if (entries.every((e) => e === OWNER_FILE)) return 'unused';
  if (BASE_ROOT.test(root) && entries.every((e) => KNOWN_ENTRIES.some((re) => re.test(e))))
    return 'half-removed';
  return 'foreign';
}

function entriesOf(root: string): string[] | undefined {
  return existsSync(root) ? readdirSync(root) : undefined;
}

/**
 * Removes a state root that is ours (marked or half-removed, see classifyRoot); returns what it was. A foreign
 * directory is left alone and reported by the caller.
 */
export function removeStateRoot(root: string, log: (msg: string) => void = () => {}): RootKind {
  const kind = classifyRoot(root, entriesOf(root));
  switch (kind) {
    case 'half-removed':
      log(`${root} has no ${ROOT_MARKER} but only what up makes (an interrupted removal): removing it`);
      rmSync(root, { recursive: true, force: true });
      return kind;
    case 'marked':
    case 'unused':
      rmSync(root, { recursive: true, force: true });
      return kind;
    case 'foreign':
      return kind;
  }
}
