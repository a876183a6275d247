// Tests of the compiled client (dist/index.js, what the demo serves and the package ships), with
// an injected fetch, location and sleep: `node --test test/client.test.mjs`.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createClient, retryAfterMs, TokenHandlerError } from '../dist/index.js';

const ORIGIN = 'https://app.example';

/** A location at `path` whose `assign` calls are recorded. */
function fakeLocation(path = '/orders?page=2#top') {
  const url = new URL(path, ORIGIN);
  return {
    href: url.href,
    origin: url.origin,
    pathname: url.pathname,
    search: url.search,
    hash: url.hash,
    assigned: [],
    assign(to) {
      this.assigned.push(to);
    },
  };
}

function json(status, body, headers = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  });
}

/**
 * A fetch that records each call (input, init, the body it read) and answers with `answers` in
 * turn (the last one again when they run out).
 */
function fakeFetch(...answers) {
  const calls = [];
  const fetch = async (input, init = {}) => {
    const request = new Request(new URL(input instanceof Request ? input.url : String(input), ORIGIN), {
      method: init.method ?? (input instanceof Request ? input.method : 'GET'),
      headers: init.headers ?? (input instanceof Request ? input.headers : undefined),
      body: init.body ?? (input instanceof Request ? input.body : undefined),
      duplex: 'half',
    });
    const body = ['GET', 'HEAD'].includes(request.method) ? null : await request.text();
    calls.push({ input, init, method: request.method, url: request.url, headers: request.headers, body });
    if (calls.length > 20) throw new Error('fetch called more than 20 times');
    const answer = answers[Math.min(calls.length - 1, answers.length - 1)];
    return typeof answer === 'function' ? answer() : answer.clone();
  };
  fetch.calls = calls;
  return fetch;
}

/** A sleep that records the delays it was asked for and returns at once. */
function fakeSleep() {
  const delays = [];
  const sleep = async (ms) => {
    delays.push(ms);
  };
  sleep.delays = delays;
  return sleep;
}

function client(fetch, extra = {}) {
  const location = extra.location ?? fakeLocation();
  const sleep = extra.sleep ?? fakeSleep();
  return { api: createClient({ fetch, location, sleep, ...extra }), location, sleep };
}

const ok = () => json(200, { ok: true });
const unavailable = (code, retryAfter) =>
  json(503, { error: code, message: 'try again' }, retryAfter === undefined ? {} : { 'retry-after': retryAfter });

