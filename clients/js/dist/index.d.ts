/** The part of `window.location` the client uses (injectable for tests). */
export interface LocationLike {
    readonly href: string;
    readonly origin: string;
    readonly pathname: string;
    readonly search: string;
    readonly hash: string;
    assign(url: string): void;
}
/** A `fetch` function (the browser's, or one injected for tests). */
export type FetchLike = (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;
export interface ClientOptions {
    /** Where the proxy's own endpoints are (`proxy.auth_prefix`). Default `/auth`. */
    authPrefix?: string;
    /** The proxy's CSRF header (`csrf.header`), sent as `<name>: 1`. Default `x-csrf`. */
    csrfHeader?: string;
    /**
     * On 401 `login_required`, navigate to the login (back to the current page afterwards).
     * The call throws a `TokenHandlerError` either way. Default `true`.
     */
    loginRedirect?: boolean;
    /** How many times a 503 `idp_unavailable` / `key_unavailable` is retried. Default 2. */
    maxRetries?: number;
    /** A longer `Retry-After` than this is not waited for: the 503 is returned. Default 10000. */
    maxRetryDelayMs?: number;
    /** Default `globalThis.fetch`. */
    fetch?: FetchLike;
    /** Default `globalThis.location`. */
    location?: LocationLike;
    /** Waits between retries (for tests). Default: `setTimeout`, cut short by the request's signal. */
    sleep?: (ms: number, signal?: AbortSignal | null) => Promise<void>;
    /** The current time in ms, to read a `Retry-After` date (for tests). Default `Date.now`. */
    now?: () => number;
}
/** `GET <authPrefix>/session` of a logged-in browser. Never a token. */
export interface Session {
    authenticated: true;
    /** When the session ends (Unix seconds); a login is needed after that. */
    expires_at: number;
    /** When the current access token expires (Unix seconds); the proxy refreshes it. */
    access_expires_at: number;
    /** Whether this very request refreshed the access token. */
    refreshed: boolean;
    /** A few of the ID token's claims (`sub`, `name`, `email`, ...). */
    claims: Record<string, unknown>;
}
export interface LogoutResult {
    /** The IdP's logout URL (already navigated to unless `navigate: false`), or null when the IdP has none. */
    logoutUrl: string | null;
}
export interface TokenHandlerClient {
    /**
     * `fetch` for the SPA's own API: same-origin credentials, the CSRF header on every method but
     * GET/HEAD/OPTIONS, a login on 401 `login_required` (throws `TokenHandlerError`), retries on
     * 503 `idp_unavailable` / `key_unavailable`. Any other answer is returned as it is.
     */
    fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
    /** The session, or null when the browser is not logged in. Throws `TokenHandlerError` otherwise. */
    session(): Promise<Session | null>;
    /** Navigates to the login; afterwards the browser comes back to `returnTo` (default: this page). */
    login(returnTo?: string): void;
    /** The login URL that `login(returnTo)` navigates to; throws `TypeError` for another origin. */
    loginUrl(returnTo?: string): string;
    /** Ends the session at the proxy, then navigates to the IdP's logout URL (if it has one). */
    logout(options?: {
        navigate?: boolean;
    }): Promise<LogoutResult>;
}
/** An error the proxy answered with (`{"error": "<code>", "message": "..."}`). */
export declare class TokenHandlerError extends Error {
    /** The proxy's error code: `login_required`, `csrf_check_failed`, `idp_unavailable`, ... */
    readonly error: string;
    /** The HTTP status. */
    readonly status: number;
    /** The answer, its body already read. */
    readonly response: Response | undefined;
    constructor(error: string, status: number, message?: string, response?: Response);
}
/** Creates a client; every option has a default that suits a browser. */
export declare function createClient(options?: ClientOptions): TokenHandlerClient;
/**
 * Milliseconds to wait for a `Retry-After` value (delay-seconds or an HTTP-date, RFC 9110
 * §10.2.3), or null when it is neither. A date in the past is 0.
 */
export declare function retryAfterMs(value: string | null, now?: number): number | null;
