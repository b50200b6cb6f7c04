"""Verifies a signed prognos remediation call (scheme v1) in Python.

`verify` is the whole check; keep also each accepted (signature, Idempotency-Key)
for the tolerance window and refuse a call that repeats either (a replay).
Run as a script, it reads {"secret", "method", "path", "headers", "body", "now"}
as JSON on stdin and prints "verified" (exit 0) or "rejected" (exit 1); the
prognos tests drive it that way against real signed calls.
"""
import hashlib, hmac, json, sys, time


def verify(secret, method, path, headers, body, tolerance=300, now=None):
    """True if the call is fresh and signed with `secret` (bytes); `path` includes any ?query."""
    ts, key = headers.get("X-Prognos-Timestamp", ""), headers.get("Idempotency-Key", "")
    now = time.time() if now is None else now
    if not (ts.isascii() and ts.isdigit()) or not key or abs(now - int(ts)) > tolerance:
        return False
    msg = b"\n".join([b"v1", method.encode(), path.encode(), ts.encode(), key.encode(), body])
    want = hmac.new(secret, msg, hashlib.sha256).hexdigest().encode()
    sigs = [s.strip() for s in headers.get("X-Prognos-Signature", "").split(",")]
    return any(s.startswith("v1=") and hmac.compare_digest(want, s[3:].lower().encode()) for s in sigs)


if __name__ == "__main__":
    call = json.load(sys.stdin)
    ok = verify(call["secret"].encode(), call["method"], call["path"], call["headers"],
                call["body"].encode(), now=call.get("now"))
    print("verified" if ok else "rejected")
    sys.exit(0 if ok else 1)
