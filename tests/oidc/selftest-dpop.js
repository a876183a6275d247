// Self-test of the DPoP test peers without the proxy: `node selftest-dpop.js` in tests/oidc.
// Starts server.js (DPOP=1 DPOP_NONCE=1 RESOURCE=... TEST_INTROSPECT=1) and two
// resource-server.js (with and without REQUIRE_NONCE), drives the authorization code flow
// (devInteractions login + consent, PKCE) as a DPoP client would, and checks what each peer
// accepts and refuses. Prints one line per check; exits 1 on the first failure.
// With SELFTEST_ISSUER, SELFTEST_RS, SELFTEST_RS_NONCE, SELFTEST_AUDIENCE and
// SELFTEST_REDIRECT_URI it uses peers started by someone else (fresh ones, with those options:
// tests/it/dpop_peers.rs), and starts nothing.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import readline from 'node:readline';
import assert from 'node:assert/strict';

import {
  calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, exportJWK, SignJWT,
} from 'jose';

import { keyPair } from './keys.js';

const here = new URL('.', import.meta.url).pathname;
const children = [];
process.on('exit', () => children.forEach((c) => c.kill()));

function start(script, env, key) {
  const child = spawn(process.execPath, [script], {
    cwd: here, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'inherit'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout });
    lines.once('line', (line) => resolve(JSON.parse(line)[key]));
    child.once('exit', (code) => reject(new Error(`${script} exited ${code}`)));
  });
}

let checks = 0;
function ok(what, cond, detail) {
  checks += 1;
  if (!cond) {
    console.log(`FAIL ${what}${detail === undefined ? '' : `: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`}`);
    process.exit(1);
  }
  console.log(`ok   ${what}`);
}

const REDIRECT_URI = process.env.SELFTEST_REDIRECT_URI || 'http://127.0.0.1:9/auth/callback';
const AUDIENCE = process.env.SELFTEST_AUDIENCE || 'http://resource.test/api';
const external = Boolean(process.env.SELFTEST_ISSUER);
const CLIENT = ['token-handler', 'oidc-provider-secret'];
const basic = `Basic ${Buffer.from(CLIENT.join(':')).toString('base64')}`;

const issuer = external ? process.env.SELFTEST_ISSUER : await start('server.js', {
  REDIRECT_URI, POST_LOGOUT_REDIRECT_URI: 'http://127.0.0.1:9/',
  DPOP: '1', DPOP_NONCE: '1', RESOURCE: AUDIENCE, TEST_INTROSPECT: '1',
}, 'issuer');
const rs = external ? process.env.SELFTEST_RS : await start('resource-server.js', { ISSUER: issuer, AUDIENCE }, 'url');
const rsNonce = external ? process.env.SELFTEST_RS_NONCE : await start('resource-server.js', { ISSUER: issuer, AUDIENCE, REQUIRE_NONCE: '1' }, 'url');
console.log(`provider ${issuer}, resource server ${rs}, resource server with nonces ${rsNonce}`);

// --- the client's DPoP key and proofs --------------------------------------------------------
const { privateKey, publicKey } = keyPair('ec', { namedCurve: 'P-256' });
const jwk = await exportJWK(publicKey);
const jkt = await calculateJwkThumbprint(jwk, 'sha256');
const other = keyPair('ec', { namedCurve: 'P-256' });
const otherJwk = await exportJWK(other.publicKey);

async function proof(htm, htu, { at, nonce, jti = crypto.randomUUID(), iat, key = privateKey, pub = jwk, typ = 'dpop+jwt' } = {}) {
  const claims = { htm, htu, jti };
  if (nonce) claims.nonce = nonce;
  if (at !== undefined) claims.ath = crypto.createHash('sha256').update(at).digest('base64url');
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', typ, jwk: pub })
    .setIssuedAt(iat)
    .sign(key);
}

