// Test inventories with their secrets as readInventorySecrets leaves them, for code called below the commands.
import { readFileSync } from 'node:fs';
import type { Inventory } from '../../src/inventory/types.js';
import { inventorySecretRefs, registerSecret } from '../../src/secrets.js';

/** Reads the env:/file: references synchronously (test files and this process's environment only). */
export function withSecrets(inv: Inventory, values: Record<string, string> = {}): Inventory {
  const secrets = new Map<string, string>();
  for (const { ref, path } of inventorySecretRefs(inv)) {
    const value =
      values[path] ??
      (ref.startsWith('env:') ? process.env[ref.slice(4)] : readFileSync(ref.slice(5), 'utf8'));
    if (value === undefined) throw new Error(`test inventory: ${path} (${ref}) has no value`);
    registerSecret(value.trim());
    secrets.set(path, value.trim());
  }
  return { ...inv, secrets };
}
