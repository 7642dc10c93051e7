// Run by the profile in a fresh `tsx` process: how long each heavy import of provision.ts takes, printed as JSON.
// Order matters (later imports reuse what earlier ones loaded): third-party packages first, then the rest of the graph.
const steps: [string, string][] = [
  ['node-ssh (ssh2)', 'node-ssh'],
  ['yaml', 'yaml'],
  ['handlebars', 'handlebars'],
  [
    'the rest of what `apply` loads up front (src/commands/apply.ts and its graph)',
    '../../src/commands/apply.js',
  ],
  // Loaded lazily by `apply` only when the inventory has a GitLab token, overlapping the SSH work; not on our runs.
  ['@kubernetes/client-node (lazy: only with a GitLab token)', '@kubernetes/client-node'],
  // Loaded lazily by src/host-runner/openpgp.ts only for host placement, when a repository key is checked.
  ['openpgp (lazy: only for runners.placement host)', 'openpgp'],
];

const out: { before: number; steps: { name: string; ms: number; rssMiB: number }[] } = {
  before: performance.now(),
  steps: [],
};
for (const [name, spec] of steps) {
  const t = performance.now();
  await import(spec);
  out.steps.push({ name, ms: performance.now() - t, rssMiB: process.memoryUsage().rss / 2 ** 20 });
}
process.stdout.write(`${JSON.stringify(out)}\n`);
