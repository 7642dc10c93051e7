// A run context for tests: the settings a test cares about, defaults for the rest, stand-ins for any client.
import { createRunContext, type RunClients, type RunContext } from '../../src/context.js';
import type { Inventory } from '../../src/inventory/types.js';
import type { Logger } from '../../src/log.js';
import { recordingLogger } from './logger.js';

export function testContext(
  inventory: Inventory,
  settings: { dryRun?: boolean; only?: string[]; log?: Logger; concurrency?: number } = {},
  clients: RunClients = {},
): RunContext {
  return createRunContext(
    {
      inventory,
      dryRun: settings.dryRun ?? false,
      only: settings.only,
      log: settings.log ?? recordingLogger(),
      concurrency: settings.concurrency ?? 2,
    },
    clients,
  );
}
