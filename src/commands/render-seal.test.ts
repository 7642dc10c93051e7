// render --seal with the real kubeseal: sealed with a generated certificate, unsealed with its private key, the
// Secret that comes back is the one render would have written to secrets.yaml. No cluster is needed on this path.
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { findKubeseal, requireKubeseal } from '../../test/support/kubeseal.js';
import { InputError, RunFailedError } from '../errors.js';
import { parseInventory } from '../inventory/schema.js';
import { SECRETS_FILE, manifestFiles } from '../kube/manifest-files.js';
import type { KubeObject } from '../kube/objects.js';
import { renderClusterObjects } from '../kube/render.js';
import { sealCertProblem } from '../kube/seal-cert.js';
import { runLocal } from '../local.js';
import { silentLogger } from '../../test/support/logger.js';
import { previousSealings, renderPreflight, sealSecrets, writeRenderOutput } from './render.js';

const inv = parseInventory(
  `
gitlab: {url: https://gitlab.lan, registry: gitlab.lan:5050, accessToken: env:GITLAB_TOKEN}
nodes:
  - {name: pi1, host: 127.0.0.11}
  - {name: pi2, host: 127.0.0.12}
kubernetes: {namespace: ci}
`,
  '/tmp/inventory.yaml',
);
const tokens = { pi1: 'glrt-pi1secretvalue0', pi2: 'glrt-pi2secretvalue0' };
const configs = {
  pi1: `[[runners]]\n  token = "${tokens.pi1}"\n`,
  pi2: `[[runners]]\n  token = "${tokens.pi2}"\n`,
};
const objects = renderClusterObjects({ inventory: inv, executor: 'dood', configs, tokens });

let base: string;
let kubeseal: string;
let cert: string;
let key: string;

