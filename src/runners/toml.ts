// A small TOML reader, enough to read back a rendered config.toml and check it before it goes anywhere.
// Covers tables, arrays of tables, dotted keys, strings, numbers, booleans, arrays and inline tables;
// anything else (dates, multi-line strings) is reported rather than guessed.

export type TomlValue = string | number | boolean | TomlValue[] | TomlTable;
export interface TomlTable {
  [key: string]: TomlValue;
}

export class TomlError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(`line ${line}: ${message}`);
    this.name = 'TomlError';
  }
}

const BARE_KEY = /^[A-Za-z0-9_-]+/;

class Reader {
  pos = 0;
  constructor(readonly text: string) {}

  get line(): number {
    return this.text.slice(0, this.pos).split('\n').length;
  }

  fail(message: string): never {
    throw this.error(message);
  }

  error(message: string): TomlError {
    return new TomlError(message, this.line);
  }

  peek(): string {
    return this.text[this.pos] ?? '';
  }

  skipSpaces(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++;
  }

  /** spaces, newlines and comments: inside arrays only */
  skipBlank(): void {
    for (;;) {
      this.skipSpaces();
      if (this.peek() === '#') this.skipComment();
      else if (this.peek() === '\n' || this.text.startsWith('\r\n', this.pos)) this.pos += this.peek() === '\n' ? 1 : 2;
      else return;
    }
  }

  skipComment(): void {
    while (this.pos < this.text.length && this.peek() !== '\n') this.pos++;
  }

  /** after a value or header: only a comment may follow on the line */
  endOfLine(): void {
    this.skipSpaces();
    if (this.peek() === '#') this.skipComment();
    if (this.pos >= this.text.length) return;
    if (this.peek() === '\n') return void this.pos++;
    if (this.text.startsWith('\r\n', this.pos)) return void (this.pos += 2);
    this.fail(`unexpected ${JSON.stringify(this.peek())} after the value`);
  }

  key(): string[] {
    const parts: string[] = [];
    for (;;) {
      this.skipSpaces();
      const c = this.peek();
      if (c === '"') parts.push(this.basicString());
      else if (c === "'") parts.push(this.literalString());
      else {
        const m = BARE_KEY.exec(this.text.slice(this.pos));
        if (!m) this.fail('expected a key');
        parts.push(m[0]);
        this.pos += m[0].length;
      }
      this.skipSpaces();
      if (this.peek() !== '.') return parts;
      this.pos++;
    }
  }

  basicString(): string {
    if (this.text.startsWith('"""', this.pos)) this.fail('multi-line strings are not supported here');
    this.pos++;
    let out = '';
    for (;;) {
      const c = this.peek();
      if (c === '' || c === '\n') this.fail('unterminated string');
      this.pos++;
      if (c === '"') return out;
      if (c !== '\\') {
        if (c < ' ' && c !== '\t') this.fail('control character in a string');
        out += c;
        continue;
      }
      const e = this.peek();
      this.pos++;
      const simple: Record<string, string> = { b: '\b', t: '\t', n: '\n', f: '\f', r: '\r', '"': '"', '\\': '\\' };
      if (e in simple) out += simple[e];
      else if (e === 'u' || e === 'U') {
        const len = e === 'u' ? 4 : 8;
        const hex = this.text.slice(this.pos, this.pos + len);
        if (!new RegExp(`^[0-9A-Fa-f]{${len}}$`).test(hex)) this.fail(`bad \\${e} escape`);
        const code = parseInt(hex, 16);
        if (code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) this.fail('escape is not a Unicode scalar value');
        out += String.fromCodePoint(code);
        this.pos += len;
      } else this.fail(`invalid escape \\${e}`);
    }
  }

  literalString(): string {
    if (this.text.startsWith("'''", this.pos)) this.fail('multi-line strings are not supported here');
    const end = this.text.indexOf("'", this.pos + 1);
    const nl = this.text.indexOf('\n', this.pos + 1);
    if (end < 0 || (nl >= 0 && nl < end)) this.fail('unterminated string');
    const s = this.text.slice(this.pos + 1, end);
    this.pos = end + 1;
    return s;
  }

