// @token-handler/client: what a single-page app needs to call its API through token-handler
// (the Backend-for-Frontend proxy). The browser holds only the proxy's HttpOnly session cookie;
// this client never sees a token. It calls the SPA's own origin with the cookie, adds the CSRF
// header the proxy asks for, starts a login when the proxy answers 401 `login_required`, and
// retries after `Retry-After` when the proxy answers 503 `idp_unavailable` / `key_unavailable`.
// No dependencies: plain `fetch`.
/** An error the proxy answered with (`{"error": "<code>", "message": "..."}`). */
export class TokenHandlerError extends Error {
    constructor(error, status, message, response) {
        super(message ? `${error}: ${message}` : error);
        this.name = 'TokenHandlerError';
        this.error = error;
        this.status = status;
        this.response = response;
    }
}
const SAFE_METHODS = ['GET', 'HEAD', 'OPTIONS'];
/** Methods `fetch` upper-cases (the Fetch standard's "normalize"); any other is sent as written. */
const NORMALIZED_METHODS = ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT'];
/** Headers through which frameworks turn a GET into another method: the proxy checks CSRF then. */
const METHOD_OVERRIDES = ['x-http-method-override', 'x-http-method', 'x-method-override'];
/** The proxy's 503 codes that say "try again after Retry-After". */
const RETRIED_ERRORS = ['idp_unavailable', 'key_unavailable'];
/** A 503 without a usable `Retry-After` is retried after this long. */
const DEFAULT_RETRY_MS = 1000;
/** Creates a client; every option has a default that suits a browser. */
export function createClient(options = {}) {
    const authPrefix = (options.authPrefix ?? '/auth').replace(/\/+$/, '');
    const csrfHeader = options.csrfHeader ?? 'x-csrf';
    const loginRedirect = options.loginRedirect ?? true;
    const maxRetries = Math.max(0, options.maxRetries ?? 2);
    const maxRetryDelayMs = Math.max(0, options.maxRetryDelayMs ?? 10000);
    const sleep = options.sleep ?? defaultSleep;
    const now = options.now ?? Date.now;
    const doFetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    function location() {
        const loc = options.location ?? globalThis.location;
        if (!loc)
            throw new Error('token-handler client: no location to navigate with (pass options.location)');
        return loc;
    }
    function loginUrl(returnTo) {
        const loc = location();
        const target = sameOriginReference(returnTo ?? loc.pathname + loc.search + loc.hash, loc);
        return `${authPrefix}/login?return_to=${encodeURIComponent(target)}`;
    }
    /** One call with the retries; answers are returned, whatever their status. */
    async function send(input, init) {
        const request = isRequest(input) ? input : undefined;
        const headers = new Headers(init?.headers ?? request?.headers);
        const method = normalizeMethod(init?.method ?? request?.method ?? 'GET');
        if (!SAFE_METHODS.includes(method) || METHOD_OVERRIDES.some((h) => headers.has(h))) {
            // The proxy accepts exactly `1`.
            headers.set(csrfHeader, '1');
        }
        const credentials = init?.credentials ?? request?.credentials ?? 'same-origin';
        const sent = { ...init, method, headers, credentials };
        const canReplay = replayable(request, init);
        const signal = init?.signal ?? request?.signal;
        for (let attempt = 0;; attempt++) {
            const response = await doFetch(input, sent);
            if (response.status !== 503 || attempt >= maxRetries || !canReplay)
                return response;
            const { error } = await errorBody(response, true);
            if (!RETRIED_ERRORS.includes(error ?? ''))
                return response;
            const delay = retryAfterMs(response.headers.get('retry-after'), now()) ?? DEFAULT_RETRY_MS;
            if (delay > maxRetryDelayMs)
                return response;
            discard(response);
            await sleep(delay, signal);
            if (signal?.aborted)
                throw signal.reason;
        }
    }
    async function apiFetch(input, init) {
        const response = await send(input, init);
        if (response.status !== 401)
            return response;
        const { error, message } = await errorBody(response, true);
        if (error !== 'login_required')
            return response;
        discard(response);
        if (loginRedirect)
            location().assign(loginUrl());
        throw new TokenHandlerError(error, response.status, message, response);
    }
    async function session() {
        const response = await send(`${authPrefix}/session`, { headers: { accept: 'application/json' } });
        if (response.status === 401) {
            discard(response);
            return null;
        }
        if (!response.ok)
            throw await proxyError(response);
        const body = (await response.json());
        return body && body.authenticated === true ? body : null;
    }
    async function logout(opts = {}) {
        const response = await send(`${authPrefix}/logout`, {
            method: 'POST',
            headers: { accept: 'application/json' },
        });
        if (!response.ok)
            throw await proxyError(response);
        const body = (await response.json().catch(() => ({})));
        const logoutUrl = typeof body.logout_url === 'string' && isHttpUrl(body.logout_url) ? body.logout_url : null;
        if (logoutUrl !== null && (opts.navigate ?? true))
            location().assign(logoutUrl);
        return { logoutUrl };
    }
    return {
        fetch: apiFetch,
        session,
        login: (returnTo) => location().assign(loginUrl(returnTo)),
        loginUrl,
        logout,
    };
}
/**
 * Milliseconds to wait for a `Retry-After` value (delay-seconds or an HTTP-date, RFC 9110
 * §10.2.3), or null when it is neither. A date in the past is 0.
 */
