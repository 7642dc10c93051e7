import { describe, expect, it } from 'vitest';
import { sysctlArgs } from './network.js';
import { nodeLan, nodeSysctls } from './node.js';

describe('nodeSysctls: what a node namespace starts with, whatever this machine has', () => {
  it('a plain node forwards nothing, as a fresh Pi', () => {
    expect(sysctlArgs(nodeSysctls({}))).toEqual(['net.ipv4.ip_forward=0', 'net.ipv6.conf.all.forwarding=0']);
  });

  it("a microk8s node gets what microk8s's kubelite wrapper sets, written after the fresh Pi's values", () => {
    const args = sysctlArgs(nodeSysctls({ microk8s: true }));
    expect(args).toEqual([
      'net.ipv4.ip_forward=0',
      'net.ipv6.conf.all.forwarding=1',
      'net.ipv4.conf.all.forwarding=1',
      'net.bridge.bridge-nf-call-iptables=1',
    ]);
    // ip_forward and conf.all.forwarding are one knob: the later write (microk8s's) must win.
    expect(args.indexOf('net.ipv4.conf.all.forwarding=1')).toBeGreaterThan(
      args.indexOf('net.ipv4.ip_forward=0'),
    );
  });

  it('nodeLan carries them to joinLan', () => {
    const lan = nodeLan({ name: 'pi2', host: '198.18.0.12', port: 22, docker: 'apt', microk8s: true });
    expect(lan.sysctls).toEqual(nodeSysctls({ microk8s: true }));
  });
});