describe('fetch: CSRF header and credentials', () => {
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE', 'post', 'PROPFIND']) {
    test(`${method} carries x-csrf: 1 and keeps the caller's headers`, async () => {
      const fetch = fakeFetch(ok());
      const { api } = client(fetch);
      const response = await api.fetch('/api/orders', {
        method,
        headers: { 'content-type': 'application/json', 'x-request-id': 'r1' },
        body: '{"n":1}',
      });
      assert.equal(response.status, 200);
      const [call] = fetch.calls;
      assert.equal(call.headers.get('x-csrf'), '1');
      assert.equal(call.headers.get('content-type'), 'application/json');
      assert.equal(call.headers.get('x-request-id'), 'r1');
      assert.equal(call.body, '{"n":1}');
      assert.equal(call.init.credentials, 'same-origin');
    });
  }

  for (const method of [undefined, 'GET', 'get', 'HEAD', 'OPTIONS']) {
    test(`${method ?? 'no method'} carries no CSRF header`, async () => {
      const fetch = fakeFetch(ok());
      const { api } = client(fetch);
      await api.fetch('/api/orders', method ? { method, headers: { accept: 'application/json' } } : undefined);
      const [call] = fetch.calls;
      assert.equal(call.headers.get('x-csrf'), null);
      assert.equal(call.init.credentials, 'same-origin');
      if (method) assert.equal(call.headers.get('accept'), 'application/json');
    });
  }

  test('a GET with a method-override header carries the CSRF header (the proxy checks it)', async () => {
    const fetch = fakeFetch(ok());
    const { api } = client(fetch);
    await api.fetch('/api/orders/1', { headers: { 'X-HTTP-Method-Override': 'DELETE' } });
    assert.equal(fetch.calls[0].headers.get('x-csrf'), '1');
  });

  test('csrfHeader names the header; its value is always 1', async () => {
    const fetch = fakeFetch(ok());
    const { api } = client(fetch, { csrfHeader: 'x-requested-by' });
    await api.fetch('/api/orders', { method: 'POST', headers: { 'x-requested-by': 'yes' } });
    assert.equal(fetch.calls[0].headers.get('x-requested-by'), '1');
    assert.equal(fetch.calls[0].headers.get('x-csrf'), null);
  });

  test("a Request's headers are kept and the CSRF header added", async () => {
    const fetch = fakeFetch(ok());
    const { api } = client(fetch);
    await api.fetch(new Request(`${ORIGIN}/api/orders/1`, { method: 'DELETE', headers: { 'x-a': 'b' } }));
    const [call] = fetch.calls;
    assert.equal(call.method, 'DELETE');
    assert.equal(call.headers.get('x-a'), 'b');
    assert.equal(call.headers.get('x-csrf'), '1');
  });

  test("the caller's credentials mode is kept", async () => {
    const fetch = fakeFetch(ok());
    const { api } = client(fetch);
    await api.fetch('/api/orders', { credentials: 'include' });
    assert.equal(fetch.calls[0].init.credentials, 'include');
  });

  test('other statuses are returned as they are', async () => {
    for (const status of [200, 204, 400, 403, 404, 500, 502]) {
      const fetch = fakeFetch(new Response(status === 204 ? null : 'x', { status }));
      const { api, location } = client(fetch);
      const response = await api.fetch('/api/x');
      assert.equal(response.status, status);
      assert.equal(fetch.calls.length, 1);
      assert.deepEqual(location.assigned, []);
    }
  });
});

describe('fetch: 401 login_required', () => {
  test('navigates to the login with the current path, query and hash, and throws', async () => {
    const fetch = fakeFetch(json(401, { error: 'login_required', message: 'no session' }));
    const { api, location } = client(fetch, { location: fakeLocation('/orders?page=2#top') });
    await assert.rejects(api.fetch('/api/orders'), (e) => {
      assert.ok(e instanceof TokenHandlerError);
      assert.equal(e.error, 'login_required');
      assert.equal(e.status, 401);
      assert.equal(e.name, 'TokenHandlerError');
      return true;
    });
    assert.deepEqual(location.assigned, ['/auth/login?return_to=%2Forders%3Fpage%3D2%23top']);
  });

  test('authPrefix moves the login', async () => {
    const fetch = fakeFetch(json(401, { error: 'login_required' }));
    const { api, location } = client(fetch, { authPrefix: '/bff/', location: fakeLocation('/') });
    await assert.rejects(api.fetch('/api/orders'), TokenHandlerError);
    assert.deepEqual(location.assigned, ['/bff/login?return_to=%2F']);
  });

  test('loginRedirect: false throws without navigating', async () => {
    const fetch = fakeFetch(json(401, { error: 'login_required' }));
    const { api, location } = client(fetch, { loginRedirect: false });
    await assert.rejects(api.fetch('/api/orders'), { name: 'TokenHandlerError', error: 'login_required' });
    assert.deepEqual(location.assigned, []);
  });

  test("another 401 (the API's own) is returned as it is", async () => {
    for (const answer of [
      json(401, { error: 'no_token' }),
      new Response('{"error":"login_required"}', { status: 401, headers: { 'content-type': 'text/html' } }),
      new Response('denied', { status: 401 }),
    ]) {
      const fetch = fakeFetch(answer);
      const { api, location } = client(fetch);
      const response = await api.fetch('/api/orders');
      assert.equal(response.status, 401);
      assert.equal(await response.text(), await answer.clone().text(), 'the body is still readable');
      assert.deepEqual(location.assigned, []);
    }
  });
});

