// The README's inventory reference table is the operator's manual for fleet.yaml; it drifts silently when a field is
// added to (or dropped from) the schema without a row. This test walks the valibot schema the loader uses and the
// table's first column, and fails naming every key that is in one and not the other.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { inventoryFile } from './fields.js';

const README = fileURLToPath(new URL('../../README.md', import.meta.url));

/** The keys a schema accepts, as dotted paths (`nodes[].name`); a record or a scalar list is one leaf. */
export function schemaKeys(schema: any, prefix = ''): string[] {
  if (schema.wrapped) return schemaKeys(schema.wrapped, prefix);
  const object = schema.entries ? schema : schema.pipe?.find((step: any) => step.entries);
  if (object) {
    return Object.entries(object.entries).flatMap(([key, entry]) =>
      schemaKeys(entry, prefix ? `${prefix}.${key}` : key),
    );
  }
  const list = schema.type === 'array' ? schema : schema.pipe?.find((step: any) => step.type === 'array');
  if (list && (list.item.entries || list.item.pipe?.some((step: any) => step.entries))) {
    return schemaKeys(list.item, `${prefix}[]`);
  }
  return [prefix];
}

/**
 * The keys the table documents. A row's first cell names one full path, then siblings by their last part:
 * "`gitlab.runnerType`, `groupId`" is gitlab.runnerType and gitlab.groupId; text in parentheses is commentary.
 */
export function documentedKeys(markdown: string): string[] {
  const section = markdown.split(/^## Inventory reference$/m)[1]?.split(/^## /m)[0];
  if (!section) throw new Error('README has no "## Inventory reference" section');
  const rows = section.split('\n').filter((line) => line.startsWith('| `'));
  return rows.flatMap((row) => {
    const cell = row.split('|')[1].replace(/\([^)]*\)/g, '');
    const [first, ...siblings] = [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
    const parent = first.slice(0, first.lastIndexOf('.') + 1);
    return [first, ...siblings.map((name) => parent + name.replace(/^\./, ''))];
  });
}

/** A documented key covers itself and everything under it (`runners.tolerations` covers its fields). */
const covers = (documented: string, key: string) =>
  key === documented || key.startsWith(`${documented}.`) || key.startsWith(`${documented}[]`);

describe('README inventory reference', () => {
  const documented = documentedKeys(readFileSync(README, 'utf8'));
  const keys = schemaKeys(inventoryFile);

  it('reads the schema into dotted keys', () => {
    expect(keys).toContain('gitlab.url');
    expect(keys).toContain('nodes[].name');
    expect(keys).toContain('runners.cache.secretKey');
    expect(keys.length).toBeGreaterThan(60);
  });

  it('documents every key the schema accepts', () => {
    expect(keys.filter((key) => !documented.some((doc) => covers(doc, key)))).toEqual([]);
  });

  it('documents no key the schema refuses', () => {
    expect(documented.filter((doc) => !keys.some((key) => covers(doc, key)))).toEqual([]);
  });
});

describe('documentedKeys', () => {
  it('expands siblings and skips parenthesised commentary', () => {
    const md = [
      '## Inventory reference',
      '| `gitlab.accessToken` / `runnerToken` | none | x |',
      '| `runners.resources.requests`, `limits` (`cpu`, `memory`) | | y |',
      '| `kubernetes.sealedSecrets.controllerName`, `.controllerNamespace` | | z |',
      '## Next',
      '| `not.this` | | |',
    ].join('\n');
    expect(documentedKeys(md)).toEqual([
      'gitlab.accessToken',
      'gitlab.runnerToken',
      'runners.resources.requests',
      'runners.resources.limits',
      'kubernetes.sealedSecrets.controllerName',
      'kubernetes.sealedSecrets.controllerNamespace',
    ]);
  });
});