  value(): TomlValue {
    this.skipSpaces();
    const c = this.peek();
    if (c === '"') return this.basicString();
    if (c === "'") return this.literalString();
    if (c === '[') return this.array();
    if (c === '{') return this.inlineTable();
    const m = /^[^\s,\]}#]+/.exec(this.text.slice(this.pos));
    if (!m) this.fail('expected a value');
    const word = m[0];
    this.pos += word.length;
    if (word === 'true') return true;
    if (word === 'false') return false;
    if (/^[+-]?(0|[1-9](_?[0-9])*)$/.test(word)) return Number(word.replace(/_/g, ''));
    if (/^0x[0-9A-Fa-f](_?[0-9A-Fa-f])*$/.test(word)) return parseInt(word.slice(2).replace(/_/g, ''), 16);
    if (/^[+-]?(0|[1-9](_?[0-9])*)(\.[0-9](_?[0-9])*)?([eE][+-]?[0-9](_?[0-9])*)?$/.test(word)) return Number(word.replace(/_/g, ''));
    if (/^[+-]?(inf|nan)$/.test(word)) return Number(word.replace('inf', 'Infinity').replace('nan', 'NaN'));
    return this.fail(`unsupported value ${JSON.stringify(word.slice(0, 30))}`);
  }

  array(): TomlValue[] {
    this.pos++;
    const out: TomlValue[] = [];
    for (;;) {
      this.skipBlank();
      if (this.peek() === ']') {
        this.pos++;
        return out;
      }
      out.push(this.value());
      this.skipBlank();
      if (this.peek() === ',') this.pos++;
      else if (this.peek() !== ']') this.fail('expected , or ] in an array');
    }
  }

  inlineTable(): TomlTable {
    this.pos++;
    const table: TomlTable = {};
    this.skipSpaces();
    if (this.peek() === '}') {
      this.pos++;
      return table;
    }
    for (;;) {
      const key = this.key();
      if (this.peek() !== '=') this.fail('expected = after a key');
      this.pos++;
      assign(table, key, this.value(), this);
      this.skipSpaces();
      if (this.peek() === ',') this.pos++;
      else if (this.peek() === '}') {
        this.pos++;
        return table;
      } else this.fail('expected , or } in an inline table');
    }
  }
}

const isTable = (v: unknown): v is TomlTable => typeof v === 'object' && v !== null && !Array.isArray(v);

function assign(table: TomlTable, key: string[], value: TomlValue, r: Reader): void {
  let t = table;
  for (const part of key.slice(0, -1)) {
    if (t[part] === undefined) t[part] = {};
    const next = t[part];
    if (!isTable(next)) throw r.error(`${key.join('.')}: ${part} is not a table`);
    t = next;
  }
  const last = key[key.length - 1];
  if (last in t) r.fail(`duplicate key ${key.join('.')}`);
  t[last] = value;
}

/** Parses TOML text; throws TomlError naming the line of the first problem. */
export function parseToml(text: string): TomlTable {
  const r = new Reader(text);
  const root: TomlTable = {};
  const explicit = new WeakSet<TomlTable>();
  let current = root;
  for (;;) {
    r.skipBlank();
    if (r.pos >= text.length) return root;
    if (r.peek() === '[') {
      const isArray = text.startsWith('[[', r.pos);
      r.pos += isArray ? 2 : 1;
      const path = r.key();
      if (!text.startsWith(isArray ? ']]' : ']', r.pos)) r.fail(`expected ${isArray ? ']]' : ']'} after the table name`);
      r.pos += isArray ? 2 : 1;
      r.endOfLine();
      // Intermediate names step into the newest element of an array of tables, as [runners.docker] after [[runners]].
      let t = root;
      for (const part of path.slice(0, -1)) {
        const v = t[part] ?? (t[part] = {});
        if (Array.isArray(v)) {
          const lastItem = v[v.length - 1];
          if (!isTable(lastItem)) throw r.error(`${path.join('.')}: ${part} is not an array of tables`);
          t = lastItem;
        } else if (isTable(v)) t = v;
        else throw r.error(`${path.join('.')}: ${part} is not a table`);
      }
      const name = path[path.length - 1];
      if (isArray) {
        const arr = t[name] ?? (t[name] = []);
        if (!Array.isArray(arr)) throw r.error(`${path.join('.')} is already a table`);
        const item: TomlTable = {};
        arr.push(item);
        current = item;
      } else {
        const existing = t[name];
        if (existing === undefined) current = t[name] = {};
        else if (isTable(existing) && !explicit.has(existing)) current = existing;
        else r.fail(`table ${path.join('.')} is defined twice`);
      }
      explicit.add(current);
      continue;
    }
    const key = r.key();
    if (r.peek() !== '=') r.fail('expected = after a key');
    r.pos++;
    assign(current, key, r.value(), r);
    r.endOfLine();
  }
}