describe('fetch: 503 and Retry-After', () => {
  test('Retry-After in seconds: waits that long, sends the same request again', async () => {
    const fetch = fakeFetch(unavailable('idp_unavailable', '3'), ok());
    const { api, sleep } = client(fetch);
    const response = await api.fetch('/api/orders', { method: 'POST', body: 'order' });
    assert.equal(response.status, 200);
    assert.deepEqual(sleep.delays, [3000]);
    assert.equal(fetch.calls.length, 2);
    for (const call of fetch.calls) {
      assert.equal(call.method, 'POST');
      assert.equal(call.body, 'order');
      assert.equal(call.headers.get('x-csrf'), '1');
    }
  });

  test('Retry-After as an HTTP date: waits until then', async () => {
    const now = Date.parse('2030-01-01T00:00:00Z');
    const fetch = fakeFetch(unavailable('key_unavailable', 'Tue, 01 Jan 2030 00:00:07 GMT'), ok());
    const { api, sleep } = client(fetch, { now: () => now });
    const response = await api.fetch('/api/orders');
    assert.equal(response.status, 200);
    assert.deepEqual(sleep.delays, [7000]);
  });

  test('without Retry-After: one second', async () => {
    const fetch = fakeFetch(unavailable('idp_unavailable'), ok());
    const { api, sleep } = client(fetch);
    assert.equal((await api.fetch('/api/orders')).status, 200);
    assert.deepEqual(sleep.delays, [1000]);
  });

  test('at most maxRetries retries, then the last answer', async () => {
    let n = 0;
    const fetch = fakeFetch(() => json(503, { error: 'idp_unavailable', attempt: ++n }, { 'retry-after': '1' }));
    const { api, sleep } = client(fetch);
    const response = await api.fetch('/api/orders');
    assert.equal(response.status, 503);
    assert.equal(fetch.calls.length, 3, 'the first call and 2 retries');
    assert.deepEqual(sleep.delays, [1000, 1000]);
    assert.equal((await response.json()).attempt, 3, 'the last answer, its body readable');

    const once = fakeFetch(unavailable('idp_unavailable', '1'));
    const { api: api1 } = client(once, { maxRetries: 1 });
    await api1.fetch('/api/orders');
    assert.equal(once.calls.length, 2);

    const never = fakeFetch(unavailable('idp_unavailable', '1'));
    const { api: api0 } = client(never, { maxRetries: 0 });
    await api0.fetch('/api/orders');
    assert.equal(never.calls.length, 1);
  });

  test('a Retry-After longer than maxRetryDelayMs is not waited for', async () => {
    const fetch = fakeFetch(unavailable('idp_unavailable', '30'), ok());
    const { api, sleep } = client(fetch, { maxRetryDelayMs: 10000 });
    const response = await api.fetch('/api/orders');
    assert.equal(response.status, 503);
    assert.equal(fetch.calls.length, 1);
    assert.deepEqual(sleep.delays, []);

    const longer = fakeFetch(unavailable('idp_unavailable', '30'), ok());
    const { api: patient } = client(longer, { maxRetryDelayMs: 30000 });
    assert.equal((await patient.fetch('/api/orders')).status, 200);
  });

  test('other 503s are not retried', async () => {
    for (const answer of [
      unavailable('overloaded', '1'),
      new Response('<html>down</html>', { status: 503, headers: { 'retry-after': '1' } }),
    ]) {
      const fetch = fakeFetch(answer, ok());
      const { api, sleep } = client(fetch);
      assert.equal((await api.fetch('/api/orders')).status, 503);
      assert.equal(fetch.calls.length, 1);
      assert.deepEqual(sleep.delays, []);
    }
  });

  test('a stream body is sent once: no retry', async () => {
    const fetch = fakeFetch(unavailable('idp_unavailable', '1'), ok());
    const { api, sleep } = client(fetch);
    const body = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('chunk'));
        controller.close();
      },
    });
    const response = await api.fetch('/api/upload', { method: 'POST', body, duplex: 'half' });
    assert.equal(response.status, 503);
    assert.equal(fetch.calls.length, 1);
    assert.equal(fetch.calls[0].body, 'chunk');
    assert.deepEqual(sleep.delays, []);
  });

  test("a Request's own body is sent once: no retry", async () => {
    const fetch = fakeFetch(unavailable('idp_unavailable', '1'), ok());
    const { api } = client(fetch);
    const response = await api.fetch(new Request(`${ORIGIN}/api/orders`, { method: 'POST', body: 'order' }));
    assert.equal(response.status, 503);
    assert.equal(fetch.calls.length, 1);
  });

  test('bodies fetch can send again are retried (bytes, form, params, blob)', async () => {
    for (const body of [
      new TextEncoder().encode('bytes'),
      new URLSearchParams({ a: '1' }),
      new Blob(['blob']),
      (() => { const f = new FormData(); f.set('a', '1'); return f; })(),
    ]) {
      const fetch = fakeFetch(unavailable('idp_unavailable', '0'), ok());
      const { api } = client(fetch);
      assert.equal((await api.fetch('/api/orders', { method: 'POST', body })).status, 200);
      assert.equal(fetch.calls.length, 2);
      // (a multipart boundary is new on each send)
      const sent = fetch.calls.map((c) => c.body.replace(/-+formdata-[\w-]+/g, 'BOUNDARY'));
      assert.ok(sent[0].length > 0);
      assert.equal(sent[1], sent[0]);
    }
  });

  test('an abort during the wait stops the retries', async () => {
    const controller = new AbortController();
    const fetch = fakeFetch(unavailable('idp_unavailable', '1'), ok());
    const sleep = async () => controller.abort(new Error('gave up'));
    const { api } = client(fetch, { sleep });
    await assert.rejects(api.fetch('/api/orders', { signal: controller.signal }), /gave up/);
    assert.equal(fetch.calls.length, 1);
  });

  test('the default sleep waits for real', async () => {
    const fetch = fakeFetch(unavailable('idp_unavailable', '0'), ok());
    const api = createClient({ fetch, location: fakeLocation() });
    assert.equal((await api.fetch('/api/orders')).status, 200);
    assert.equal(fetch.calls.length, 2);
  });
});