/** A self-signed RSA certificate and its key, as the controller keeps them (it makes 4096-bit ones; 2048 is faster). */
async function makeCert(
  dir: string,
  name: string,
  extra: string[] = ['-newkey', 'rsa:2048'],
): Promise<{ cert: string; key: string }> {
  const c = join(dir, `${name}.crt`);
  const k = join(dir, `${name}.key`);
  const r = await runLocal('openssl', [
    'req',
    '-x509',
    ...extra,
    '-nodes',
    '-keyout',
    k,
    '-out',
    c,
    '-days',
    '30',
    '-subj',
    '/CN=sealed-secret/O=sealed-secret',
  ]);
  if (r.code !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  return { cert: c, key: k };
}

const run = requireKubeseal('render --seal round trip');

describe.runIf(run)('render --seal with the real kubeseal and --seal-cert', () => {
  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'rf-seal-'));
    chmodSync(base, 0o700);
    kubeseal = findKubeseal().path!;
    ({ cert, key } = await makeCert(base, 'controller'));
  });
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it('seals every Secret with the certificate; unsealed with the key it is the Secret secrets.yaml would hold', async () => {
    // What render writes without --seal: the Secret in secrets.yaml.
    const plain = manifestFiles(objects, { source: 'fleet.yaml' }).find((f) => f.name === SECRETS_FILE)!;
    const [expected] = parseAllDocuments(plain.content).map((d) => d.toJS() as KubeObject);
    expect(expected.kind).toBe('Secret');

    // No kubeconfig anywhere: with a certificate kubeseal must not need a cluster.
    const env = { ...process.env, HOME: base, KUBECONFIG: join(base, 'no-such-kubeconfig') };
    vi.stubEnv('HOME', env.HOME);
    vi.stubEnv('KUBECONFIG', env.KUBECONFIG);
    let sealed: Map<string, string>;
    try {
      sealed = await sealSecrets(objects, {
        kubeseal,
        cert,
        kubeconfig: join(base, 'ignored'),
        log: silentLogger,
      });
    } finally {
      vi.unstubAllEnvs();
    }
    expect([...sealed.keys()]).toEqual(['Secret/ci/runner-fleet-config']);

    const out = join(base, 'gitops');
    const files = manifestFiles(objects, { source: 'fleet.yaml', sealed });
    const written = writeRenderOutput(out, files);
    expect(written.secretsFile).toBeUndefined();
    expect(readdirSync(out).sort()).toEqual([
      '01-namespace-ci.yaml',
      '02-serviceaccount-gitlab-runner.yaml',
      '03-sealedsecret-runner-fleet-config.yaml',
      '04-daemonset-gitlab-runner-dood.yaml',
    ]);
    for (const f of readdirSync(out)) {
      const text = readFileSync(join(out, f), 'utf8');
      for (const t of Object.values(tokens)) expect(text, f).not.toContain(t);
      for (const c of Object.values(configs))
        expect(text, f).not.toContain(Buffer.from(c).toString('base64'));
    }

    const sealedText = readFileSync(join(out, '03-sealedsecret-runner-fleet-config.yaml'), 'utf8');
    const doc = parse(sealedText);
    expect(doc).toMatchObject({
      apiVersion: 'bitnami.com/v1alpha1',
      kind: 'SealedSecret',
      metadata: { name: 'runner-fleet-config', namespace: 'ci' },
    });
    expect(Object.keys(doc.spec.encryptedData).sort()).toEqual(['pi1.config.toml', 'pi2.config.toml']);

    const un = await runLocal(
      kubeseal,
      ['--recovery-unseal', '--recovery-private-key', key, '--format', 'yaml'],
      { input: sealedText },
    );
    expect(un.code, un.stderr).toBe(0);
    const secret = parse(un.stdout) as KubeObject;
    // The controller owns the Secret it makes from the SealedSecret; everything else is what render would have applied.
    expect(secret.metadata.ownerReferences).toMatchObject([
      { kind: 'SealedSecret', name: 'runner-fleet-config', controller: true },
    ]);
    // kubeseal keeps the annotation in the template, so the controller's Secret stays one it may update.
    expect(secret.metadata.annotations).toEqual({ 'sealedsecrets.bitnami.com/managed': 'true' });
    const { ownerReferences: _owner, ...metadata } = secret.metadata;
    expect({ ...secret, metadata }).toEqual(expected);
    expect(Buffer.from((secret.data as Record<string, string>)['pi1.config.toml'], 'base64').toString()).toBe(
      configs.pi1,
    );
  });

  it('another key cannot unseal it', async () => {
    const other = await makeCert(base, 'other');
    const sealed = await sealSecrets(objects, { kubeseal, cert, log: silentLogger });
    const un = await runLocal(
      kubeseal,
      ['--recovery-unseal', '--recovery-private-key', other.key, '--format', 'yaml'],
      { input: [...sealed.values()][0] },
    );
    expect(un.code).not.toBe(0);
    expect(un.stdout).not.toContain(Buffer.from(configs.pi1).toString('base64'));
  });

  it('render again: an unchanged Secret keeps its sealing (same file), a changed one is sealed afresh', async () => {
    const out = join(base, 'again');
    const render = async () => {
      const sealed = await sealSecrets(objects, {
        kubeseal,
        cert,
        log: silentLogger,
        previous: previousSealings(out),
      });
      writeRenderOutput(out, manifestFiles(objects, { source: 'fleet.yaml', sealed }));
      return readFileSync(join(out, '03-sealedsecret-runner-fleet-config.yaml'), 'utf8');
    };
    const first = await render();
    expect(first.split('\n')[2]).toMatch(/^# Sealed from sha256:[0-9a-f]{64}$/);
    expect(await render()).toBe(first);
    // kubeseal alone encrypts afresh every time: without the reuse the file would change on every render.
    const fresh = await sealSecrets(objects, { kubeseal, cert, log: silentLogger });
    expect([...fresh.values()][0]).not.toBe(first.slice(first.indexOf('# Sealed from')));
    const changed = renderClusterObjects({
      inventory: inv,
      executor: 'dood',
      configs: { ...configs, pi1: `${configs.pi1}\n# changed\n` },
      tokens,
    });
    const resealed = await sealSecrets(changed, {
      kubeseal,
      cert,
      log: silentLogger,
      previous: previousSealings(out),
    });
    expect([...resealed.values()][0].split('\n')[0]).not.toBe(first.split('\n')[2]);
  });

  it("without a certificate it still asks the inventory's cluster (fails, and says so, when there is none)", async () => {
    const kubeconfig = join(base, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: {token: x}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n',
      { mode: 0o600 },
    );
    await expect(sealSecrets(objects, { kubeseal, kubeconfig, log: silentLogger })).rejects.toThrow(
      RunFailedError,
    );
    await expect(sealSecrets(objects, { kubeseal, kubeconfig, log: silentLogger })).rejects.toThrow(
      /certificate of the Sealed Secrets controller kube-system\/sealed-secrets-controller .*127\.0\.0\.1:1/,
    );
    // The Helm chart's name, from kubernetes.sealedSecrets: kubeseal is asked for that one, and the error names it.
    const controller = { name: 'sealed-secrets', namespace: 'security' };
    await expect(
      sealSecrets(objects, { kubeseal, kubeconfig, controller, log: silentLogger }),
    ).rejects.toThrow(/controller security\/sealed-secrets \(service sealed-secrets in namespace security;/);
  });

  it('--seal-cert: found on PATH, checked before anything is contacted; a key, an expired or a non-RSA certificate is exit 2', async () => {
    const bin = join(base, 'bin');
    rmSync(bin, { recursive: true, force: true });
    mkdirSync(bin, { mode: 0o700 });
    symlinkSync(kubeseal, join(bin, 'kubeseal'));
    vi.stubEnv('PATH', `${bin}:${process.env.PATH}`);
    try {
      const ok = renderPreflight(inv, { seal: false, sealCert: cert });
      expect(ok).toMatchObject({ kubeseal: join(bin, 'kubeseal'), sealCert: cert });
      const preflightError = (sealCert: string) => {
        try {
          renderPreflight(inv, { seal: true, sealCert });
        } catch (err) {
          expect(err).toBeInstanceOf(InputError);
          return (err as InputError).message;
        }
        throw new Error('expected an InputError');
      };
      expect(preflightError(key)).toMatch(/--seal-cert: .*holds a private key/);
      expect(preflightError(key)).not.toContain(readFileSync(key, 'utf8').split('\n')[1]);
      expect(preflightError(join(base, 'missing.crt'))).toMatch(
        /--seal-cert: cannot read .*missing\.crt \(ENOENT\)/,
      );
      expect(preflightError(base)).toMatch(/--seal-cert: .* is not a file/);
      writeFileSync(
        join(base, 'junk.crt'),
        '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n',
      );
      expect(preflightError(join(base, 'junk.crt'))).toMatch(/--seal-cert: .* is not a valid certificate/);
      const ec = await makeCert(base, 'ec', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1']);
      expect(preflightError(ec.cert)).toMatch(
        /--seal-cert: .* has a ec key; Sealed Secrets certificates are RSA/,
      );
      expect(sealCertProblem(cert, new Date(Date.now() + 60 * 86400_000))).toMatch(/expired on/);
    } finally {
      vi.unstubAllEnvs();
    }
    vi.stubEnv('PATH', '/nonexistent');
    try {
      expect(() => renderPreflight(inv, { seal: false, sealCert: cert })).toThrow(
        /--seal-cert: kubeseal is not on PATH/,
      );
    } finally {
      vi.unstubAllEnvs();
    }
  });
});
