// runner-fleet entry point: parse arguments, load the inventory, run the command, map errors to exit codes.
// Start-up is part of every no-op rerun: only argument parsing and the error types load up front; the
// rest is imported after the arguments are known, and each command loads only its own graph (`--help` loads none).
import { parseCli, USAGE } from './src/cli.js';
import { EXIT_FAILED, EXIT_OK, InputError, exitCodeFor } from './src/errors.js';
import { redact } from './src/secrets.js';

/** One question on the terminal (stdin, prompt on stderr); only "y" or "yes" is a yes. */
async function askYes(question: string): Promise<boolean> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^(y|yes)$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const req = parseCli(argv);
  if (req.help) {
    process.stdout.write(`${USAGE}\n`);
    return EXIT_OK;
  }
  // apply/plan: their graph (with ssh2, the heaviest import) starts loading now, while the inventory is read.
  const converging =
    req.command === 'apply' || req.command === 'plan'
      ? Promise.all([import('./src/commands/apply.js'), import('./src/ssh.js')])
      : undefined;
  converging?.catch(() => {}); // awaited below; an inventory error must not leave an unhandled rejection
  const [{ commandTrace, createLogger }, { loadInventory, selectNodes }, { createRunContext }] =
    await Promise.all([
      import('./src/log.js'),
      import('./src/inventory/schema.js'),
      import('./src/context.js'),
    ]);
  const log = createLogger({ verbosity: req.verbosity });
  if (req.verbosity === 'verbose') commandTrace.emit = (scope, what) => log.debug(scope, what);
  const inventory = loadInventory(req.inventory, { executor: req.executor, placement: req.placement });
  selectNodes(inventory, req.only); // an unknown --only name is bad input before anything runs
  // One context for the whole command: its clients (cluster, GitLab) are made once, at their first use.
  const ctx = createRunContext({
    inventory,
    dryRun: req.command === 'plan',
    only: req.only,
    log,
    concurrency: req.concurrency,
  });
  switch (req.command) {
    case 'apply':
    case 'plan': {
      const [{ runConverge, formatSummary }, { sshStats }] = await converging!;
      const report = await runConverge(ctx);
      if (req.json) process.stdout.write(`${redact(JSON.stringify({ ...report, ssh: { ...sshStats } }))}\n`);
      log.summary(formatSummary(report, ctx.dryRun));
      return report.ok ? EXIT_OK : EXIT_FAILED;
    }
    case 'status': {
      const [{ runStatus }, { formatStatusTable }] = await Promise.all([
        import('./src/commands/status.js'),
        import('./src/status/health.js'),
      ]);
      const report = await runStatus(ctx);
      log.summary(report.ok ? 'Status: healthy.' : 'Status: not healthy.');
      process.stdout.write(
        `${redact(req.json ? JSON.stringify(report) : formatStatusTable(report, inventory.gitlab.registries))}\n`,
      );
      return report.ok ? EXIT_OK : EXIT_FAILED;
    }
    case 'render': {
      const { renderPreflight, runRender, formatRenderSummary } = await import('./src/commands/render.js');
      const { kubeseal, sealCert, argocd, flux } = renderPreflight(inventory, {
        seal: req.seal,
        only: req.only,
        out: req.out,
        sealCert: req.sealCert,
        argocd: req.argocd,
        flux: req.flux,
      });
      const result = await runRender(ctx, {
        out: req.out!,
        seal: req.seal,
        kubeseal,
        sealCert,
        argocd,
        flux,
      });
      if (req.json) process.stdout.write(`${JSON.stringify(result)}\n`);
      log.summary(formatRenderSummary(result));
      return EXIT_OK;
    }
    case 'destroy': {
      const { destroyPreflight, runDestroy, formatDestroySummary } =
        await import('./src/commands/destroy.js');
      destroyPreflight(inventory, {
        yes: req.yes,
        interactive: Boolean(process.stdin.isTTY),
        only: req.only,
      });
      const confirm = async (whatGoes: string) => {
        // Through the logger, so that the live lines end above the question instead of being redrawn over it.
        log.summary(whatGoes);
        return askYes('Remove all of this? [y/N] ');
      };
      const report = await runDestroy(ctx, {
        yes: req.yes,
        purgeRegistryConfig: req.purgeRegistryConfig,
        confirm,
      });
      if (req.json) process.stdout.write(`${redact(JSON.stringify(report))}\n`);
      log.summary(formatDestroySummary(report));
      return report.ok ? EXIT_OK : EXIT_FAILED;
    }
    case 'upgrade-snaps': {
      const { runUpgradeSnaps, formatUpgradeSnapsSummary } = await import('./src/commands/upgrade-snaps.js');
      const report = await runUpgradeSnaps(ctx);
      if (req.json) process.stdout.write(`${redact(JSON.stringify(report))}\n`);
      log.summary(formatUpgradeSnapsSummary(report));
      return report.ok ? EXIT_OK : EXIT_FAILED;
    }
    case 'ci-snippet': {
      const { ciSnippet } = await import('./src/ci/snippet.js');
      process.stdout.write(ciSnippet(inventory, inventory.runners.executor));
      return EXIT_OK;
    }
    default:
      throw new InputError([`${req.command}: not implemented yet`]);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`runner-fleet: ${redact(message)}\n`);
    if (!(err instanceof InputError) && process.env.RUNNER_FLEET_DEBUG && err instanceof Error)
      process.stderr.write(`${redact(err.stack ?? '')}\n`);
    process.exitCode = exitCodeFor(err) || EXIT_FAILED;
  },
);
