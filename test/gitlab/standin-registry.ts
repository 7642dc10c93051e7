// GitLab's container registry token service for the stand-in, pure: GET /jwt/auth's answer and the JWT it signs.
//
// Followed upstream (read, not copied; GitLab Rails of the 17.9 era, docker/distribution v2.8.2):
// - app/controllers/jwt_controller.rb: HTTP Basic credentials that do not authenticate → 401 {errors: [UNAUTHORIZED]};
//   an unknown `service` → 404; `scope` may repeat and each may hold several space-separated scopes.
// - lib/gitlab/auth.rb (build_access_token_check): `gitlab-ci-token` + the token of a *running* job authenticates
//   as that job, with the build_* abilities on its own project.
// - app/services/auth/container_registry_authentication_service.rb: a job may push and pull only its own project's
//   repositories (`<full path, lowercased>` and below); no scope, no user and no project → 403 DENIED; actions not
//   granted are left out of the token, never refused (the registry then refuses the request).
// - lib/json_web_token/{token,rsa_token}.rb: RS256, header `kid` = the libtrust fingerprint of the public key (SHA-256
//   of its DER, 240 bits, base32, groups of 4 joined by ':'), claims jti, aud, sub, iss, iat, nbf (5 s back), exp
//   (container_registry_token_expire_delay: 5 minutes). distribution's token access controller finds the key by
//   that `kid` among the certificates of its rootcertbundle (registry/auth/token/token.go).
import { createHash, createPrivateKey, createPublicKey, randomUUID, sign, type KeyObject } from 'node:crypto';

/** Auth::ContainerRegistryAuthenticationService::AUDIENCE, the `service` the registry's challenge names. */
export const REGISTRY_SERVICE = 'container_registry';
/** gitlab.yml `registry.issuer` default. */
export const REGISTRY_ISSUER = 'gitlab-issuer';
/** ApplicationSetting container_registry_token_expire_delay default (minutes). */
const TOKEN_EXPIRE_MINUTES = 5;

export interface RegistrySigner {
  /** Gitlab.config.registry.host_port: what jobs see as CI_REGISTRY */
  hostPort: string;
  key: KeyObject;
  kid: string;
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32(bytes: Buffer): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** libtrust's key id (JSONWebToken::RSAToken#kid): what the registry looks the signing key up by. */
export function libtrustKeyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const digest = createHash('sha256').update(der).digest().subarray(0, 30);
  return base32(digest).match(/.{4}/g)!.join(':');
}

export function registrySigner(hostPort: string, privateKeyPem: string): RegistrySigner {
  const key = createPrivateKey(privateKeyPem);
  return { hostPort, key, kid: libtrustKeyId(createPublicKey(key)) };
}

export interface RegistryAccess {
  type: 'repository';
  name: string;
  actions: string[];
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

/** JSONWebToken::RSAToken#encoded with the service's claims. */
export function signRegistryToken(
  signer: RegistrySigner,
  claims: { subject: string | null; access: RegistryAccess[] },
  nowMs = Date.now(),
): string {
  const iat = Math.floor(nowMs / 1000);
  const header = { alg: 'RS256', kid: signer.kid };
  const payload = {
    access: claims.access,
    jti: randomUUID(),
    aud: REGISTRY_SERVICE,
    ...(claims.subject ? { sub: claims.subject } : {}),
    iss: REGISTRY_ISSUER,
    iat,
    nbf: iat - 5,
    exp: iat + TOKEN_EXPIRE_MINUTES * 60,
  };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  return `${input}.${b64url(sign('sha256', Buffer.from(input), signer.key))}`;
}

/** JwtController#scopes_param: every `scope` of the query, each split on spaces. */
export function scopesOf(query: URLSearchParams): string[] {
  return query.getAll('scope').flatMap((s) => s.split(/\s+/).filter(Boolean));
}

/** Who asks: a running job (by its token), or nobody (no credentials). */
export type RegistryActor = { kind: 'job'; projectPath: string; user: string } | { kind: 'anonymous' };

/**
 * The access a token carries for the requested scopes (#process_scope, #can_access?): a job pulls and pushes its own
 * project's repositories; nobody else gets anything here (the stand-in's projects are private, and their job token
 * scope allows no other project).
 */
export function grantedAccess(actor: RegistryActor, scopes: string[]): RegistryAccess[] {
  const access: RegistryAccess[] = [];
  for (const scope of scopes) {
    const [type, name, actions] = scope.split(':', 3);
    if (type !== 'repository' || !name || actions === undefined) continue;
    const own =
      actor.kind === 'job' &&
      (name === actor.projectPath.toLowerCase() || name.startsWith(`${actor.projectPath.toLowerCase()}/`));
    const allowed = actions.split(',').filter((a) => own && (a === 'pull' || a === 'push'));
    if (allowed.length > 0) access.push({ type: 'repository', name, actions: allowed });
  }
  return access;
}

export type RegistryAuthReply =
  { status: 200; body: { token: string } } | { status: 401 | 403 | 404; body: unknown };

const UNAUTHORIZED = {
  errors: [
    {
      code: 'UNAUTHORIZED',
      message:
        "HTTP Basic: Access denied. If a password was provided for Git authentication, the password was incorrect or you're required to use a token instead of a password. If a token was provided, it was either incorrect, expired, or improperly scoped.",
    },
  ],
};

/**
 * GET /jwt/auth. `findJob` answers for `gitlab-ci-token` + password: the running job's project path, or null (a job
 * token of a finished job authenticates nothing).
 */
export function registryAuth(
  signer: RegistrySigner | null,
  query: URLSearchParams,
  authorization: string | undefined,
  findJob: (token: string) => { projectPath: string; user: string } | null,
): RegistryAuthReply {
  let actor: RegistryActor = { kind: 'anonymous' };
  const basic = /^Basic\s+(\S+)$/i.exec(authorization ?? '');
  if (basic) {
    const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const [login, password] = [decoded.slice(0, colon), decoded.slice(colon + 1)];
    const job = colon > 0 && login === 'gitlab-ci-token' ? findJob(password) : null;
    if (!job) return { status: 401, body: UNAUTHORIZED };
    actor = { kind: 'job', ...job };
  }
  if (query.get('service') !== REGISTRY_SERVICE) return { status: 404, body: null };
  if (!signer)
    return { status: 404, body: { errors: [{ code: 'UNAVAILABLE', message: 'registry not enabled' }] } };
  const scopes = scopesOf(query);
  if (scopes.length === 0 && actor.kind === 'anonymous')
    return { status: 403, body: { errors: [{ code: 'DENIED', message: 'access forbidden' }] } };
  const token = signRegistryToken(signer, {
    subject: actor.kind === 'job' ? actor.user : null,
    access: grantedAccess(actor, scopes),
  });
  return { status: 200, body: { token } };
}

/** ContainerRegistryAuthenticationService.full_access_token: GitLab's own access (`*`) to the named repositories. */
export function fullAccessToken(signer: RegistrySigner, names: string[]): string {
  return signRegistryToken(signer, {
    subject: null,
    access: names.map((name) => ({ type: 'repository', name, actions: ['*'] })),
  });
}
