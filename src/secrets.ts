// Resolves secret references (env:NAME, file:PATH) and redacts every resolved secret from text.
import { readFileSync } from 'node:fs';
import { InputError } from './errors.js';
import type { SecretRef } from './inventory/types.js';

const known = new Set<string>();
// GitLab 17.9 runner tokens (Ci::Runner#prefix_for_new_and_legacy_runner): `glrt-t1_…` when created in GitLab,
// `t1_…` (t2_ group, t3_ project) when registered with a registration token, 20 characters after the prefix; a
// routable token (Authn::TokenField::Generator::RoutableToken) carries `.01.` and nine base-36 characters after it.
const ROUTABLE_TAIL = String.raw`(?:\.[0-9a-z]{2}\.[0-9a-z]{9})?`;
const TOKEN_PATTERNS = [
  new RegExp(String.raw`\bglrt-[A-Za-z0-9_-]{6,}${ROUTABLE_TAIL}`, 'g'),
  new RegExp(String.raw`\bt[1-3]_[A-Za-z0-9_-]{20,}${ROUTABLE_TAIL}`, 'g'),
  /\bglpat-[A-Za-z0-9_-]{6,}/g,
  /\bGR1348941[A-Za-z0-9_-]{6,}/g,
];

/** Remembers a secret value so that redact() hides it wherever it shows up later. */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 4) known.add(value);
}

/** Replaces every known secret and anything shaped like a GitLab token with [REDACTED]. */
export function redact(text: string): string {
  let out = text;
  for (const s of known) out = out.split(s).join('[REDACTED]');
  for (const re of TOKEN_PATTERNS) out = out.replace(re, '[REDACTED]');
  // Credentials in a URL (`http://user:pass@host`): the inventory refuses them, but a message may quote one anyway.
  out = out.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@]+@/gi, '$1[REDACTED]@');
  return out;
}

export function resolveSecret(secret: SecretRef, env: NodeJS.ProcessEnv = process.env): string {
  const { ref, path } = secret;
  let value: string | undefined;
  if (ref.startsWith('env:')) {
    const name = ref.slice(4);
    value = env[name];
    if (value === undefined || value.trim() === '')
      throw new InputError([`${path}: environment variable ${name} is not set`]);
  } else {
    const file = ref.slice(5);
    try {
      value = readFileSync(file, 'utf8');
    } catch (err) {
      throw new InputError([
        `${path}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      ]);
    }
    if (value.trim() === '') throw new InputError([`${path}: ${file} is empty`]);
  }
  value = value.trim();
  registerSecret(value);
  return value;
}