// --- authorization code flow through devInteractions ----------------------------------------
const jar = new Map();
async function browse(url, init = {}) {
  const headers = { ...(init.headers || {}), cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') };
  const response = await fetch(url, { ...init, headers, redirect: 'manual' });
  for (const line of response.headers.getSetCookie()) {
    const [pair] = line.split(';');
    const i = pair.indexOf('=');
    jar.set(pair.slice(0, i).trim(), pair.slice(i + 1).trim());
  }
  return response;
}

async function login() {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  const auth = new URL(`${issuer}/auth`);
  for (const [k, v] of Object.entries({
    client_id: CLIENT[0], response_type: 'code', redirect_uri: REDIRECT_URI,
    scope: 'openid offline_access profile api:read', state: 's1', prompt: 'consent',
    code_challenge: challenge, code_challenge_method: 'S256',
  })) auth.searchParams.set(k, v);
  let url = auth.href;
  let response = await browse(url);
  for (let hop = 0; hop < 16; hop += 1) {
    if (response.status >= 300 && response.status < 400) {
      url = new URL(response.headers.get('location'), url).href;
      if (!url.startsWith(`${issuer}/`)) {
        const code = new URL(url).searchParams.get('code');
        if (!code) throw new Error(`no code: ${url}`);
        return { code, verifier };
      }
      response = await browse(url);
      continue;
    }
    const html = await response.text();
    const form = /<form[^>]*action="([^"]+)"[\s\S]*?<\/form>/.exec(html);
    if (!form) throw new Error(`no form at ${url} (${response.status}): ${html.slice(0, 500)}`);
    const fields = new URLSearchParams();
    for (const [, tag] of form[0].matchAll(/<input([^>]*)>/g)) {
      const name = /name="([^"]*)"/.exec(tag)?.[1];
      const value = /value="([^"]*)"/.exec(tag)?.[1] ?? '';
      if (name && /type="hidden"/.test(tag)) fields.append(name, value);
    }
    if (fields.get('prompt') === 'login') {
      fields.append('login', 'dpop-user');
      fields.append('password', 'any');
    }
    url = new URL(form[1].replaceAll('&amp;', '&'), url).href;
    response = await browse(url, { method: 'POST', body: fields, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  }
  throw new Error('too many hops');
}

