// A strict DPoP (RFC 9449) resource server for token-handler's end-to-end tests, built on the
// maintained `jose` package (pinned in package-lock.json). Started by
// tests/it/support/resource_server.rs; the proxy under test forwards API calls to it.
//
// Contract with the test harness (as server.js):
// - listens on 127.0.0.1 with an OS-assigned port;
// - prints exactly one line to stdout once it accepts connections:
//   {"url":"http://127.0.0.1:<port>","port":<port>}
//   everything else goes to stderr;
// - runs until killed, or until its stdin closes.
//
// Environment:
//   ISSUER         required: the OpenID provider; its discovery document
//                  (ISSUER/.well-known/openid-configuration) gives the jwks_uri, read at start.
//   AUDIENCE       required: the `aud` access tokens must carry (the provider's RESOURCE).
//   REQUIRE_NONCE  "1": proofs must carry this server's current nonce (RFC 9449 §9).
//
// Every request outside /__test/ must carry (RFC 9449 §4.3, §7.1):
// - `Authorization: DPoP <access token>` (exactly one Authorization header);
// - exactly one `DPoP` header: a JWS with `typ: dpop+jwt`, alg ES256, PS256 or RS256, a public
//   `jwk` in its header and a valid signature over it; claims `jti` (never seen before), `htm`
//   (the request method), `htu` (`${X-Forwarded-Proto || 'http'}://${Host}${path}`, no query,
//   compared after URL normalisation), `iat` (within ±60 s of now), `ath` (base64url SHA-256 of
//   the access token) and, with REQUIRE_NONCE, `nonce` (the current one);
// - an access token that is a JWT (`typ: at+jwt`) signed with a key of the provider's JWKS,
//   issued by ISSUER for AUDIENCE, not expired, with `cnf.jkt` = the proof key's SHA-256 JWK
//   thumbprint (RFC 7638).
// Answers:
// - accepted: 200 {"ok":true,"method","path","query","sub","jkt","htu","nonce":<proof had one>,
//   "body_length","body_sha256"} (plus `DPoP-Nonce` with REQUIRE_NONCE);
// - no Authorization: 401, `WWW-Authenticate: DPoP algs="ES256 PS256 RS256"`,
//   {"error":"invalid_token","reason":"missing_authorization"};
// - nonce missing or not current (REQUIRE_NONCE): 401, `WWW-Authenticate: DPoP
//   error="use_dpop_nonce", error_description="...", algs="..."` and `DPoP-Nonce: <nonce>`,
//   {"error":"use_dpop_nonce","reason":"nonce_missing"|"nonce_stale"};
// - anything else refused: 401, `WWW-Authenticate: DPoP error="invalid_token"|"invalid_dpop_proof",
//   error_description="...", algs="..."`, {"error":...,"reason":"<check that failed>",
//   "detail":"..."}. The reasons: see REASONS below.
// Test endpoints: GET /__test/stats -> {"accepted":n,"nonce_challenges":n,"refused":{reason:n},
// "requests":[{method,path,status,reason,jkt}]}; POST /__test/rotate-nonce -> {"nonce":<new>};
// GET /__test/nonce -> {"nonce":<current>|null}.

import http from 'node:http';
import crypto from 'node:crypto';

import {
  calculateJwkThumbprint,
  createRemoteJWKSet,
  decodeProtectedHeader,
  EmbeddedJWK,
  errors as joseErrors,
  jwtVerify,
} from 'jose';

function fail(message) {
  process.stderr.write(`dpop resource server: ${message}\n`);
  process.exit(2);
}

function required(name) {
  const value = process.env[name];
  if (!value) fail(`environment variable ${name} is required`);
  return value;
}

const ISSUER = required('ISSUER');
const AUDIENCE = required('AUDIENCE');
const REQUIRE_NONCE = process.env.REQUIRE_NONCE === '1';
const ALGS = ['ES256', 'PS256', 'RS256'];
const ALGS_PARAM = `algs="${ALGS.join(' ')}"`;
const IAT_WINDOW = 60;
// JWK members that only private (or symmetric) keys have.
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

