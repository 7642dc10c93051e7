// Handlebars rendering for manifests/: strict, no HTML escaping, every value emitted as JSON.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Handlebars from 'handlebars';

export const MANIFESTS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'manifests');

const hb = Handlebars.create();
// `{{json x}}`: a JSON literal, which is valid YAML and valid TOML for strings, numbers, booleans and lists.
hb.registerHelper('json', (value: unknown) => {
  if (value === undefined) throw new Error('json helper: value is undefined');
  return JSON.stringify(value);
});
// `{{indent n text}}`: re-indents a multi-line block (for embedding rendered files in YAML).
hb.registerHelper('indent', (n: number, text: string) =>
  String(text)
    .split('\n')
    .map((l) => (l ? ' '.repeat(n) + l : l))
    .join('\n'),
);
hb.registerHelper('eq', (a: unknown, b: unknown) => a === b);

const cache = new Map<string, HandlebarsTemplateDelegate>();

/** Renders manifests/<name> (or an absolute path) with `data`. Missing fields throw (strict mode). */
export function renderTemplate(name: string, data: object, dir = MANIFESTS_DIR): string {
  const path = name.startsWith('/') ? name : join(dir, name);
  let tpl = cache.get(path);
  if (!tpl) {
    tpl = hb.compile(readFileSync(path, 'utf8'), { strict: true, noEscape: true });
    cache.set(path, tpl);
  }
  return tpl(data);
}
