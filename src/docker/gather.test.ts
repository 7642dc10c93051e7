import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { printAtEnd } from './gather.js';

/** Runs a script as the gather does (`sh -s`, the script on stdin). */
const run = (script: string) => {
  const r = spawnSync('sh', ['-s'], { input: `${script}\n`, encoding: 'utf8' });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
};

// What a gather script holds: functions, case patterns with a closing parenthesis, comments with parentheses,
// a here-document, quotes, a loop, output without a final newline, output on stderr.
const SCRIPT = `emit() { echo "@@file $1"; printf '%s\\n' "$2"; }
# a comment (with parentheses) that ends in one)
echo "@@os"; ( echo "debian 12" )
case "x" in ""|y) echo never ;; x) echo "@@case" ;; esac
for p in a 'b c'; do emit "$p" "$(printf 'v-%s' "$p")"; done
cat <<'END'
here (doc) $not_expanded
END
echo "to stderr" >&2
printf 'last line, no newline'`;

describe('printAtEnd', () => {
  it('prints what the script prints, leaves stderr alone, and keeps the exit status', () => {
    const plain = run(SCRIPT);
    const once = run(printAtEnd(SCRIPT));
    expect(once.stdout).toBe(`${plain.stdout}\n`);
    expect(once.stderr).toBe(plain.stderr);
    expect(plain.stdout).toContain('here (doc) $not_expanded\n');
    expect(once.status).toBe(0);
  });

  it('a script that exits early or fails: what it printed until then, and its status', () => {
    const once = run(printAtEnd(`echo "@@os"\nexit 3\necho never`));
    expect(once).toEqual({ stdout: '@@os\n', stderr: '', status: 3 });
    expect(run(printAtEnd('echo partial; false')).status).toBe(1);
  });

  it('trailing newlines come out as one; nothing printed stays one empty line', () => {
    expect(run(printAtEnd('printf "a\\n\\n\\n"')).stdout).toBe('a\n');
    expect(run(printAtEnd(':')).stdout).toBe('\n');
  });

  it("ends the shell with the script's status: nothing appended after it runs", () => {
    expect(run(`${printAtEnd('x=inner; echo $x')}echo after`)).toEqual({
      stdout: 'inner\n',
      stderr: '',
      status: 0,
    });
  });
});