// The reasons a request is refused (the `reason` of the JSON body, the keys of stats.refused).
// eslint-disable-next-line no-unused-vars
const REASONS = {
  missing_authorization: 'no Authorization header',
  multiple_authorization: 'more than one Authorization header',
  unsupported_scheme: 'Authorization scheme neither DPoP nor Bearer',
  bearer_scheme: 'Bearer scheme (for a DPoP-bound token, or any token: this server takes DPoP only)',
  missing_dpop_proof: 'no DPoP header',
  multiple_dpop_proofs: 'more than one DPoP header (or a comma-joined list)',
  proof_malformed: 'the DPoP header is not a compact JWS',
  proof_typ: 'typ is not dpop+jwt',
  proof_alg: 'alg not in ES256 PS256 RS256',
  proof_jwk_missing: 'no jwk in the header',
  proof_jwk_private: 'the header jwk has private members',
  proof_signature: 'the signature does not verify with the header jwk (or the JWS is otherwise invalid)',
  proof_jti: 'jti missing or not a string',
  proof_jti_replay: 'jti seen before',
  proof_htm: 'htm is not the request method',
  proof_htu: 'htu is not the URL this server received',
  proof_iat: 'iat missing or more than 60 s from now',
  proof_ath: 'ath missing or not the hash of the access token',
  nonce_missing: 'REQUIRE_NONCE and no nonce in the proof (use_dpop_nonce)',
  nonce_stale: 'REQUIRE_NONCE and not the current nonce (use_dpop_nonce)',
  token_expired: 'access token expired',
  token_audience: 'access token aud is not AUDIENCE',
  token_issuer: 'access token iss is not ISSUER',
  token_invalid: 'access token is not a valid JWT of the provider (format, typ, signature, claims)',
  token_not_dpop_bound: 'access token has no cnf.jkt',
  token_jkt_mismatch: 'cnf.jkt is not the thumbprint of the proof key',
};

// Discovery, once: the provider runs before this server starts.
let jwksUri;
try {
  const response = await fetch(new URL('.well-known/openid-configuration', ISSUER.endsWith('/') ? ISSUER : `${ISSUER}/`));
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const metadata = await response.json();
  if (metadata.issuer !== ISSUER) throw new Error(`discovery says issuer ${metadata.issuer}`);
  jwksUri = metadata.jwks_uri;
  if (typeof jwksUri !== 'string') throw new Error('no jwks_uri');
} catch (err) {
  fail(`discovery at ${ISSUER} failed: ${err.message}`);
}
const JWKS = createRemoteJWKSet(new URL(jwksUri));

const stats = { accepted: 0, nonce_challenges: 0, refused: {}, requests: [] };
let nonce = REQUIRE_NONCE ? crypto.randomBytes(24).toString('base64url') : null;
// jti -> the time it was seen; entries older than the iat window cannot come back valid anyway.
const seenJti = new Map();

function rememberJti(jti) {
  const now = Date.now();
  for (const [key, at] of seenJti) {
    if (now - at > 2 * IAT_WINDOW * 1000) seenJti.delete(key);
    else break; // insertion order: the rest is newer
  }
  if (seenJti.has(jti)) return false;
  seenJti.set(jti, now);
  return true;
}

class Refusal extends Error {
  constructor(error, reason, detail, { nonceChallenge = false } = {}) {
    super(detail || reason);
    this.error = error;
    this.reason = reason;
    this.detail = detail || REASONS[reason] || reason;
    this.nonceChallenge = nonceChallenge;
  }
}

const invalidToken = (reason, detail) => new Refusal('invalid_token', reason, detail);
const invalidProof = (reason, detail) => new Refusal('invalid_dpop_proof', reason, detail);

