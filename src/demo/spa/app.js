// The demo SPA: plain JS, the way a real SPA integrates with token-handler. It never sees a
// token: it calls its own origin with `credentials: 'same-origin'` and the `x-csrf: 1`
// header, and the proxy turns the session cookie into `Authorization: Bearer` upstream.
'use strict';

const $ = (id) => document.getElementById(id);
let lastJti = null;

function time(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleTimeString();
}

async function api(path, options = {}) {
  return fetch(path, {
    credentials: 'same-origin',
    ...options,
    headers: { 'x-csrf': '1', ...(options.headers || {}) },
  });
}

async function showSession() {
  const response = await api('/auth/session');
  const session = await response.json().catch(() => ({}));
  const status = $('status');
  if (session.authenticated) {
    status.textContent = `Logged in as ${session.claims.name || session.claims.sub}; the session ends at ${time(session.expires_at)}.`;
    status.dataset.authenticated = 'true';
    $('claims').textContent = JSON.stringify(session.claims, null, 2);
  } else {
    status.textContent = response.ok ? 'Not logged in.' : `Session check failed (${response.status}).`;
    status.dataset.authenticated = 'false';
    $('claims').textContent = '–';
  }
  $('login').disabled = !!session.authenticated;
  $('logout').disabled = !session.authenticated;
}

async function callApi() {
  const response = await api('/api/whoami');
  const body = await response.json().catch(() => ({}));
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
    token = body.error ? `${body.error}: ${body.message}` : 'error';
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
  const response = await api('/auth/logout', { method: 'POST' });
  const body = await response.json().catch(() => ({}));
  lastJti = null;
  if (body.logout_url) {
    window.location.href = body.logout_url;
  } else {
    await showSession();
  }
}

$('login').addEventListener('click', () => {
  window.location.href = '/auth/login?return_to=' + encodeURIComponent('/');
});
$('call').addEventListener('click', callApi);
$('logout').addEventListener('click', logout);
showSession();
