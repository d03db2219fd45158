#!/usr/bin/env python3
"""One request to the cmdb master's HTTPS API, signed per RFC 9421.

    python3 cmdb_signed_request.py --url https://127.0.0.1:4507 --user alice \
        --key ~/.ssh/id_ed25519 --fingerprint 6a:8e:... GET '/v1/assets?limit=5'

The user must have been added with the matching public key:
`cmdb user add alice --role reader --pubkey ~/.ssh/id_ed25519.pub`.
Prints the status line, then the JSON body; exits 1 on a 4xx or 5xx.
Needs the `cryptography` package (pip install cryptography).
"""
import argparse
import base64
import hashlib
import http.client
import json
import secrets
import ssl
import sys
import time
import urllib.parse

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sf_string(s: str) -> str:
    """An RFC 8941 structured-field string: quoted, with \\ and " escaped."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sign(key, user, method, target_uri, body):
    """The three headers of a signed request (see docs/api.md)."""
    digest = "sha-256=:" + b64(hashlib.sha256(body).digest()) + ":"
    params = ('("@method" "@target-uri" "content-digest")'
              f";created={int(time.time())};keyid={sf_string(user)}"
              f";nonce={sf_string(secrets.token_hex(16))};alg=\"ed25519\"")
    # The signature base: one line per covered component, then the
    # parameters; joined by "\n" with no newline at the end.
    base = "\n".join([
        f'"@method": {method}',
        f'"@target-uri": {target_uri}',
        f'"content-digest": {digest}',
        f'"@signature-params": {params}',
    ])
    signature = key.sign(base.encode("utf-8"))
    return {
        "Content-Digest": digest,
        "Signature-Input": "sig1=" + params,
        "Signature": "sig1=:" + b64(signature) + ":",
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="https://HOST:PORT of the master's API")
    p.add_argument("--user", required=True, help="the cmdb user name (the keyid)")
    p.add_argument("--key", required=True, help="OpenSSH ed25519 private key, no passphrase")
    pin = p.add_mutually_exclusive_group(required=True)
    pin.add_argument("--fingerprint", help="SHA-256 of the master's certificate, aa:bb:...")
    pin.add_argument("--insecure", action="store_true", help="do not check the certificate")
    p.add_argument("--data", help="request body (JSON) for POST, PUT or PATCH")
    p.add_argument("method", help="GET, POST, PATCH, DELETE, ...")
    p.add_argument("path", help="path and query, e.g. /v1/jobs?limit=5")
    args = p.parse_args()

    with open(args.key, "rb") as f:
        key = serialization.load_ssh_private_key(f.read(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        sys.exit(f"{args.key}: not an ed25519 key")

    url = urllib.parse.urlsplit(args.url)
    if url.scheme != "https" or not url.hostname:
        sys.exit("--url must be https://HOST[:PORT]")
    if not args.path.startswith("/"):
        sys.exit("the path must start with /")
    method = args.method.upper()
    body = args.data.encode("utf-8") if args.data is not None else b""
    # The master rebuilds @target-uri from the Host header, so send the
    # host exactly as it appears in the signed URI.
    host = url.netloc
    headers = sign(key, args.user, method, f"https://{host}{args.path}", body)
    headers["Host"] = host
    headers["Accept"] = "application/json"
    if body:
        headers["Content-Type"] = "application/json"

    # The master's certificate is self-signed: no CA can vouch for it, so
    # either pin its fingerprint (checked below) or, for a demo, skip checks.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(url.hostname, url.port or 443, context=ctx, timeout=30)
    conn.connect()
    if not args.insecure:
        seen = hashlib.sha256(conn.sock.getpeercert(binary_form=True)).hexdigest()
        wanted = args.fingerprint.replace(":", "").lower()
        if seen != wanted:
            sys.exit(f"the master's certificate (sha-256 {seen}) is not the pinned one")

    # Nothing is sent before the certificate has been checked.
    conn.request(method, args.path, body=body or None, headers=headers)
    resp = conn.getresponse()
    text = resp.read().decode("utf-8", "replace")
    conn.close()
    print(resp.status, resp.reason)
    try:
        print(json.dumps(json.loads(text), indent=2))
    except ValueError:
        print(text)
    return 0 if resp.status < 400 else 1


if __name__ == "__main__":
    sys.exit(main())