export function retryAfterMs(value, now = Date.now()) {
    if (value === null)
        return null;
    const text = value.trim();
    if (/^\d+$/.test(text))
        return Number(text) * 1000;
    // An HTTP-date starts with the day's name; Date.parse alone would take `1.5` for a date.
    if (!/^[A-Za-z]{3,9},? /.test(text))
        return null;
    const date = Date.parse(text);
    return Number.isNaN(date) ? null : Math.max(0, date - now);
}
/**
 * `returnTo` as a path-absolute reference (path, query, fragment) on the current origin, the
 * way the browser resolves it; `TypeError` for anything that leaves it.
 */
function sameOriginReference(returnTo, loc) {
    // Refused by the proxy too: browsers and servers disagree on them.
    if (/[\u0000-\u001f\u007f\\]/.test(returnTo))
        throw new TypeError(`returnTo is not a URL on this site: ${returnTo}`);
    let url;
    try {
        url = new URL(returnTo, loc.href);
    }
    catch {
        throw new TypeError(`returnTo is not a URL: ${returnTo}`);
    }
    if (url.origin !== loc.origin || url.pathname.startsWith('//')) {
        throw new TypeError(`returnTo is not a URL on this site: ${returnTo}`);
    }
    return url.pathname + url.search + url.hash;
}
function isHttpUrl(value) {
    try {
        const { protocol } = new URL(value);
        return protocol === 'https:' || protocol === 'http:';
    }
    catch {
        return false;
    }
}
function isRequest(input) {
    return typeof Request !== 'undefined' && input instanceof Request;
}
function normalizeMethod(method) {
    const upper = method.toUpperCase();
    return NORMALIZED_METHODS.includes(upper) ? upper : method;
}
/**
 * Whether the call can be sent again: its body is one `fetch` can read twice. A stream (or
 * anything else `fetch` consumes) cannot, and neither can a `Request`'s own body.
 */
function replayable(request, init) {
    const body = init?.body;
    if (body === undefined)
        return !request || request.body === null;
    return (body === null ||
        typeof body === 'string' ||
        body instanceof URLSearchParams ||
        body instanceof ArrayBuffer ||
        ArrayBuffer.isView(body) ||
        (typeof Blob !== 'undefined' && body instanceof Blob) ||
        (typeof FormData !== 'undefined' && body instanceof FormData));
}
/**
 * The proxy's `{"error", "message"}`, when the answer is that JSON. With `keep`, the body is read
 * from a clone and stays readable (only JSON answers are cloned).
 */
async function errorBody(response, keep = false) {
    if (!/json/i.test(response.headers.get('content-type') ?? '')) {
        if (!keep)
            discard(response);
        return {};
    }
    try {
        const body = (await (keep ? response.clone() : response).json());
        return {
            error: typeof body?.error === 'string' ? body.error : undefined,
            message: typeof body?.message === 'string' ? body.message : undefined,
        };
    }
    catch {
        return {};
    }
}
async function proxyError(response) {
    const { error, message } = await errorBody(response);
    return new TokenHandlerError(error ?? `http_${response.status}`, response.status, message, response);
}
/**
 * Lets go of an answer's body. Not awaited: cancelling one branch of a cloned body settles only
 * once the other branch is done too.
 */
function discard(response) {
    response.body?.cancel().catch(() => { });
}
function defaultSleep(ms, signal) {
    return new Promise((resolve) => {
        if (signal?.aborted)
            return resolve();
        const done = () => {
            clearTimeout(timer);
            signal?.removeEventListener('abort', done);
            resolve();
        };
        const timer = setTimeout(done, ms);
        signal?.addEventListener('abort', done);
    });
}