async function token(form, dpop) {
  const headers = { authorization: basic, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  if (dpop) headers.dpop = dpop;
  const response = await fetch(`${issuer}/token`, { method: 'POST', headers, body: new URLSearchParams(form) });
  return { status: response.status, nonce: response.headers.get('dpop-nonce'), body: await response.json() };
}
const tokenUrl = `${issuer}/token`;

// --- the provider -----------------------------------------------------------------------------
const { code, verifier } = await login();
const codeForm = { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier };

let r = await token(codeForm);
ok('provider: code exchange without DPoP -> 400 invalid_grant', r.status === 400 && r.body.error === 'invalid_grant', r);

r = await token(codeForm, await proof('POST', tokenUrl));
ok('provider: code exchange with a proof but no nonce -> 400 use_dpop_nonce + DPoP-Nonce', r.status === 400 && r.body.error === 'use_dpop_nonce' && r.nonce, r);
let providerNonce = r.nonce;

r = await token(codeForm, await proof('POST', tokenUrl, { nonce: providerNonce }));
ok('provider: code exchange with the nonce -> 200 token_type DPoP', r.status === 200 && r.body.token_type === 'DPoP', r);
let { access_token: at, refresh_token: rt } = r.body;
providerNonce = r.nonce || providerNonce;
{
  const header = decodeProtectedHeader(at);
  const claims = decodeJwt(at);
  ok('provider: the access token is a JWT, typ at+jwt', header.typ === 'at+jwt', header);
  ok('provider: aud is RESOURCE', claims.aud === AUDIENCE, claims);
  ok('provider: cnf.jkt is the proof key thumbprint', claims.cnf?.jkt === jkt, claims);
  ok('provider: scope carries the requested resource scope', claims.scope === 'api:read', claims);
  ok('provider: a refresh token came along (offline_access)', typeof rt === 'string', r.body);
}

let view = await (await fetch(`${issuer}/__test/tokens`)).json();
ok('provider /__test/tokens: one access token, its jkt', view.access_tokens.length === 1 && view.access_tokens[0].jkt === jkt && view.access_tokens[0].format === 'jwt', view);
ok('provider /__test/tokens: one nonce refusal', view.nonce_refusals === 1, view);

// Refresh: without a nonce first (refused, the refresh token not spent), then with it.
r = await token({ grant_type: 'refresh_token', refresh_token: rt }, await proof('POST', tokenUrl));
ok('provider: refresh with a proof without nonce -> use_dpop_nonce', r.status === 400 && r.body.error === 'use_dpop_nonce', r);
providerNonce = r.nonce || providerNonce;
r = await token({ grant_type: 'refresh_token', refresh_token: rt }, await proof('POST', tokenUrl, { nonce: providerNonce }));
ok('provider: refresh with the nonce -> 200, new refresh token (rotation)', r.status === 200 && r.body.refresh_token && r.body.refresh_token !== rt, r);
ok('provider: refreshed access token: JWT with aud and cnf.jkt', decodeJwt(r.body.access_token).aud === AUDIENCE && decodeJwt(r.body.access_token).cnf?.jkt === jkt, decodeJwt(r.body.access_token));
const rotated = r.body.refresh_token;
at = r.body.access_token;
r = await token({ grant_type: 'refresh_token', refresh_token: rotated }, undefined);
ok('provider: refresh without DPoP -> invalid_grant (DPoP required)', r.status === 400 && r.body.error === 'invalid_grant', r);

view = await (await fetch(`${issuer}/__test/tokens`)).json();
ok('provider /__test/tokens: two DPoP-bound access tokens, two nonce refusals', view.access_tokens.map((t) => t.jkt).join() === [jkt, jkt].join() && view.nonce_refusals === 2, view);

// --- the resource server, no nonce ----------------------------------------------------------
async function call(base, path, { method = 'GET', scheme = 'DPoP', token = at, dpop, body, headers = {} } = {}) {
  const h = { ...headers };
  if (token !== null) h.authorization = `${scheme} ${token}`;
  if (dpop !== undefined) h.dpop = dpop;
  const response = await fetch(`${base}${path}`, { method, headers: h, body });
  return {
    status: response.status,
    www: response.headers.get('www-authenticate'),
    nonce: response.headers.get('dpop-nonce'),
    body: await response.json(),
  };
}
const refused = (res, error, reason) => res.status === 401 && res.body.error === error && res.body.reason === reason
  && res.www.startsWith(`DPoP error="${error}"`);

r = await call(rs, '/api/things?x=1', { dpop: await proof('GET', `${rs}/api/things`, { at }) });
ok('rs: a proper proof -> 200 with sub, jkt, htu', r.status === 200 && r.body.ok && r.body.jkt === jkt && r.body.sub === 'dpop-user' && r.body.htu === `${rs}/api/things` && r.body.nonce === false, r);

const postBody = JSON.stringify({ hello: 'world' });
const postProof = await proof('POST', `${rs}/api/things`, { at });
r = await call(rs, '/api/things', { method: 'POST', dpop: postProof, body: postBody });
ok('rs: POST with a proper proof -> 200, body length echoed', r.status === 200 && r.body.body_length === postBody.length, r);
r = await call(rs, '/api/things', { method: 'POST', dpop: postProof, body: postBody });
ok('rs: the same POST replayed (same jti) -> invalid_dpop_proof proof_jti_replay', refused(r, 'invalid_dpop_proof', 'proof_jti_replay'), r);

r = await call(rs, '/api/things', { token: null });
ok('rs: no Authorization -> 401 WWW-Authenticate: DPoP algs="ES256 PS256 RS256"', r.status === 401 && r.www === 'DPoP algs="ES256 PS256 RS256"', r);
r = await call(rs, '/api/things');
ok('rs: DPoP scheme without a proof -> missing_dpop_proof', refused(r, 'invalid_dpop_proof', 'missing_dpop_proof'), r);
r = await call(rs, '/api/things', { scheme: 'Bearer' });
ok('rs: Bearer scheme with the DPoP-bound token -> invalid_token bearer_scheme', refused(r, 'invalid_token', 'bearer_scheme'), r);
r = await call(rs, '/api/things', { scheme: 'Bearer', dpop: await proof('GET', `${rs}/api/things`, { at }) });
ok('rs: Bearer scheme even with a proof -> invalid_token bearer_scheme', refused(r, 'invalid_token', 'bearer_scheme'), r);
r = await call(rs, '/api/things', { dpop: await proof('GET', `${rs}/api/other`, { at }) });
ok('rs: proof for another URL -> proof_htu', refused(r, 'invalid_dpop_proof', 'proof_htu'), r);
r = await call(rs, '/api/things', { dpop: await proof('GET', `https://127.0.0.1:${new URL(rs).port}/api/things`, { at }) });
ok('rs: proof for https when the RS received http -> proof_htu', refused(r, 'invalid_dpop_proof', 'proof_htu'), r);
// fetch sets Host itself: node:http sends the one a proxy would.
r = await new Promise((resolve, reject) => {
  const u = new URL(rs);
  proof('GET', 'https://App.Example:443/api/./things', { at }).then((dpop) => http.get({
    host: u.hostname, port: u.port, path: '/api/things?q=1',
    headers: { host: 'app.example', 'x-forwarded-proto': 'https', authorization: `DPoP ${at}`, dpop },
  }, (res) => {
    let text = '';
    res.on('data', (c) => { text += c; });
    res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text) }));
  }).on('error', reject));
});
ok('rs: X-Forwarded-Proto + Host are what htu is compared with (after normalisation)', r.status === 200 && r.body.htu === 'https://app.example/api/things', r);
r = await call(rs, '/api/things', { dpop: await proof('GET', `${rs}/api/things?ignored=1#frag`, { at }) });
ok('rs: htu query and fragment are ignored', r.status === 200, r);
r = await call(rs, '/api/things', { method: 'DELETE', dpop: await proof('GET', `${rs}/api/things`, { at }) });
ok('rs: proof for another method -> proof_htm', refused(r, 'invalid_dpop_proof', 'proof_htm'), r);
r = await call(rs, '/api/things', { dpop: await proof('GET', `${rs}/api/things`, { at: `${at}x` }) });
ok('rs: wrong ath -> proof_ath', refused(r, 'invalid_dpop_proof', 'proof_ath'), r);
r = await call(rs, '/api/things', { dpop: await proof('GET', `${rs}/api/things`) });
ok('rs: no ath -> proof_ath', refused(r, 'invalid_dpop_proof', 'proof_ath'), r);
r = await call(rs, '/api/things', { dpop: await proof('GET', `${rs}/api/things`, { at, iat: Math.floor(Date.now() / 1000) - 120 }) });
ok('rs: iat 120 s old -> proof_iat', refused(r, 'invalid_dpop_proof', 'proof_iat'), r);
r = await call(rs, '/api/things', { dpop: await proof('GET', `${rs}/api/things`, { at, typ: 'JWT' }) });
ok('rs: typ JWT -> proof_typ', refused(r, 'invalid_dpop_proof', 'proof_typ'), r);
r = await call(rs, '/api/things', { dpop: await proof('GET', `${rs}/api/things`, { at, pub: otherJwk }) });
ok('rs: header jwk not the signing key -> proof_signature', refused(r, 'invalid_dpop_proof', 'proof_signature'), r);
r = await call(rs, '/api/things', { dpop: await proof('GET', `${rs}/api/things`, { at, key: other.privateKey, pub: otherJwk }) });
ok('rs: a valid proof by another key -> token_jkt_mismatch', refused(r, 'invalid_token', 'token_jkt_mismatch'), r);
r = await call(rs, '/api/things', { dpop: await proof('GET', `${rs}/api/things`, { at, pub: { ...jwk, d: (await exportJWK(privateKey)).d } }) });
ok('rs: private jwk in the header -> proof_jwk_private', refused(r, 'invalid_dpop_proof', 'proof_jwk_private'), r);
{
  const p1 = await proof('GET', `${rs}/api/things`, { at });
  const p2 = await proof('GET', `${rs}/api/things`, { at });
  const response = await fetch(`${rs}/api/things`, { headers: [['authorization', `DPoP ${at}`], ['dpop', p1], ['dpop', p2]] });
  const body = await response.json();
  ok('rs: two DPoP headers -> multiple_dpop_proofs', response.status === 401 && body.reason === 'multiple_dpop_proofs', body);
}
{
  const [h, p] = at.split('.');
  const forged = `${h}.${p}.${Buffer.from('not the signature').toString('base64url')}`;
  r = await call(rs, '/api/things', { token: forged, dpop: await proof('GET', `${rs}/api/things`, { at: forged }) });
  ok('rs: access token with a bad signature -> token_invalid', refused(r, 'invalid_token', 'token_invalid'), r);
}

