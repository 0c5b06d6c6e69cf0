"""User destinations with stomp.py (STOMP 1.0 / 1.1 / 1.2 over plain TCP).

alice subscribes to /user/queue/py.inbox from one connection per STOMP version; a backend (svc,
granted /user/*/queue/# in the ACL) sends to /user/alice/queue/py.inbox: every one of alice's
connections gets it with the destination it subscribed to, bob gets nothing. Refusals: bob may not
send to alice, alice may not subscribe to bob's, an anonymous session may not use /user/ at all.
"""
import base64
import hashlib
import os
import shutil
import tempfile
import unittest

from stompws_testlib import Broker, Client

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "svc": "svc-pw"}


def users_entry(user, password, iterations=1000):
    """A users-file line as a provisioning tool writes it (docs/SECURITY.md)."""
    salt = os.urandom(16)
    dk = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    b64 = lambda b: base64.b64encode(b).decode().rstrip("=")  # noqa: E731
    return "%s:$pbkdf2-sha256$%d$%s$%s\n" % (user, iterations, b64(salt), b64(dk))


class UserDestinationTests(unittest.TestCase):
    def setUp(self):
        self.files = tempfile.mkdtemp(prefix="stompws-py-user-")
        self.addCleanup(shutil.rmtree, self.files, True)
        users = os.path.join(self.files, "users")
        with open(users, "w") as f:
            f.write("".join(users_entry(u, p) for u, p in PASSWORDS.items()))
        acl = os.path.join(self.files, "acl")
        with open(acl, "w") as f:
            f.write("svc write /user/*/queue/#\n* read,write /topic/#\n")
        self.broker = Broker(extra_args=["--users", users, "--acl", acl, "--anonymous", "on"])
        self.clients = []
        self.failed = False  # set by run.py's result on a failure: keeps the broker log
        self.addCleanup(lambda: self.failed or self.broker.cleanup())

    def tearDown(self):
        for c in self.clients:
            c.close()
        code = self.broker.stop()
        self.assertEqual(code, 0, "broker did not exit 0 on SIGTERM (exit status %s)" % code)

    def client(self, user=None, version="1.2"):
        c = Client(self.broker, version=version, name="%s-%s" % (user or "anon", version),
                   login=user, passcode=PASSWORDS.get(user))
        self.clients.append(c)
        return c

    def test_every_session_of_the_user_gets_it(self):
        alices = []
        for v in ("1.0", "1.1", "1.2"):
            c = self.client("alice", v)
            c.subscribe("/user/queue/py.inbox", "in-%s" % v)
            alices.append(c)
        bob = self.client("bob")
        bob.subscribe("/user/queue/py.inbox", "in")
        svc = self.client("svc")
        svc.send("/user/alice/queue/py.inbox", "for alice")
        for c in alices:
            (m,) = c.rec.wait_messages(1)
            self.assertEqual(m.body, "for alice")
            self.assertEqual(m.headers.get("destination"), "/user/queue/py.inbox")
        self.assertTrue(bob.rec.quiet(0.3, 0), "bob gets none of alice's messages")

    def test_refusals(self):
        bob = self.client("bob")
        bob.conn.send("/user/alice/queue/py.inbox", "x")
        err = bob.rec.wait_error()
        self.assertIn("permission denied: cannot write", err.headers.get("message"))

        alice = self.client("alice")
        alice.conn.subscribe("/user/bob/queue/py.inbox", id="peek")
        err = alice.rec.wait_error()
        self.assertIn("another user's destination", err.headers.get("message"))

        anon = self.client(None)
        anon.conn.subscribe("/user/queue/py.inbox", id="s")
        err = anon.rec.wait_error()
        self.assertIn("anonymous sessions cannot use /user/", err.headers.get("message"))


if __name__ == "__main__":
    unittest.main()