describe('retryAfterMs', () => {
  const now = Date.parse('2030-01-01T00:00:00Z');
  test('seconds, dates, and what is neither', () => {
    assert.equal(retryAfterMs('120', now), 120000);
    assert.equal(retryAfterMs(' 2 ', now), 2000);
    assert.equal(retryAfterMs('Tue, 01 Jan 2030 00:01:00 GMT', now), 60000);
    assert.equal(retryAfterMs('Tuesday, 01-Jan-30 00:00:30 GMT', now), 30000);
    assert.equal(retryAfterMs('Mon, 31 Dec 2029 23:00:00 GMT', now), 0, 'a past date: now');
    assert.equal(retryAfterMs(null, now), null);
    assert.equal(retryAfterMs('1.5', now), null);
    assert.equal(retryAfterMs('-1', now), null);
    assert.equal(retryAfterMs('soon', now), null);
    assert.equal(retryAfterMs('2030-01-01T00:01:00Z', now), null);
  });
});

describe('session()', () => {
  const logged = {
    authenticated: true,
    expires_at: 2000000000,
    access_expires_at: 1900000000,
    refreshed: false,
    claims: { sub: 'u1', name: 'Demo User' },
  };

  test('GET /auth/session: the session when logged in', async () => {
    const fetch = fakeFetch(json(200, logged));
    const { api } = client(fetch);
    assert.deepEqual(await api.session(), logged);
    const [call] = fetch.calls;
    assert.equal(call.url, `${ORIGIN}/auth/session`);
    assert.equal(call.method, 'GET');
    assert.equal(call.init.credentials, 'same-origin');
    assert.equal(call.headers.get('x-csrf'), null);
  });

  test('null when not logged in: {"authenticated": false}, or a 401; no navigation', async () => {
    for (const answer of [json(200, { authenticated: false }), json(401, { error: 'login_required' })]) {
      const fetch = fakeFetch(answer);
      const { api, location } = client(fetch);
      assert.equal(await api.session(), null);
      assert.deepEqual(location.assigned, []);
    }
  });

  test('retries a 503, then throws its error', async () => {
    const fetch = fakeFetch(unavailable('idp_unavailable', '1'), json(200, logged));
    const { api } = client(fetch, { authPrefix: '/bff' });
    assert.deepEqual(await api.session(), logged);
    assert.equal(fetch.calls[0].url, `${ORIGIN}/bff/session`);

    const down = fakeFetch(unavailable('idp_unavailable', '1'));
    const { api: api2 } = client(down);
    await assert.rejects(api2.session(), { name: 'TokenHandlerError', error: 'idp_unavailable', status: 503 });
    assert.equal(down.calls.length, 3);
  });
});

