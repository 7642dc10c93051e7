// The Docker flavours runner-fleet knows, one entry each: how the gather shows it installed, which daemon.json it
// reads, how it is installed, reloaded, started and restarted. A new flavour is a compile error until it has them all.
import type { DockerFlavour } from '../inventory/types.js';
import type { FileFact, HostFacts } from './facts.js';

export type DockerAction = 'reload' | 'restart' | 'start';

export interface DockerFlavourOps {
  /** is this flavour's Docker on the node (a package, a snap, or its dockerd running) */
  installed(facts: HostFacts): boolean;
  /** the daemon.json its dockerd reads when it names none with --config-file */
  defaultDaemonJson(facts: HostFacts): FileFact;
  /** shown in the plan */
  installCommand: string;
  installScript: string;
  /** shell per action, run as root */
  script: Record<DockerAction, string>;
  /** the reload step's detail: what it does to running containers */
  reloadDetail: string;
  /** why a restart (new socket group) is what it is */
  restartDetail: string;
  /**
   * Shell that brings dockerd back after the previous daemon.json was put back: reload a running one (SIGHUP, jobs
   * keep running), start a stopped one.
   */
  bringBack: string;
  /** the same after a restart: what only a start reads (log-driver, log-opts) goes back only with another restart */
  bringBackRestart: string;
  /** the systemd unit whose journal has dockerd's log */
  unit: string;
  /** the `certs.d` folder its dockerd reads registry CAs from (`<host:port>/*.crt`), as the node sees it */
  certsDir: string;
  /** dockerd's socket: the runner pods mount its folder, so the new socket of a restarted dockerd is seen */
  socket: string;
}

/**
 * apt: Debian's docker.io, Docker's own docker-ce (get.docker.com) or moby-engine, or any dockerd running outside the
 * snap: all read /etc/docker/daemon.json by default and run as systemd's docker.service, whose ExecReload is
 * `kill -s HUP $MAINPID`. docker.io is installed only when none of them is there (never over docker-ce: its
 * containerd.io conflicts with the containerd docker.io depends on).
 * snap: the docker snap. Its service declares no reload, but its wrapper execs dockerd, so the unit's main PID is
 * dockerd and a SIGHUP to it alone is the same reload (`systemctl kill --kill-whom=main`).
 */
export const DOCKER_FLAVOURS: Record<DockerFlavour, DockerFlavourOps> = {
  apt: {
    installed: (f) => f.aptDocker,
    defaultDaemonJson: (f) => f.aptDaemonJson,
    installCommand: 'apt-get install -y docker.io',
    installScript: `export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q docker.io >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q docker.io >/dev/null; }
systemctl is-active --quiet docker || systemctl start docker`,
    script: {
      reload: 'systemctl reload docker',
      restart: 'systemctl restart docker',
      start: 'systemctl start docker',
    },
    reloadDetail: 'systemctl reload docker (SIGHUP, running jobs keep going)',
    restartDetail: 'systemctl restart docker (running containers restart)',
    unit: 'docker',
    certsDir: '/etc/docker/certs.d',
    socket: '/var/run/docker.sock',
    bringBack:
      'if timeout 10 docker info >/dev/null 2>&1; then systemctl reload docker; else systemctl reset-failed docker >/dev/null 2>&1 || :; systemctl start docker; fi',
    bringBackRestart: 'systemctl reset-failed docker >/dev/null 2>&1 || :; systemctl restart docker',
  },
  snap: {
    installed: (f) => f.snapDocker,
    defaultDaemonJson: (f) => f.snapDaemonJson,
    installCommand: 'snap install docker',
    installScript: 'snap install docker >/dev/null',
    script: {
      reload: 'systemctl kill -s HUP --kill-whom=main snap.docker.dockerd.service',
      restart: 'snap restart docker >/dev/null',
      start: 'snap start docker >/dev/null',
    },
    reloadDetail:
      "systemctl kill -s HUP --kill-whom=main snap.docker.dockerd.service (SIGHUP to dockerd, which the snap's wrapper execs; running jobs keep going)",
    restartDetail: 'snap restart docker (running containers restart)',
    unit: 'snap.docker.dockerd',
    // canonical/docker-snap snap/snapcraft.yaml: `layout: /etc/docker: bind: $SNAP_DATA/etc/docker` (and its
    // docker-registry-certificates slot exports $SNAP_DATA/etc/docker/certs.d), so the snap's dockerd reads this
    // folder as /etc/docker/certs.d. The host's /etc/docker/certs.d is never seen by it.
    certsDir: '/var/snap/docker/current/etc/docker/certs.d',
    // The snap's wrapper gives dockerd no -H: the default socket, beside the apt one's (canonical/docker-snap).
    socket: '/var/run/docker.sock',
    bringBack:
      'if timeout 10 docker info >/dev/null 2>&1; then systemctl kill -s HUP --kill-whom=main snap.docker.dockerd.service; else snap start docker >/dev/null; fi',
    bringBackRestart: 'snap restart docker >/dev/null',
  },
};

export const DOCKER_FLAVOUR_NAMES = Object.keys(DOCKER_FLAVOURS) as DockerFlavour[];

/**
 * The folder every flavour's socket is in: one DaemonSet serves nodes of both flavours, so they must agree (a
 * flavour with a socket elsewhere fails here, and so every render, until the DaemonSet learns about it).
 */
export function dockerSocketDir(): { dir: string; name: string } {
  const places = [...new Set(Object.values(DOCKER_FLAVOURS).map((f) => f.socket))];
  if (places.length !== 1) throw new Error(`Docker flavours disagree on the socket: ${places.join(', ')}`);
  const at = places[0].lastIndexOf('/');
  return { dir: places[0].slice(0, at), name: places[0].slice(at + 1) };
}
