// What every part of the host gather shares (facts.ts composes the parts): its output's shape and how a file reads.
import { createHash } from 'node:crypto';

export interface FileFact {
  path: string;
  /** undefined when the file does not exist */
  content?: string;
  sha256: string | 'absent';
}

/** The gather's output split up: `@@key` sections (their lines) and `@@file path` files (their base64 or `-`). */
export interface GatherOutput {
  sections: Map<string, string[]>;
  files: Map<string, string>;
}

export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

export function fileFact(path: string, encoded: string | undefined): FileFact {
  if (encoded === undefined || encoded.trim() === '-' || encoded.trim() === '') {
    // An empty existing file prints as empty base64; treat '-' as absent only.
    if (encoded !== undefined && encoded.trim() === '') return { path, content: '', sha256: sha256('') };
    return { path, sha256: 'absent' };
  }
  const content = Buffer.from(encoded.trim(), 'base64').toString('utf8');
  return { path, content, sha256: sha256(content) };
}

/**
 * `script` in a subshell whose whole stdout the shell prints with one write when it ends, with its exit status.
 * A gather prints line by line (echo, cat, base64: dozens of writes), and sshd sends each write it reads as a packet
 * of its own, which both ends encrypt, decrypt and handle one by one: on a no-op the gather's ~30 small packets per
 * node were a tenth of the tool's CPU per node. Trailing newlines come out as one, as `$(…)` strips them; stderr is
 * untouched. For scripts whose output is read once at the end, not for long-running steps whose output streams.
 */
export function printAtEnd(script: string): string {
  return `rf_out=$(\n${script}\n)\nrf_status=$?\nprintf '%s\\n' "$rf_out"\nexit $rf_status\n`;
}