const sha256 = (input) => crypto.createHash('sha256').update(input).digest('base64url');
const quote = (s) => String(s).replace(/["\\]/g, "'");

// The URL this server received, as RFC 9449 §4.3 wants htu compared: scheme and authority as
// the client saw them (X-Forwarded-Proto when a proxy terminates TLS), path, no query/fragment.
function receivedUrl(req) {
  const proto = (req.headers['x-forwarded-proto'] || 'http').split(',')[0].trim().toLowerCase();
  const host = req.headers.host;
  if (!host) throw invalidProof('proof_htu', 'no Host header to compare htu with');
  const url = new URL(`${proto}://${host}${req.url.startsWith('/') ? req.url : `/${req.url}`}`);
  url.search = '';
  url.hash = '';
  return url.href;
}

function normalisedHtu(htu) {
  if (typeof htu !== 'string') return undefined;
  const url = URL.parse(htu);
  if (!url) return undefined;
  url.search = '';
  url.hash = '';
  return url.href;
}

async function verifyAccessToken(at) {
  try {
    const { payload } = await jwtVerify(at, JWKS, {
      issuer: ISSUER,
      audience: AUDIENCE,
      typ: 'at+jwt',
      algorithms: ['RS256', 'PS256', 'ES256'],
    });
    return payload;
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) throw invalidToken('token_expired', err.message);
    if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'aud') {
      throw invalidToken('token_audience', err.message);
    }
    if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'iss') {
      throw invalidToken('token_issuer', err.message);
    }
    throw invalidToken('token_invalid', `${err.code || err.name}: ${err.message}`);
  }
}

// The checks, in order; throws a Refusal. Returns what the success answer echoes.
async function check(req) {
  const authorizations = req.headersDistinct.authorization || [];
  if (authorizations.length === 0) {
    throw new Refusal('invalid_token', 'missing_authorization');
  }
  if (authorizations.length > 1) throw invalidToken('multiple_authorization');
  const match = /^(\S+) +(\S+)$/.exec(authorizations[0]);
  if (!match) throw invalidToken('unsupported_scheme', 'Authorization is not "<scheme> <token>"');
  const [, scheme, at] = match;
  if (scheme.toLowerCase() === 'bearer') {
    // RFC 9449 §7.2: a DPoP-bound token presented as a bearer token is refused; this server
    // takes nothing else, so any Bearer is refused, with the token's binding in the detail.
    let bound = 'not a valid access token';
    try {
      const payload = await verifyAccessToken(at);
      bound = payload.cnf?.jkt ? 'a DPoP-bound token' : 'a token without cnf.jkt';
    } catch { /* the detail says so */ }
    throw invalidToken('bearer_scheme', `Bearer scheme with ${bound}`);
  }
  if (scheme.toLowerCase() !== 'dpop') throw invalidToken('unsupported_scheme', `scheme ${scheme}`);

  const proofs = req.headersDistinct.dpop || [];
  if (proofs.length === 0) throw invalidProof('missing_dpop_proof');
  if (proofs.length > 1 || proofs[0].includes(',')) throw invalidProof('multiple_dpop_proofs');
  const proof = proofs[0].trim();

  let header;
  try {
    header = decodeProtectedHeader(proof);
  } catch (err) {
    throw invalidProof('proof_malformed', err.message);
  }
  if (proof.split('.').length !== 3) throw invalidProof('proof_malformed', 'not a compact JWS');
  if (header.typ !== 'dpop+jwt') throw invalidProof('proof_typ', `typ ${JSON.stringify(header.typ)}`);
  if (!ALGS.includes(header.alg)) throw invalidProof('proof_alg', `alg ${JSON.stringify(header.alg)}`);
  if (!header.jwk || typeof header.jwk !== 'object') throw invalidProof('proof_jwk_missing');
  const privateMembers = PRIVATE_MEMBERS.filter((m) => m in header.jwk);
  if (privateMembers.length) throw invalidProof('proof_jwk_private', `jwk has ${privateMembers.join(', ')}`);

  let payload;
  try {
    ({ payload } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: ALGS }));
  } catch (err) {
    throw invalidProof('proof_signature', `${err.code || err.name}: ${err.message}`);
  }

  if (typeof payload.jti !== 'string' || !payload.jti) throw invalidProof('proof_jti');
  if (!rememberJti(payload.jti)) throw invalidProof('proof_jti_replay', `jti ${payload.jti} seen before`);
  if (payload.htm !== req.method) {
    throw invalidProof('proof_htm', `htm ${JSON.stringify(payload.htm)}, request method ${req.method}`);
  }
  const htu = receivedUrl(req);
  if (normalisedHtu(payload.htu) !== htu) {
    throw invalidProof('proof_htu', `htu ${JSON.stringify(payload.htu)}, received ${htu}`);
  }
  const now = Math.floor(Date.now() / 1000);
  if (typeof payload.iat !== 'number' || Math.abs(now - payload.iat) > IAT_WINDOW) {
    throw invalidProof('proof_iat', `iat ${JSON.stringify(payload.iat)}, now ${now}`);
  }
  const ath = sha256(at);
  if (payload.ath !== ath) throw invalidProof('proof_ath', `ath ${JSON.stringify(payload.ath)}, expected ${ath}`);

  const claims = await verifyAccessToken(at);
  if (!claims.cnf || typeof claims.cnf.jkt !== 'string') throw invalidToken('token_not_dpop_bound');
  const jkt = await calculateJwkThumbprint(header.jwk, 'sha256');
  if (claims.cnf.jkt !== jkt) {
    throw invalidToken('token_jkt_mismatch', `cnf.jkt ${claims.cnf.jkt}, proof key ${jkt}`);
  }

  // Last, as the provider does: a proof right in all else but the nonce gets a challenge.
  if (REQUIRE_NONCE && payload.nonce !== nonce) {
    const reason = payload.nonce === undefined ? 'nonce_missing' : 'nonce_stale';
    throw new Refusal('use_dpop_nonce', reason, 'Resource server requires the nonce of its DPoP-Nonce header in the DPoP proof', { nonceChallenge: true });
  }

  return { sub: claims.sub ?? null, jkt, htu, nonce: payload.nonce !== undefined };
}

