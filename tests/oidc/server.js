// A real OpenID provider (`oidc-provider`, pinned in package-lock.json) for token-handler's
// end-to-end tests. Started by tests/it/support/oidc_provider.rs.
//
// Contract with the test harness:
// - listens on 127.0.0.1 with an OS-assigned port (never a fixed one), issuer
//   `http://127.0.0.1:<port>`;
// - prints exactly one line to stdout once it accepts connections:
//   {"issuer":"http://127.0.0.1:<port>"}
//   or, with EXPOSE_SIGNING_KEY=1,
//   {"issuer":"...","signing_key":{<private JWK, kid "test-rs256">},"signing_key_pem":"<PKCS#8>"}
//   Everything else (oidc-provider's notices and warnings, errors) goes to stderr;
// - runs until killed, or until its stdin closes, so a test process that dies leaves no orphan.
//
// Environment:
//   REDIRECT_URI              required: the client's only redirect_uri (the proxy's /auth/callback)
//   POST_LOGOUT_REDIRECT_URI  required: the client's only post_logout_redirect_uri
//   ACCESS_TOKEN_TTL          seconds, default 60
//   CLIENT_ID                 default "token-handler"
//   CLIENT_SECRET             default "oidc-provider-secret"
//   ROTATE_REFRESH_TOKEN      "0": refresh tokens are never rotated (the same one comes back and
//                             stays valid, as with IdPs that do not rotate); default "1"
//   BACKCHANNEL_LOGOUT_URI    optional: enables OpenID Connect Back-Channel Logout 1.0 and
//                             registers this URI on the client with
//                             backchannel_logout_session_required (ID and logout tokens then
//                             carry `sid`). The provider POSTs `logout_token` there when a session
//                             ends (e.g. /session/end/confirm with logout=yes) and awaits the POSTs
//                             before answering; outcomes are logged to stderr
//                             (`backchannel.success` / `backchannel.error`). Loopback URIs work: the
//                             provider's SSRF guard is bypassed (see `fetch` below).
//   CLIENT_AUTH               "private_key_jwt": the client authenticates with client assertions
//                             (RFC 7523) and has no secret. The provider generates the client's
//                             key pairs, one per algorithm (kids "client-rs256" RSA/RS256,
//                             "client-ps256" RSA/PS256, "client-es256" P-256/ES256), registers
//                             their public halves as the client's `jwks`, and prints the private
//                             halves on its stdout line as `client_keys`:
//                             {"<kid>": {"jwk": <private JWK with kid and alg>, "pem": "<PKCS#8>"}}.
//                             The claims and header of every client assertion it accepted are
//                             served at GET /test/client-assertions (a JSON array of
//                             {route, alg, kid, claims}). A second client, "test-inspector" with
//                             the CLIENT_SECRET and client_secret_basic, lets tests introspect.
//                             Default "client_secret_basic".
//   REQUIRE_PAR               "1": the client is registered with
//                             `require_pushed_authorization_requests` (RFC 9126 §6): its
//                             authorization requests must come through the PAR endpoint
//                             (`/request`, advertised by discovery as oidc-provider 9.x enables
//                             PAR by default); a classic one gets `invalid_request`.
//   EXPOSE_SIGNING_KEY        "1": the stdout line also carries the private signing key (JWK and
//                             PKCS#8 PEM), so tests can sign crafted tokens with the very key the
//                             JWKS (/jwks) publishes. Test use only.

import http from 'node:http';
import crypto from 'node:crypto';
import { keyPair } from './keys.js';

// oidc-provider writes its notices with console.info (stdout). stdout is reserved for the one
// issuer line the harness waits for, so route every console method to stderr *before* the
// package is loaded (hence the dynamic import below).
const toStderr = (...args) => console.error(...args);
console.log = toStderr;
console.info = toStderr;
console.debug = toStderr;

function fail(message) {
  process.stderr.write(`oidc test provider: ${message}\n`);
  process.exit(2);
}

function required(name) {
  const value = process.env[name];
  if (!value) fail(`environment variable ${name} is required`);
  return value;
}

function seconds(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) fail(`${name} must be a positive integer, got ${raw}`);
  return value;
}

