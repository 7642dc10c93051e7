// Test fixtures for host facts: a converging-ready apt node on arm64; each test overrides what it is about.
import type { NodeSpec } from '../inventory/types.js';
import { APT_DAEMON_JSON, SNAP_DAEMON_JSON, sha256, type FileFact, type HostFacts } from './facts.js';

export const TEST_REGISTRY = '198.18.0.2:5000';

export const testNode: NodeSpec = {
  name: 'pi1',
  host: 'h',
  port: 22,
  user: 'pi',
  identityFile: 'k',
  knownHosts: 'kh',
  connectTimeout: 5,
  docker: 'auto',
  microk8s: true,
};

/** A file as the gather reports it; no content means absent. */
export const fileFact = (path: string, content?: string): FileFact =>
  content === undefined ? { path, sha256: 'absent' } : { path, content, sha256: sha256(content) };

export function hostFacts(over: Partial<HostFacts> = {}): HostFacts {
  return {
    os: 'debian 12',
    arch: 'arm64',
    aptDocker: true,
    snapDocker: false,
    snapd: false,
    dockerd: { pid: 1 },
    aptDaemonJson: fileFact(APT_DAEMON_JSON),
    snapDaemonJson: fileFact(SNAP_DAEMON_JSON),
    docker: { version: '20.10.24', indexConfigs: {}, insecureCidrs: [] },
    microk8s: false,
    hostsToml: {},
    ...over,
  };
}
