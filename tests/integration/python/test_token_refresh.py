"""Token refresh with stomp.py (STOMP 1.0 / 1.1 / 1.2 over plain TCP; docs/SECURITY.md).

A session logged in with a short-lived JWT subscribes to /user/queue/stompws.token, gets the
warning (x-token-expires-in) refresh.warn_s seconds before exp, SENDs a new token there with a
receipt and stays connected past the first token's exp. A token for another sub is refused.
"""
import base64
import hashlib
import hmac
import json
import os
import shutil
import tempfile
import time
import unittest

from stompws_testlib import Broker, Client

DEST = "/user/queue/stompws.token"
SECRET = os.urandom(32).hex()
WARN_S = 2


def b64url(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def jwt(claims):
    """An HS256 token as a backend issues it."""
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = hmac.new(SECRET.encode(), ("%s.%s" % (head, body)).encode(), hashlib.sha256).digest()
    return "%s.%s.%s" % (head, body, b64url(sig))


class TokenRefreshTests(unittest.TestCase):
    def setUp(self):
        self.files = tempfile.mkdtemp(prefix="stompws-py-token-")
        self.addCleanup(shutil.rmtree, self.files, True)
        secret = os.path.join(self.files, "hs256")
        with open(secret, "w") as f:
            f.write(SECRET + "\n")
        self.broker = Broker(settings={"refresh.warn_s": WARN_S},
                             extra_args=["--jwt-hs256-secret-file", secret])
        self.clients = []
        self.failed = False  # set by run.py's result on a failure: keeps the broker log
        self.addCleanup(lambda: self.failed or self.broker.cleanup())

    def tearDown(self):
        for c in self.clients:
            c.close()
        code = self.broker.stop()
        self.assertEqual(code, 0, "broker did not exit 0 on SIGTERM (exit status %s)" % code)

    def client(self, token, version):
        c = Client(self.broker, version=version, name="tok-%s" % version, passcode=token)
        self.clients.append(c)
        return c

    def test_warned_refreshed_and_kept_past_exp(self):
        exp = int(time.time()) + 4
        clients = []
        for v in ("1.0", "1.1", "1.2"):
            c = self.client(jwt({"sub": "py", "exp": exp}), v)
            c.subscribe(DEST, "tok-%s" % v)
            clients.append(c)
        for c in clients:
            (m,) = c.rec.wait_messages(1, timeout=6)
            self.assertEqual(m.headers.get("destination"), DEST)
            left = int(m.headers.get("x-token-expires-in"))
            self.assertTrue(0 <= left <= WARN_S, left)
            self.assertEqual(json.loads(m.body), {"expires_in": left, "exp": exp})
            c.send(DEST, "", headers={"token": jwt({"sub": "py", "exp": exp + 60})})
        time.sleep(max(0, exp - time.time()) + 1.5)
        for c in clients:
            self.assertEqual(c.rec.errors, [], "%s: an ERROR after the refresh" % c.name)
            c.send("/topic/py.after", "still here")  # answered with a RECEIPT: still connected

    def test_another_sub_is_refused(self):
        c = self.client(jwt({"sub": "py", "exp": int(time.time()) + 60}), "1.2")
        c.conn.send(DEST, "", headers={"token": jwt({"sub": "other", "exp": int(time.time()) + 60})})
        err = c.rec.wait_error()
        self.assertIn("the new token is for another user", err.headers.get("message"))
