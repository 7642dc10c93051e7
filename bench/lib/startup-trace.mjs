// Benchmark-only preload (NODE_OPTIONS=--import): appends to $RF_STARTUP_TRACE when each node process of a run starts,
// and when one makes its first TCP connect (the first SSH connect), as absolute epoch milliseconds.
import { appendFileSync } from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import process from 'node:process';

const file = process.env.RF_STARTUP_TRACE;
if (file) {
  const now = () => performance.timeOrigin + performance.now();
  const line = (what) =>
    appendFileSync(file, `${JSON.stringify({ pid: process.pid, ppid: process.ppid, what, t: now() })}\n`);
  appendFileSync(
    file,
    `${JSON.stringify({ pid: process.pid, ppid: process.ppid, what: 'start', t: performance.timeOrigin, preload: now(), argv: process.argv.slice(1, 3).map((a) => a.split('/').slice(-2).join('/')) })}\n`,
  );
  const connect = net.Socket.prototype.connect;
  let first = true;
  net.Socket.prototype.connect = function (...args) {
    if (first) {
      first = false;
      line('connect');
    }
    return connect.apply(this, args);
  };
}
