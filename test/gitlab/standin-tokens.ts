// The stand-in's fixed tokens (access tokens with their scopes, the registration token, the preset runner's token),
// their files, and GitLab's scope rules for the endpoints the access tokens reach.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomToken, runnerAuthToken } from './standin-model.js';

export interface StandinTokens {
  /** scopes create_runner + manage_runner + read_api, administrator: can create, update, list and delete runners */
  accessToken: string;
  /** scopes create_runner + manage_runner, administrator: everything but GET /runners/all (no :id, so no manage_runner) */
  accessTokenNoList: string;
  /** accessToken's scopes plus admin_mode: what an administrator's token needs once Admin Mode is on */
  accessTokenAdminMode: string;
  /** scope create_runner only: can create runners but not update them (as on GitLab) */
  accessTokenCreateOnly: string;
  /** scope read_api: POST /user/runners answers 403 */
  accessTokenNoScope: string;
  /** the instance's legacy registration token */
  registrationToken: string;
  /** glrt- token of the pre-created instance runner (#1), for runner-token (shared) mode */
  runnerToken: string;
}

/** Token file names in tokensDir: reference them as `file:<tokensDir>/<name>`. */
export const TOKEN_FILES: Record<keyof StandinTokens, string> = {
  accessToken: 'access-token',
  accessTokenNoList: 'access-token-no-list',
  accessTokenAdminMode: 'access-token-admin-mode',
  accessTokenCreateOnly: 'access-token-create-only',
  accessTokenNoScope: 'access-token-no-scope',
  registrationToken: 'registration-token',
  runnerToken: 'runner-token',
};

/** New tokens, or with `dir` the ones its files hold (files written for the missing ones, mode 0600). */
export function loadOrMakeTokens(dir: string | undefined): StandinTokens {
  const fresh: StandinTokens = {
    accessToken: randomToken('glpat-'),
    accessTokenNoList: randomToken('glpat-'),
    accessTokenAdminMode: randomToken('glpat-'),
    accessTokenCreateOnly: randomToken('glpat-'),
    accessTokenNoScope: randomToken('glpat-'),
    registrationToken: randomToken('GR1348941'),
    runnerToken: runnerAuthToken('instance_type', false),
  };
  if (!dir) return fresh;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const key of Object.keys(TOKEN_FILES) as (keyof StandinTokens)[]) {
    const file = join(dir, TOKEN_FILES[key]);
    if (existsSync(file) && readFileSync(file, 'utf8').trim()) fresh[key] = readFileSync(file, 'utf8').trim();
    else writeFileSync(file, `${fresh[key]}\n`, { mode: 0o600 });
  }
  return fresh;
}

export interface AccessToken {
  scopes: string[];
  admin: boolean;
}

/** The access tokens GitLab knows, all an administrator's. */
export function accessTokensOf(tokens: StandinTokens): Map<string, AccessToken> {
  return new Map<string, AccessToken>([
    [tokens.accessToken, { scopes: ['create_runner', 'manage_runner', 'read_api'], admin: true }],
    [tokens.accessTokenNoList, { scopes: ['create_runner', 'manage_runner'], admin: true }],
    [
      tokens.accessTokenAdminMode,
      { scopes: ['create_runner', 'manage_runner', 'read_api', 'admin_mode'], admin: true },
    ],
    [tokens.accessTokenCreateOnly, { scopes: ['create_runner'], admin: true }],
    [tokens.accessTokenNoScope, { scopes: ['read_api'], admin: true }],
  ]);
}

/** A scope an endpoint class registers with allow_access_with_scope, and the condition it carries. */
export interface ScopeRule {
  scope: string;
  when: (call: { method: string; hasId: boolean }) => boolean;
}

/** lib/api/api.rb: registered on API::API, so on every route: `api` always, `read_api` for GET and HEAD. */
export const API_RB_SCOPES: ScopeRule[] = [
  { scope: 'api', when: () => true },
  { scope: 'read_api', when: (c) => c.method === 'GET' || c.method === 'HEAD' },
];

/**
 * The scopes each endpoint file the stand-in serves with an access token adds to API_RB_SCOPES. runners.rb allows
 * manage_runner only when the request has an :id under /api/v4/runners/ (so never on GET /runners/all);
 * user_runners.rb allows create_runner on POST. APIGuard (lib/api/api_guard.rb) accepts a token holding any rule
 * whose condition holds; a refusal is 403 insufficient_scope naming every scope registered for the endpoint and
 * API::API, conditions or not (Gitlab::Auth::AuthFinders#validate_and_save_access_token!).
 */
export const ENDPOINT_SCOPES: Record<'lib/api/ci/runners.rb' | 'lib/api/user_runners.rb', ScopeRule[]> = {
  'lib/api/ci/runners.rb': [{ scope: 'manage_runner', when: (c) => c.hasId }],
  'lib/api/user_runners.rb': [{ scope: 'create_runner', when: (c) => c.method === 'POST' }],
};
export type EndpointFile = keyof typeof ENDPOINT_SCOPES;