function send(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function handle(req, res) {
  const path = req.url.split('?')[0];
  const body = await readBody(req);
  if (path.startsWith('/__test/')) {
    if (req.method === 'GET' && path === '/__test/stats') return send(res, 200, stats);
    if (req.method === 'GET' && path === '/__test/nonce') return send(res, 200, { nonce });
    if (req.method === 'POST' && path === '/__test/rotate-nonce') {
      nonce = crypto.randomBytes(24).toString('base64url');
      return send(res, 200, { nonce });
    }
    return send(res, 404, { error: 'not_found' });
  }

  const nonceHeader = REQUIRE_NONCE ? { 'dpop-nonce': nonce } : {};
  const log = { method: req.method, path, status: 200, reason: null, jkt: null };
  stats.requests.push(log);
  try {
    const ok = await check(req);
    stats.accepted += 1;
    log.jkt = ok.jkt;
    return send(res, 200, {
      ok: true,
      method: req.method,
      path,
      query: req.url.includes('?') ? req.url.slice(req.url.indexOf('?') + 1) : null,
      ...ok,
      body_length: body.length,
      body_sha256: crypto.createHash('sha256').update(body).digest('hex'),
    }, nonceHeader);
  } catch (err) {
    if (!(err instanceof Refusal)) throw err;
    log.status = 401;
    log.reason = err.reason;
    if (err.nonceChallenge) stats.nonce_challenges += 1;
    else stats.refused[err.reason] = (stats.refused[err.reason] || 0) + 1;
    const challenge = err.reason === 'missing_authorization'
      ? `DPoP ${ALGS_PARAM}`
      : `DPoP error="${err.error}", error_description="${quote(err.detail)}", ${ALGS_PARAM}`;
    return send(res, 401, { error: err.error, reason: err.reason, detail: err.detail }, {
      'www-authenticate': challenge,
      ...(err.nonceChallenge ? nonceHeader : {}),
    });
  }
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    process.stderr.write(`dpop resource server: ${err.stack || err}\n`);
    if (!res.headersSent) send(res, 500, { error: 'server_error', detail: String(err.message || err) });
    else res.destroy();
  });
});
server.on('error', (err) => fail(`server error: ${err.message}`));
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}`, port })}\n`);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
