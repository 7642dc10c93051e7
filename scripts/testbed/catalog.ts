// The services `up` knows by name: which start by default, in which order, and which only when asked for.
import { clusterService, gitlabService } from './extra-services.js';
import { gitlabRunnerPackageService } from './gitlab-runner.js';
import { imagesService } from './images-service.js';
import { registryService } from './registry.js';
import { fluxService } from './flux.js';
import { sealedSecretsService } from './sealed-secrets.js';
import type { TestbedService } from './services.js';

/** What `up` starts unless told otherwise, in this order (`down` stops them in reverse). */
export const DEFAULT_SERVICES: TestbedService[] = [
  registryService,
  imagesService,
  gitlabRunnerPackageService,
  gitlabService,
  clusterService,
];

/** Started only when named (`--services …,sealed-secrets,flux`), after the default ones they need. */
export const OPTIONAL_SERVICES: TestbedService[] = [sealedSecretsService, fluxService];

const ALWAYS_ON = ['registry', gitlabRunnerPackageService.name];

/**
 * `--services registry,gitlab`: a lighter fleet (the benchmark needs no cluster). The registry is always on, and so is
 * the gitlab-runner package (it starts nothing: it only hands the nodes' apt-get the real binary).
 */
export function servicesNamed(names: string[]): TestbedService[] {
  const known = [...DEFAULT_SERVICES, ...OPTIONAL_SERVICES];
  const unknown = names.filter((n) => !known.some((s) => s.name === n));
  if (unknown.length > 0)
    throw new Error(`unknown service ${unknown.join(', ')} (known: ${known.map((s) => s.name).join(', ')})`);
  return known.filter((s) => ALWAYS_ON.includes(s.name) || names.includes(s.name));
}