// --- the resource server with REQUIRE_NONCE -----------------------------------------------
r = await call(rsNonce, '/api/things', { dpop: await proof('GET', `${rsNonce}/api/things`, { at }) });
ok('rs+nonce: first call without nonce -> 401 use_dpop_nonce + DPoP-Nonce', r.status === 401 && r.body.error === 'use_dpop_nonce' && r.www.startsWith('DPoP error="use_dpop_nonce", error_description="') && r.nonce, r);
let rsN = r.nonce;
r = await call(rsNonce, '/api/things', { dpop: await proof('GET', `${rsNonce}/api/things`, { at, nonce: rsN }) });
ok('rs+nonce: retry with the nonce -> 200, DPoP-Nonce sent again', r.status === 200 && r.body.nonce === true && r.nonce === rsN, r);
const rotatedNonce = (await (await fetch(`${rsNonce}/__test/rotate-nonce`, { method: 'POST' })).json()).nonce;
r = await call(rsNonce, '/api/things', { dpop: await proof('GET', `${rsNonce}/api/things`, { at, nonce: rsN }) });
ok('rs+nonce: after rotate-nonce the old nonce -> use_dpop_nonce (nonce_stale) with the new one', r.status === 401 && r.body.reason === 'nonce_stale' && r.nonce === rotatedNonce, r);
rsN = r.nonce;
r = await call(rsNonce, '/api/things', { dpop: await proof('GET', `${rsNonce}/api/things`, { at, nonce: rsN }) });
ok('rs+nonce: retry with the new nonce -> 200', r.status === 200, r);

