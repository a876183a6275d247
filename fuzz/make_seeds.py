#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/seeds/ (see fuzz/README.md).

Sealed cookie values (cookie_open) are made here with the crate's published unit-test keys (K1,
K2 in src/crypto.rs) in the format of src/crypto.rs; the script first reproduces that file's
fixed test vector, so a format change makes it fail instead of writing stale seeds. Seeds that
hold a whole sealed *session* (chunk_reassembly) depend on the session's binary layout and are
written by the crate itself: `cargo test --test it -- --ignored write_fuzz_seeds`.
Needs Python 3 and the `cryptography` package (dev machines only; the fuzz runs need neither).
"""

import base64
import json
import os
import pathlib

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

HERE = pathlib.Path(__file__).resolve().parent
SEEDS = HERE / "seeds"
REPO = HERE.parent

K1 = ("k1", bytes(range(32)))
K2 = ("k2", bytes(range(32, 64)))
COOKIE = "__Host-th_session"
SEED_STARTED_AT = 1_700_000_000


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def seal(key, name: str, plaintext: bytes, nonce: bytes | None = None) -> str:
    kid, secret = key
    header = bytes([1, len(kid)]) + kid.encode()
    nonce = nonce if nonce is not None else os.urandom(12)
    sealed = AESGCM(secret).encrypt(nonce, plaintext, header + name.encode())
    return b64url(header + nonce + sealed)


def session(sid: str, token_len: int) -> dict:
    return {
        "d": sid,
        "r": "q3L+/w==" + "r" * token_len,
        "a": "eyJhbGciOiJSUzI1NiJ9." + "a" * token_len + ".sig",
        "e": SEED_STARTED_AT + 300,
        "n": SEED_STARTED_AT,
        "s": "openid profile email offline_access",
        "c": {"sub": "usr:42", "name": "Demo Ünïcødé", "email": "demo@example.com"},
        "t": SEED_STARTED_AT,
    }


def write(target: str, name: str, data: bytes) -> None:
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def jwt(claims: dict) -> str:
    return ".".join(
        [b64url(b'{"alg":"RS256","typ":"JWT"}'), b64url(json.dumps(claims).encode()), "c2ln"]
    )


def main() -> None:
    vector = seal(K1, "__Host-th", b"hello", bytes([7] * 12))
    assert vector == "AQJrMQcHBwcHBwcHBwcHB2cPyjAAevjcrSHZl75DfxUaEnpjQw", vector

    # cookie_open: mode | name | 0 | value-or-plaintext
    co = lambda mode, name, rest: bytes([mode]) + name.encode() + b"\0" + rest
    write("cookie_open", "sealed_current", co(0, COOKIE, seal(K2, COOKIE, b"seed plaintext").encode()))
    write("cookie_open", "sealed_retired_empty", co(0, COOKIE, seal(K1, COOKIE, b"").encode()))
    write("cookie_open", "sealed_json", co(0, "__Host-th_session.1", seal(K2, "__Host-th_session.1", b'{"d":"seed"}').encode()))
    write("cookie_open", "fixed_vector", co(0, "__Host-th", vector.encode()))
    write("cookie_open", "wrong_name", co(0, "__Host-th_flow", seal(K2, COOKIE, b"seed plaintext").encode()))
    write("cookie_open", "garbage", co(0, COOKIE, b"not base64 !!"))
    write("cookie_open", "chunk_marker", co(0, COOKIE, b"3.AQJrMQ"))
    write("cookie_open", "roundtrip", co(1, COOKIE, json.dumps(session("rt", 40)).encode()))
    write("cookie_open", "roundtrip_binary", co(1, "n", bytes(range(256))))

    # chunk_reassembly: Cookie header values, one per line. The seeds with real sealed
    # sessions (small, chunked_*, chunk_missing, retired_key, duplicates) follow the session
    # format of src/session/ and are written by the crate itself:
    #   cargo test --test it -- --ignored write_fuzz_seeds
    cr = lambda lines: "\n".join(lines).encode()
    write("chunk_reassembly", "flow_cookies", cr(["__Host-th_session_flow_abc=x; __Host-th_session_flow_def=y; a=b"]))
    many = "; ".join(f"{COOKIE}.{i}=x" for i in range(2000))
    write("chunk_reassembly", "thousands_of_chunks", cr([f"{COOKIE}=8.x; " + many]))
    write("chunk_reassembly", "bad_counts", cr([f"{COOKIE}=9.x", f"{COOKIE}=1.x; {COOKIE}.+1=y; {COOKIE}.01=z"]))
    write("chunk_reassembly", "invalid_utf8", b"a=\xff\xfe; " + f"{COOKIE}=2.AQJrMg; {COOKIE}.1=xyz".encode() + b"\n\x80=\x81")
    write("chunk_reassembly", "non_ascii_app_cookie", "user=Jürgen; lang=en".encode())
    write("chunk_reassembly", "odd_pairs", cr(["=; ;;; noequals; =value; " + COOKIE + "; x==y"]))

    # idp_response: dialect (0 TokenIDP, 1 OAuth2) | status u16 BE | body
    ir = lambda dialect, status, body: bytes([dialect]) + status.to_bytes(2, "big") + body
    at = jwt({"sub": "usr:42", "jti": "j1", "iat": 1_700_000_000, "exp": 1_700_000_300})
    tokenidp = {
        "guide": (200, {"isSuccess": True, "data": {"accessToken": at, "refreshToken": "35b31ab0-1", "tokenType": "Bearer", "expiresIn": 3600}}),
        "server": (200, {"isSuccess": True, "value": {"access_token": at, "token_type": "Bearer", "id_token": "eyJ.i", "refresh_token": "q3L+/w==", "expires_in": 1800, "expireAt": "2026-02-01T12:30:00Z", "isSuccess": True, "userId": 42}}),
        "inner_failure": (200, {"isSuccess": True, "value": {"isSuccess": False, "userId": 0}}),
        "invalid_refresh": (400, {"isSuccess": False, "error": {"code": "", "correlationId": "c", "userId": 0, "error": "Invalid refresh token."}}),
        "client_auth": (401, {"isSuccess": False, "error": {"code": "", "correlationId": "c", "userId": 0, "error": "Client authentication failed."}}),
        "pascal_500": (500, {"IsSuccess": False, "Error": {"Code": "", "CorrelationId": "x", "UserId": 0, "Error": "An error has occurred, please contact support."}}),
        "rate_limited": (429, {"error": "rate_limit_exceeded", "error_description": "slow down"}),
        "tenant": (404, {"error": "tenant_unavailable"}),
        "string_expires": (200, {"value": {"AccessToken": "opaque", "ExpiresIn": "60"}}),
    }
    for name, (status, body) in tokenidp.items():
        write("idp_response", f"tokenidp_{name}", ir(0, status, json.dumps(body).encode()))
    oauth2 = {
        "success": (200, {"access_token": at, "token_type": "Bearer", "expires_in": 60, "refresh_token": "r", "scope": "openid", "id_token": "eyJ.i"}),
        "invalid_grant": (400, {"error": "invalid_grant", "error_description": "grant request is invalid"}),
        "invalid_client": (401, {"error": "invalid_client"}),
        "temporarily_unavailable": (400, {"error": "temporarily_unavailable"}),
        "server_error": (503, {"error": "server_error"}),
        "float_expiry": (201, {"access_token": "x", "expires_in": 1.5e3}),
    }
    for name, (status, body) in oauth2.items():
        write("idp_response", f"oauth2_{name}", ir(1, status, json.dumps(body).encode()))
    write("idp_response", "html_502", ir(0, 502, b"<html>Bad Gateway</html>"))
    write("idp_response", "truncated", ir(0, 200, b'{"isSuccess":true,"value":{"access_tok'))
    write("idp_response", "waf_400", ir(1, 400, b"<html>waf</html>"))

    # config_parse: TOML text
    write("config_parse", "example", (REPO / "config" / "token-handler.toml").read_bytes())
    write("config_parse", "minimal", b'[upstream]\nurl = "http://127.0.0.1:3000"\n[idp]\ndialect = "tokenidp"\nissuer = "https://idp.example.com"\nclient_id = "spa"\nredirect_uri = "https://app.example.com/auth/callback"\n')
    write("config_parse", "demo", b"""[server]
