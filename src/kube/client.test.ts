import { Agent } from 'node:https';
import { describe, expect, it } from 'vitest';
import { sharedAgent } from './client.js';

describe('sharedAgent', () => {
  const base = { ca: Buffer.from('ca'), cert: Buffer.from('cert'), key: Buffer.from('key') };

  it('gives requests with the same TLS identity one keep-alive agent', () => {
    const agents = new Map<string, Agent>();
    const a = sharedAgent(agents, { ...base });
    // client-node reads the files again for every request: equal bytes, new Buffers
    const b = sharedAgent(agents, {
      ca: Buffer.from('ca'),
      cert: Buffer.from('cert'),
      key: Buffer.from('key'),
    });
    expect(b).toBe(a);
    expect(a.options.keepAlive).toBe(true);
  });

  it.each([
    ['another client key', { key: Buffer.from('other') }],
    ['another CA', { ca: Buffer.from('other') }],
    ['TLS checks off', { rejectUnauthorized: false }],
    ['another server name', { servername: 'other' }],
  ])('makes a new agent for %s', (_what, change) => {
    const agents = new Map<string, Agent>();
    const a = sharedAgent(agents, { ...base });
    expect(sharedAgent(agents, { ...base, ...change })).not.toBe(a);
  });
});