const stats = await (await fetch(`${rs}/__test/stats`)).json();
ok('rs /__test/stats counts', stats.accepted === 4 && stats.nonce_challenges === 0 && stats.refused.proof_htu === 2, { accepted: stats.accepted, nonce_challenges: stats.nonce_challenges, refused: stats.refused });
const statsN = await (await fetch(`${rsNonce}/__test/stats`)).json();
ok('rs+nonce /__test/stats counts', statsN.accepted === 2 && statsN.nonce_challenges === 2, { accepted: statsN.accepted, nonce_challenges: statsN.nonce_challenges, refused: statsN.refused });

// --- refresh tokens stay revocable (RFC 7009) ----------------------------------------------
{
  const response = await fetch(`${issuer}/token/revocation`, {
    method: 'POST', headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: rotated, token_type_hint: 'refresh_token' }),
  });
  ok('provider: RFC 7009 revocation of the refresh token -> 200', response.status === 200, response.status);
  r = await token({ grant_type: 'refresh_token', refresh_token: rotated }, await proof('POST', tokenUrl, { nonce: providerNonce }));
  if (r.body.error === 'use_dpop_nonce') {
    r = await token({ grant_type: 'refresh_token', refresh_token: rotated }, await proof('POST', tokenUrl, { nonce: r.nonce }));
  }
  ok('provider: the revoked refresh token no longer refreshes -> invalid_grant', r.status === 400 && r.body.error === 'invalid_grant', r);
}

view = await (await fetch(`${issuer}/__test/tokens`)).json();
console.log(`provider /__test/tokens: ${JSON.stringify({ jkts: view.access_tokens.map((t) => t.jkt), nonce_refusals: view.nonce_refusals, token_requests: view.token_requests })}`);
// The last line, for tests/it/dpop_peers.rs.
console.log(JSON.stringify({ selftest: 'passed', checks, jkt }));
process.exit(0);
