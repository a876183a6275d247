// End-to-end test of `token-handler demo` in a real browser (Debian's Chromium, headless),
// driven by playwright-core. The demo's SPA calls through the client library
// (@token-handler/client, clients/js, served as /token-handler-client.js), so this exercises it
// too: the CSRF header on POST only, logout, and a 401 that leads to the login and back.
// Run by tests/it/browser_demo.rs:
//   node tests/browser/e2e.mjs <app url, e.g. http://localhost:PORT> <artifact dir>
// The app is on `localhost` and the demo IdP on `127.0.0.1`: two sites, as in production.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

const [appUrl, artifactDir] = process.argv.slice(2);
assert.ok(appUrl && artifactDir, 'usage: e2e.mjs <app url> <artifact dir>');
const COOKIE = '__Host-th_session';
const step = (text) => console.log(`step: ${text}`);

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'th-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run',
  ],
});
const attacker = await startAttackerSite(appUrl);
try {
  const page = context.pages()[0] ?? (await context.newPage());
  const idpNavigations = [];
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame() && !frame.url().startsWith(appUrl)) idpNavigations.push(frame.url());
  });
  // What the page sent to its own origin (method, path and query, headers), in order.
  const sent = [];
  page.on('request', (request) => {
    if (!request.url().startsWith(appUrl)) return;
    const url = new URL(request.url());
    sent.push({ method: request.method(), path: url.pathname + url.search, headers: request.headers() });
  });
  const lastSent = (method, path) => sent.filter((r) => r.method === method && r.path === path).at(-1);

  step('open the demo, logged out: the client library is loaded');
  const library = page.waitForResponse((r) => r.url() === `${appUrl}/token-handler-client.js`);
  await page.goto(appUrl);
  assert.equal((await library).status(), 200);
  await page.waitForSelector('#status[data-authenticated="false"]');

  step('log in at the development IdP (another site)');
  await page.click('#login');
  await page.waitForURL((url) => url.hostname === '127.0.0.1');
  await page.fill('input[name="login"]', 'demo');
  await page.fill('input[name="password"]', 'demo');
  await page.click('button[type="submit"]');
  await page.waitForSelector('#status[data-authenticated="true"]');
  assert.ok(page.url().startsWith(appUrl), `back on the app: ${page.url()}`);
  const claims = JSON.parse(await page.textContent('#claims'));
  assert.equal(claims.name, 'Demo User');

  step('call the API: the Bearer arrives');
  await page.click('#call');
  const first = page.locator('#log tr').first();
  await first.waitFor();
  assert.equal(await first.getAttribute('data-status'), '200');
  const jti1 = await first.getAttribute('data-jti');
  const exp1 = Number(await first.getAttribute('data-exp'));
  assert.ok(jti1 && exp1, 'the API saw a token (jti, exp)');
  const whoami = lastSent('GET', '/api/whoami');
  assert.ok(whoami, 'the page called /api/whoami');
  assert.equal(whoami.headers['x-csrf'], undefined, 'the library sends no CSRF header on a GET');

  step('a POST through the library carries the CSRF header and reaches the API; without it, 403');
  const posts = await page.evaluate(async () => {
    const { createClient } = await import('/token-handler-client.js');
    const th = createClient();
    const init = { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n":1}' };
    const viaLibrary = await th.fetch('/api/orders', init);
    const plain = await fetch('/api/orders', init);
    return {
      library: { status: viaLibrary.status, body: await viaLibrary.json() },
      plain: { status: plain.status, body: await plain.json() },
    };
  });
  assert.equal(posts.library.status, 200, JSON.stringify(posts));
  assert.deepEqual(posts.library.body, { method: 'POST', path: '/api/orders', had_bearer: true });
  const [libraryPost, plainPost] = sent.filter((r) => r.method === 'POST' && r.path === '/api/orders');
  assert.equal(libraryPost.headers['x-csrf'], '1');
  assert.equal(plainPost.headers['x-csrf'], undefined);
  assert.equal(posts.plain.status, 403, JSON.stringify(posts));
  assert.equal(posts.plain.body.error, 'csrf_check_failed');

  step('no token anywhere the page can read');
  const readable = await page.evaluate(async () => {
    const dump = (s) => Object.fromEntries(Array.from({ length: s.length }, (_, i) => [s.key(i), s.getItem(s.key(i))]));
    const dbs = indexedDB.databases ? await indexedDB.databases() : [];
    return { cookie: document.cookie, local: dump(localStorage), session: dump(sessionStorage), dbs };
  });
  assert.ok(!readable.cookie.includes(COOKIE), `document.cookie shows no proxy cookie: ${readable.cookie}`);
  assert.deepEqual(readable.local, {}, 'localStorage is empty');
  assert.deepEqual(readable.session, {}, 'sessionStorage is empty');
  assert.deepEqual(readable.dbs, [], 'no IndexedDB database');
  const html = await page.content();
  assert.ok(!/eyJ[\w-]{10,}\.[\w-]{10,}\./.test(html), 'no JWT in the page');

  step('the session cookies are HttpOnly, Secure, SameSite=Strict');
  const cookies = (await context.cookies(appUrl)).filter((c) => c.name.startsWith(COOKIE));
  assert.ok(cookies.length >= 1, 'a session cookie is stored');
  for (const c of cookies) {
    assert.equal(c.httpOnly, true, `${c.name} HttpOnly`);
    assert.equal(c.secure, true, `${c.name} Secure`);
    assert.equal(c.sameSite, 'Strict', `${c.name} SameSite`);
    assert.equal(c.path, '/');
  }
  fs.mkdirSync(artifactDir, { recursive: true });
  const screenshot = path.join(artifactDir, 'demo-logged-in.png');
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`screenshot: ${screenshot}`);

  step('wait past the access token expiry, call again: a new token, no login page');
  while (Date.now() / 1000 < exp1) await page.waitForTimeout(250);
  const navigationsBefore = idpNavigations.length;
  await page.click('#call');
  await page.locator('#log tr').nth(1).waitFor();
  const second = page.locator('#log tr').first();
  assert.equal(await second.getAttribute('data-status'), '200');
  const jti2 = await second.getAttribute('data-jti');
  assert.notEqual(jti2, jti1, 'the API received a new access token');
  assert.equal(await second.getAttribute('data-refreshed'), 'true');
  assert.equal(idpNavigations.length, navigationsBefore, 'no login page on the way');

  step("a cross-site page's POST to the API is refused");
  const forged = await context.newPage();
  const posted = forged.waitForResponse((r) => r.url().startsWith(`${appUrl}/api/`));
  await forged.goto(attacker.url);
  const response = await posted;
  assert.ok([401, 403].includes(response.status()), `refused, got ${response.status()}`);
  const body = await response.json();
  assert.ok(['login_required', 'csrf_check_failed'].includes(body.error), JSON.stringify(body));
  await forged.close();

  step('log out through the library: POST with the CSRF header, the IdP logout, back logged out');
  const idpLogout = page.waitForRequest((r) => new URL(r.url()).hostname === '127.0.0.1');
  await page.click('#logout');
  const logoutUrl = new URL((await idpLogout).url());
  assert.equal(logoutUrl.pathname, '/logout', "the library navigated to the IdP's logout_url");
  assert.equal(logoutUrl.searchParams.get('post_logout_redirect_uri'), `${appUrl}/`);
  await page.waitForURL((url) => url.href.startsWith(appUrl) && url.searchParams.get('logged_out') === '1');
  await page.waitForSelector('#status[data-authenticated="false"]');
  const logoutPost = lastSent('POST', '/auth/logout');
  assert.ok(logoutPost, 'the page posted to /auth/logout');
  assert.equal(logoutPost.headers['x-csrf'], '1');

  step('an API call now gets 401 login_required: the library goes to the login and comes back');
  const refused = page.waitForResponse((r) => r.url() === `${appUrl}/api/whoami`);
  const loginStart = page.waitForRequest((r) => r.url().startsWith(`${appUrl}/auth/login`));
  await page.click('#call');
  assert.equal((await refused).status(), 401);
  // (Its body, `login_required`, is gone with the page; the library navigates on that code only.)
  const returnTo = new URL((await loginStart).url()).searchParams.get('return_to');
  assert.equal(returnTo, '/?logged_out=1', 'return_to is the page the call was made on');
  await page.waitForURL((url) => url.hostname === '127.0.0.1');
  await page.fill('input[name="login"]', 'demo');
  await page.fill('input[name="password"]', 'demo');
  await page.click('button[type="submit"]');
  await page.waitForSelector('#status[data-authenticated="true"]');
  const back = new URL(page.url());
  assert.equal(back.origin + back.pathname + back.search, `${appUrl}/?logged_out=1`, 'back where the call was made');
  console.log(JSON.stringify({ ok: true, jti1, jti2, screenshot }));
} finally {
  attacker.server.close();
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}

// A page on another site (127.0.0.1) that posts a form to the app's API on load.
function startAttackerSite(target) {
  return new Promise((resolve) => {
    const server = http.createServer((_, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(`<!doctype html><form id="f" method="post" action="${target}/api/transfer">
        <input name="amount" value="1000"></form><script>document.getElementById('f').submit()</script>`);
    });
    server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${server.address().port}/` }));
  });
}
