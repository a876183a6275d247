// The demo SPA: plain JS, the way a real SPA integrates with token-handler. It never sees a
// token: it calls its own origin through @token-handler/client (clients/js, served here as
// /token-handler-client.js), which sends the session cookie (`credentials: 'same-origin'`) and
// the CSRF header, goes to the login on 401 `login_required` and retries a 503
// `idp_unavailable` after Retry-After; the proxy turns the cookie into `Authorization: Bearer`.
import { createClient, TokenHandlerError } from '/token-handler-client.js';

const th = createClient();
const $ = (id) => document.getElementById(id);
let lastJti = null;

function time(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleTimeString();
}

async function showSession() {
  let session = null;
  let failure = null;
  try {
    session = await th.session();
  } catch (e) {
    failure = e instanceof TokenHandlerError ? `${e.status} ${e.error}` : String(e);
  }
  const status = $('status');
  if (session) {
    status.textContent = `Logged in as ${session.claims.name || session.claims.sub}; the session ends at ${time(session.expires_at)}.`;
    status.dataset.authenticated = 'true';
    $('claims').textContent = JSON.stringify(session.claims, null, 2);
  } else {
    status.textContent = failure ? `Session check failed (${failure}).` : 'Not logged in.';
    status.dataset.authenticated = 'false';
    $('claims').textContent = '–';
  }
  $('login').disabled = !!session;
  $('logout').disabled = !session;
}

async function callApi() {
  let response;
  let body = {};
  try {
    response = await th.fetch('/api/whoami');
    body = await response.json().catch(() => ({}));
  } catch (e) {
    // 401 login_required: the client is already on its way to the login page.
    if (!(e instanceof TokenHandlerError)) throw e;
    response = { ok: false, status: e.status };
    body = { failure: e.message }; // `login_required: <the proxy's message>`
  }
  const row = document.createElement('tr');
  row.dataset.status = String(response.status);
  let token = '';
  let refresh = '';
  if (response.ok) {
    row.dataset.jti = body.jti;
    row.dataset.exp = String(body.exp);
    token = `jti ${body.jti.slice(0, 8)}…, issued ${time(body.iat)}, expires ${time(body.exp)}`;
    if (lastJti && lastJti !== body.jti) {
      refresh = 'the proxy refreshed the token';
      row.dataset.refreshed = 'true';
    } else {
      refresh = lastJti ? 'same token' : 'first call';
    }
    lastJti = body.jti;
  } else {
    token = body.failure || (body.error ? `${body.error}: ${body.message}` : 'error');
  }
  const cells = [new Date().toLocaleTimeString(), String(response.status), token, refresh];
  for (const text of cells) {
    const cell = document.createElement('td');
    cell.textContent = text;
    row.appendChild(cell);
  }
  $('log').prepend(row);
}

async function logout() {
  // POST /auth/logout with the CSRF header; the client then goes to the IdP's logout URL.
  const { logoutUrl } = await th.logout();
  lastJti = null;
  if (!logoutUrl) await showSession();
}

$('login').addEventListener('click', () => th.login('/'));
$('call').addEventListener('click', callApi);
$('logout').addEventListener('click', logout);
showSession();