const REDIRECT_URI = required('REDIRECT_URI');
const POST_LOGOUT_REDIRECT_URI = required('POST_LOGOUT_REDIRECT_URI');
const ACCESS_TOKEN_TTL = seconds('ACCESS_TOKEN_TTL', 60);
const CLIENT_ID = process.env.CLIENT_ID || 'token-handler';
const CLIENT_SECRET = process.env.CLIENT_SECRET || 'oidc-provider-secret';
const ROTATE_REFRESH_TOKEN = (process.env.ROTATE_REFRESH_TOKEN || '1') !== '0';
const BACKCHANNEL_LOGOUT_URI = process.env.BACKCHANNEL_LOGOUT_URI || undefined;
const EXPOSE_SIGNING_KEY = process.env.EXPOSE_SIGNING_KEY === '1';
const REQUIRE_PAR = process.env.REQUIRE_PAR === '1';
const CLIENT_AUTH = process.env.CLIENT_AUTH || 'client_secret_basic';
if (!['client_secret_basic', 'private_key_jwt'].includes(CLIENT_AUTH)) {
  fail(`CLIENT_AUTH must be client_secret_basic or private_key_jwt, got ${CLIENT_AUTH}`);
}
const PRIVATE_KEY_JWT = CLIENT_AUTH === 'private_key_jwt';

const { default: Provider } = await import('oidc-provider');

// Fresh keys per run: nothing here outlives the process (storage is in memory too).
const { privateKey } = keyPair('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', use: 'sig', alg: 'RS256' };

const DAY = 24 * 60 * 60;

// The client's own key pairs (private_key_jwt): the provider keeps the public halves only.
const clientKeys = {};
if (PRIVATE_KEY_JWT) {
  for (const [kid, alg, type, options] of [
    ['client-rs256', 'RS256', 'rsa', { modulusLength: 2048 }],
    ['client-ps256', 'PS256', 'rsa', { modulusLength: 2048 }],
    ['client-es256', 'ES256', 'ec', { namedCurve: 'P-256' }],
  ]) {
    const pair = keyPair(type, options);
    clientKeys[kid] = {
      jwk: { ...pair.privateKey.export({ format: 'jwk' }), kid, alg },
      pem: pair.privateKey.export({ format: 'pem', type: 'pkcs8' }),
      public: { ...pair.publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' },
    };
  }
}
// Every client assertion the provider accepted, for the tests to read back.
const clientAssertions = [];

const configuration = {
  clients: [
    {
      client_id: CLIENT_ID,
      ...(PRIVATE_KEY_JWT
        ? {
          token_endpoint_auth_method: 'private_key_jwt',
          jwks: { keys: Object.values(clientKeys).map((k) => k.public) },
        }
        : { client_secret: CLIENT_SECRET, token_endpoint_auth_method: 'client_secret_basic' }),
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [REDIRECT_URI],
      post_logout_redirect_uris: [POST_LOGOUT_REDIRECT_URI],
      // With backchannel_logout_session_required, oidc-provider also puts `sid` into the
      // client's ID tokens (Client#includeSid), the value the logout token carries.
      ...(BACKCHANNEL_LOGOUT_URI
        ? { backchannel_logout_uri: BACKCHANNEL_LOGOUT_URI, backchannel_logout_session_required: true }
        : {}),
      ...(REQUIRE_PAR ? { require_pushed_authorization_requests: true } : {}),
    },
    ...(PRIVATE_KEY_JWT
      ? [{
        client_id: 'test-inspector',
        client_secret: CLIENT_SECRET,
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: [REDIRECT_URI],
      }]
      : []),
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },

  // Called after the provider checked a client assertion (iss, aud, exp, jti, signature) and
  // before its replay check: recorded, so that tests can see what the client sent.
  async assertJwtClientAuthClaimsAndHeader(ctx, claims, header) {
    clientAssertions.push({ route: ctx.oidc.route, alg: header.alg, kid: header.kid, claims });
  },

  // Any login id is a valid account with fixed profile claims.
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, name: 'OIDC Test User', email: 'oidc-user@example.com' };
      },
    };
  },
  claims: {
    openid: ['sub'],
    profile: ['name'],
    email: ['email'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  // Put the profile/email claims into the ID token itself (not only /me), so the proxy can
  // read `name` and `email` from the ID token it receives at the code exchange.
  conformIdTokenClaims: false,

  // The default only requires PKCE for public clients; the proxy is confidential but must
  // still send it (9.x accepts S256 only).
  pkce: { required: () => true },

  // Every refresh returns a new refresh token; presenting a consumed one revokes the whole
  // grant (built into oidc-provider's refresh_token grant). Off (ROTATE_REFRESH_TOKEN=0): the
  // same refresh token comes back, for the tests of IdPs that do not rotate.
  rotateRefreshToken: ROTATE_REFRESH_TOKEN,
  // Tests expire short-lived tokens on purpose: no 15 s grace.
  clockTolerance: 0,

  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: DAY,
    Grant: 14 * DAY,
    Session: 14 * DAY,
    Interaction: 3600,
  },

  // No resourceIndicators: access tokens stay opaque, so they (and refresh tokens) can be
  // introspected and revoked (RFC 7662 / RFC 7009).
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: Boolean(BACKCHANNEL_LOGOUT_URI) },
  },
};

