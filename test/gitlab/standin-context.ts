// The running stand-in as its route handlers see it: the GitLab model, its tokens, the registry signer, the URL jobs
// are given, and the test knobs (answer delay, clock skew, injected failures).
import type { GitTokens } from './git-http.js';
import type { Route } from './standin-http.js';
import type { StandinModel } from './standin-model.js';
import { resetModel } from './standin-model.js';
import type { RegistrySigner } from './standin-registry.js';
import type { AccessToken, StandinTokens } from './standin-tokens.js';

export interface FailRule {
  method?: string;
  /** exact API path, e.g. /api/v4/user/runners */
  path: string;
  status: number;
  /** how many matching calls fail (default 1) */
  times?: number;
  /** only calls whose description (create/update) contains this */
  descriptionIncludes?: string;
  /** do the call, then answer `status` with the first half of its JSON body (a proxy that cut the answer) */
  truncate?: boolean;
}

export interface StandinContext {
  readonly model: StandinModel;
  readonly tokens: StandinTokens;
  readonly accessTokens: Map<string, AccessToken>;
  /** deploy tokens and project access tokens, for git over HTTP (git-http.ts) */
  readonly gitTokens: GitTokens;
  /** signs registry tokens; null when the stand-in has no registry */
  readonly signer: RegistrySigner | null;
  /** what jobs see as CI_SERVER_URL and clone from; set once the stand-in listens */
  serverUrl: string;
  /** delay every API answer (timeout tests) */
  delayMs: number;
  /** Workhorse's long polling of jobs/request, in seconds (standin-workhorse.ts); 0: off */
  longPollingSeconds: number;
  /** how far the `Date` of API answers is moved from this machine's clock: a skewed node, as GitLab sees it */
  clockOffsetSeconds: number;
  failRules: (FailRule & { left: number })[];
}

/** What answers a route: the running stand-in and the call in, the reply out. */
export type Handler = Route<StandinContext>['handler'];

/** A fresh GitLab and no injected failures or skew; the delay stays (it is the test's setting, not GitLab's). */
export function resetStandin(ctx: StandinContext): void {
  ctx.clockOffsetSeconds = 0;
  ctx.failRules = [];
  resetModel(ctx.model);
}