describe('logout()', () => {
  const logoutUrl = 'https://idp.example/logout?client_id=spa&post_logout_redirect_uri=https%3A%2F%2Fapp.example%2F';

  test('POST /auth/logout with the CSRF header, then to the logout URL', async () => {
    const fetch = fakeFetch(json(200, { logout_url: logoutUrl }));
    const { api, location } = client(fetch);
    assert.deepEqual(await api.logout(), { logoutUrl });
    const [call] = fetch.calls;
    assert.equal(call.url, `${ORIGIN}/auth/logout`);
    assert.equal(call.method, 'POST');
    assert.equal(call.headers.get('x-csrf'), '1');
    assert.equal(call.init.credentials, 'same-origin');
    assert.deepEqual(location.assigned, [logoutUrl]);
  });

  test('no navigation without a logout URL, or with navigate: false', async () => {
    for (const [answer, options] of [
      [json(200, { logout_url: null }), undefined],
      [json(200, { logout_url: 'javascript:alert(1)' }), undefined],
      [json(200, { logout_url: logoutUrl }), { navigate: false }],
    ]) {
      const fetch = fakeFetch(answer);
      const { api, location } = client(fetch, { csrfHeader: 'x-bff' });
      const result = await api.logout(options);
      assert.equal(fetch.calls[0].headers.get('x-bff'), '1');
      assert.equal(result.logoutUrl, options ? logoutUrl : null);
      assert.deepEqual(location.assigned, []);
    }
  });

  test("the proxy's refusal is thrown", async () => {
    const fetch = fakeFetch(json(403, { error: 'csrf_check_failed', message: 'no' }));
    const { api, location } = client(fetch);
    await assert.rejects(api.logout(), { name: 'TokenHandlerError', error: 'csrf_check_failed', status: 403 });
    assert.deepEqual(location.assigned, []);
  });
});

describe('login()', () => {
  test('to the login, back to this page by default', () => {
    const { api, location } = client(fakeFetch(ok()), { location: fakeLocation('/a/b?c=1#d') });
    api.login();
    assert.deepEqual(location.assigned, ['/auth/login?return_to=%2Fa%2Fb%3Fc%3D1%23d']);
  });

  test('returnTo on this site, resolved as the browser does', () => {
    const { api, location } = client(fakeFetch(ok()), { location: fakeLocation('/a/b') });
    api.login('/x?y=1#z');
    api.login('c');
    api.login(`${ORIGIN}/full`);
    api.login('/p/../q');
    assert.deepEqual(location.assigned, [
      '/auth/login?return_to=%2Fx%3Fy%3D1%23z',
      '/auth/login?return_to=%2Fa%2Fc',
      '/auth/login?return_to=%2Ffull',
      '/auth/login?return_to=%2Fq',
    ]);
    assert.equal(api.loginUrl('/x'), '/auth/login?return_to=%2Fx');
  });

  test('returnTo elsewhere is refused', () => {
    const { api, location } = client(fakeFetch(ok()));
    for (const bad of [
      'https://evil.example/',
      '//evil.example/x',
      '/\\evil.example',
      'http://app.example/',
      'javascript:alert(1)',
      '/.//evil.example',
      '/x\ny',
    ]) {
      assert.throws(() => api.login(bad), TypeError, bad);
    }
    assert.deepEqual(location.assigned, []);
  });
});