listen = "127.0.0.1:8080"
shutdown_grace = "2s"
[upstream]
url = "http://127.0.0.1:3001"
[idp]
dialect = "tokenidp"
issuer = "http://127.0.0.1:3002"
client_id = "tokenidp-react-dev"
client_auth = "basic"
scope = "openid profile email offline_access api.read"
redirect_uri = "http://localhost:8080/auth/callback"
post_logout_redirect_uri = "http://localhost:8080/"
extra_authorize_params = { prompt = "login" }
[session]
refresh_skew = "2s"
lifetime = "12h"
same_site = "lax"
[proxy]
protected_paths = ["/api/"]
public_paths = ["/api/public/"]
[csrf]
allowed_origins = ["https://app.example.com"]
[log]
format = "json"
""")
    write("config_parse", "problems", b'[server]\nlisten = "nope"\nlisen = "typo"\n[upstream]\nconnect_timeout = "soon"\n[idp]\ndialect = "saml"\nclient_auth = "basic"\n[session]\nhost_prefix = true\nsecure = false\n[wat]\n')
    edge_normalization()


def edge_normalization() -> None:
    """edge_normalization: selector (even: return_to, odd: request path) | text."""
    rt = lambda text: b"\0" + text.encode()
    path = lambda text: b"\1" + text.encode()
    seeds = {
        # return_to: the open-redirect shapes, and ordinary destinations
        "rt_dot_slash_slash": rt("/.//evil.example"),
        "rt_dotdot_slash_slash": rt("/a/..//evil.example"),
        "rt_encoded_dot": rt("/%2e//evil.example"),
        "rt_encoded_slashes": rt("/%2F%2Fevil.example"),
        "rt_backslash_escape": rt("/%5Cevil.example"),
        "rt_absolute_other_host": rt("https://evil.example/x"),
        "rt_absolute_same_origin": rt("https://app.example.com/orders?id=7#top"),
        "rt_plain": rt("/dashboard?tab=a+b&x=1#frag"),
        "rt_relative": rt("orders/../list"),
        "rt_utf8": rt("/caf\u00e9/%C3%A9?q=\u00fc"),
        # request paths: the access-control shapes, and ordinary paths
        "path_dotdot": path("/api/public/../admin"),
        "path_encoded_dotdot": path("/api/public/%2e%2e/admin"),
        "path_encoded_slash": path("/api/public%2F..%2Fadmin"),
        "path_double_slash": path("//api/admin"),
        "path_unreserved_escape": path("/%61pi/admin"),
        "path_param_dotdot": path("/api/public;/../admin"),
        "path_double_encoded": path("/api/%252e%252e/x"),
        "path_public": path("/api/public/items;v=1/"),
        "path_reserved_escapes": path("/api/orders/a%20b/%C3%A9%3B"),
        "path_root": path("/"),
        "path_utf8": path("/api/caf\u00e9/%7Euser"),
    }
    for name, data in seeds.items():
        write("edge_normalization", name, data)


if __name__ == "__main__":
    main()
