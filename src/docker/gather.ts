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