if (BACKCHANNEL_LOGOUT_URI) {
  // oidc-provider's outgoing calls (lib/helpers/fetch_request.js) pass an undici `dispatcher`
  // that destroys sockets to special-use addresses (SSRF guard: "hostname resolves to a
  // special-use IP address"), loopback included. The proxy under test listens on 127.0.0.1, so
  // this test provider sends its back-channel POSTs with the plain global fetch instead (the
  // request's other options, e.g. its 2.5 s timeout signal, are kept).
  configuration.fetch = (url, { dispatcher: _ssrfGuard, ...options }) => globalThis.fetch(url, options);
}

// ---- DPoP (RFC 9449), resource indicators (RFC 8707) and the provider-side test view ----------
// Kept in one block (configuration changes here, hooks installed by installDpopTestHooks below).
//
// Environment:
//   DPOP            "1": the client gets `dpop_bound_access_tokens: true`: every token request
//                   (authorization_code, refresh_token) must carry a DPoP proof, else
//                   `400 invalid_grant` ("DPoP proof JWT not provided"); its access tokens are
//                   DPoP-bound (`token_type: "DPoP"`, `cnf.jkt` in JWT access tokens).
//                   Without it DPoP stays optional (9.x enables the feature by default): a proof
//                   that is sent is checked and binds the token.
//   DPOP_NONCE      "1": `features.dPoP.nonceSecret` (32 random bytes) and
//                   `features.dPoP.requireNonce: () => true`: the provider answers a proof without
//                   its current nonce with `400 {"error":"use_dpop_nonce"}` and a `DPoP-Nonce`
//                   header (and sends `DPoP-Nonce` on later answers when the nonce changes).
//   RESOURCE        an absolute URL: resource indicators with that one resource server. It is the
//                   default resource of every authorization request (`defaultResource`) and the
//                   token endpoint uses the granted one without the client asking
//                   (`useGrantedResource: () => true`), for authorization_code and refresh_token
//                   alike: access tokens are then JWTs (`typ: at+jwt`, RS256, kid "test-rs256",
//                   `aud` = RESOURCE, `cnf.jkt` when DPoP-bound, lifetime ACCESS_TOKEN_TTL).
//                   Its scopes are RESOURCE_SCOPES ("api:read api:write" by default); requested
//                   ones end up in the access token's `scope`; the token response's `scope` is
//                   the access token's (resource scopes only: "" when none was requested, never
//                   openid/offline_access/profile/email), unknown scopes are dropped silently.
//                   Refresh tokens stay opaque (RFC 7009 revocation works); JWT access tokens
//                   cannot be introspected or revoked, nor used at the userinfo endpoint (their
//                   aud is RESOURCE): the ID token carries the profile claims.
//   TEST_INTROSPECT "1": GET /__test/tokens answers what the provider did, as JSON:
//                   {"access_tokens": [{"jkt", "aud", "format", "gty", "token_type", "client_id"}]
//                    (every access token issued, oldest first; jkt null when not DPoP-bound),
//                    "nonce_refusals": <answers with error use_dpop_nonce, any endpoint>,
//                    "token_requests": [{"grant_type", "status", "dpop", "error"}],
//                    "errors": [{"route", "status", "error", "error_description", "dpop"}]}.
// DPoP proofs are accepted with ES256, PS256 and RS256 (what tests/oidc/resource-server.js
// accepts too; the 9.x default is ES256, Ed25519, EdDSA).
const DPOP = process.env.DPOP === '1';
const DPOP_NONCE = process.env.DPOP_NONCE === '1';
const RESOURCE = process.env.RESOURCE || undefined;
const RESOURCE_SCOPES = process.env.RESOURCE_SCOPES || 'api:read api:write';
const TEST_INTROSPECT = process.env.TEST_INTROSPECT === '1';
const DPOP_ALGS = ['ES256', 'PS256', 'RS256'];
{
  configuration.enabledJWA = { ...configuration.enabledJWA, dPoPSigningAlgValues: DPOP_ALGS };
  const client = configuration.clients.find((c) => c.client_id === CLIENT_ID);
  if (DPOP) client.dpop_bound_access_tokens = true;
  if (DPOP_NONCE) {
    configuration.features.dPoP = {
      enabled: true,
      nonceSecret: crypto.randomBytes(32),
      requireNonce: () => true,
    };
  }
  if (RESOURCE) {
    let resource;
    try {
      resource = new URL(RESOURCE).href;
    } catch {
      fail(`RESOURCE must be an absolute URL, got ${RESOURCE}`);
    }
    if (resource !== RESOURCE) fail(`RESOURCE must be written in normal form (${resource}), got ${RESOURCE}`);
    configuration.features.resourceIndicators = {
      enabled: true,
      // No `resource` parameter at /auth (or /token): this one. `oneOf` is the list the grant
      // holds when the token request names none (only RESOURCE can be in it).
      defaultResource: (_ctx, _client, oneOf) => (oneOf ? (oneOf.includes(RESOURCE) ? RESOURCE : oneOf) : RESOURCE),
      // With `openid` in the scope the token endpoint would otherwise issue a userinfo-audience
      // (opaque) access token unless the request repeats `resource`.
      useGrantedResource: () => true,
      async getResourceServerInfo(_ctx, indicator) {
        if (indicator !== RESOURCE) {
          const { errors } = await import('oidc-provider');
          throw new errors.InvalidTarget(`unknown resource server ${indicator}`);
        }
        return {
          scope: RESOURCE_SCOPES,
          audience: RESOURCE,
          accessTokenFormat: 'jwt',
          accessTokenTTL: ACCESS_TOKEN_TTL,
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    };
  }
}

// What the provider did, for GET /__test/tokens (TEST_INTROSPECT=1).
const testView = { access_tokens: [], nonce_refusals: 0, token_requests: [], errors: [] };

function installDpopTestHooks(provider) {
  const record = (token) => testView.access_tokens.push({
    jkt: token.jkt ?? null,
    aud: token.aud ?? token.resourceServer?.audience ?? null,
    format: token.resourceServer?.accessTokenFormat === 'jwt' ? 'jwt' : 'opaque',
    gty: token.gty ?? null,
    token_type: token.jkt ? 'DPoP' : 'Bearer',
    client_id: token.clientId ?? null,
  });
  // Opaque access tokens are stored ("saved"), JWT ones only "issued".
  provider.on('access_token.saved', record);
  provider.on('access_token.issued', record);
  provider.use(async (ctx, next) => {
    await next();
    const body = ctx.body && typeof ctx.body === 'object' && !Buffer.isBuffer(ctx.body) ? ctx.body : undefined;
    const error = body?.error;
    const dpop = Boolean(ctx.get('DPoP'));
    if (error === 'use_dpop_nonce') testView.nonce_refusals += 1;
    if (error) {
      testView.errors.push({
        route: ctx.oidc?.route ?? ctx.path,
        status: ctx.status,
        error,
        error_description: body.error_description ?? null,
        dpop,
      });
    }
    if (ctx.oidc?.route === 'token') {
      testView.token_requests.push({
        grant_type: ctx.oidc.params?.grant_type ?? null,
        status: ctx.status,
        dpop,
        error: error ?? null,
      });
    }
  });
}

// GET /__test/tokens; true when it answered.
function dpopTestRoute(req, res) {
  if (!TEST_INTROSPECT || req.method !== 'GET' || req.url !== '/__test/tokens') return false;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(testView));
  return true;
}
// ---- end of DPoP block ---------------------------------------------------------------------------

const server = http.createServer();
server.on('error', (err) => fail(`server error: ${err.message}`));

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, configuration);
  // Unexpected 5xx inside the provider: show them in the test output.
  provider.on('server_error', (_ctx, err) => process.stderr.write(`oidc-provider server_error: ${err.stack || err}\n`));
  provider.on('backchannel.success', (_ctx, client, accountId, sid) => process.stderr.write(
    `oidc-provider backchannel.success: client=${client.clientId} sub=${accountId} sid=${sid}\n`,
  ));
  provider.on('backchannel.error', (_ctx, err, client, accountId, sid) => process.stderr.write(
    `oidc-provider backchannel.error: client=${client.clientId} sub=${accountId} sid=${sid}: ${err.message}${err.cause ? ` (${err.cause.message || err.cause})` : ''}\n`,
  ));
  installDpopTestHooks(provider);
  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (dpopTestRoute(req, res)) return;
    if (req.method === 'GET' && req.url === '/test/client-assertions') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(clientAssertions));
      return;
    }
    callback(req, res);
  });
  const line = { issuer };
  if (PRIVATE_KEY_JWT) {
    line.client_keys = Object.fromEntries(
      Object.entries(clientKeys).map(([kid, { jwk, pem }]) => [kid, { jwk, pem }]),
    );
  }
  if (EXPOSE_SIGNING_KEY) {
    line.signing_key = signingKey;
    line.signing_key_pem = privateKey.export({ format: 'pem', type: 'pkcs8' });
  }
  process.stdout.write(`${JSON.stringify(line)}\n`);
});

// The harness holds our stdin open; when it closes (test finished or crashed), exit.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
