"""stomp.py (STOMP 1.0 / 1.1 / 1.2 over plain TCP) against a real stompws process.

Each test starts its own broker; tearDown closes the clients, sends SIGTERM and fails the test
unless the broker exits 0 (graceful shutdown; under AddressSanitizer also: no leaks).
"""
import threading
import time
import unittest

from stompws_testlib import Broker, Client

VERSIONS = ("1.0", "1.1", "1.2")


class BrokerTestCase(unittest.TestCase):
    settings = None

    def setUp(self):
        self.broker = Broker(self.settings)
        self.clients = []
        self.failed = False  # set by run.py's result on a failure: keeps the broker log
        self.addCleanup(lambda: self.failed or self.broker.cleanup())

    def tearDown(self):
        for c in self.clients:
            c.close()
        code = self.broker.stop()
        self.assertEqual(code, 0, "broker did not exit 0 on SIGTERM (exit status %s)" % code)

    def client(self, version="1.2", name=None, **kw):
        c = Client(self.broker, version=version, name=name, **kw)
        self.clients.append(c)
        return c


class VersionTests(BrokerTestCase):
    """Generated per STOMP version below: test_<name>_v10 / _v11 / _v12."""

    def check_connect(self, v):
        c = self.client(v)
        h = c.connected.headers
        self.assertEqual(h.get("version"), v)
        self.assertTrue(h.get("server", "").startswith("stompws/"), h)
        self.assertTrue(h.get("session"), h)

    def check_pubsub_headers(self, v):
        sub = self.client(v, "sub")
        pub = self.client(v, "pub")
        dest = "/topic/py.headers"
        sub.subscribe(dest, "s-%s" % v)
        pub.send(dest, "hello from stomp.py %s" % v, headers={"x-custom": "yes", "x-number": "42"},
                 content_type="text/plain")
        (m,) = sub.rec.wait_messages(1)
        self.assertEqual(m.body, "hello from stomp.py %s" % v)
        self.assertEqual(m.headers.get("destination"), dest)
        self.assertEqual(m.headers.get("x-custom"), "yes")
        self.assertEqual(m.headers.get("x-number"), "42")
        self.assertEqual(m.headers.get("content-type"), "text/plain")
        self.assertTrue(m.headers.get("message-id"))
        self.assertEqual(m.headers.get("subscription"), "s-%s" % v)

    def check_receipts(self, v):
        c = self.client(v)
        c.frame_with_receipt(lambda h: c.conn.subscribe("/topic/py.r", id="s1", headers=h))
        c.frame_with_receipt(lambda h: c.conn.send("/topic/py.r", "x", headers=h))
        c.frame_with_receipt(lambda h: c.conn.begin("tx-r", headers=h))
        c.frame_with_receipt(lambda h: c.conn.commit("tx-r", headers=h))
        if v == "1.0":
            c.frame_with_receipt(lambda h: c.conn.unsubscribe(id="s1", headers=h))
        else:
            c.frame_with_receipt(lambda h: c.conn.unsubscribe("s1", headers=h))
        c.disconnect()
        self.assertTrue(c.rec.disconnected)

    def check_transactions(self, v):
        sub = self.client(v, "sub")
        pub = self.client(v, "pub")
        sub.subscribe("/queue/py.tx", "s")
        tx = "tx-commit-%s" % v
        pub.frame_with_receipt(lambda h: pub.conn.begin(tx, headers=h))
        pub.send("/queue/py.tx", "one", headers={"transaction": tx})
        pub.send("/queue/py.tx", "two", headers={"transaction": tx})
        self.assertTrue(sub.rec.quiet(0.4, 0), "nothing delivered before COMMIT")
        pub.frame_with_receipt(lambda h: pub.conn.commit(tx, headers=h))
        self.assertEqual([m.body for m in sub.rec.wait_messages(2)], ["one", "two"])
        tx2 = "tx-abort-%s" % v
        pub.frame_with_receipt(lambda h: pub.conn.begin(tx2, headers=h))
        pub.send("/queue/py.tx", "aborted", headers={"transaction": tx2})
        pub.frame_with_receipt(lambda h: pub.conn.abort(tx2, headers=h))
        pub.send("/queue/py.tx", "marker")
        msgs = sub.rec.wait_messages(3)
        self.assertEqual(msgs[2].body, "marker")
        self.assertTrue(sub.rec.quiet(0.3, 3), "the aborted SEND never arrives")

    def check_queue_round_robin(self, v):
        a = self.client(v, "A")
        b = self.client(v, "B")
        a.subscribe("/queue/py.rr", "a")
        b.subscribe("/queue/py.rr", "b")
        pub = self.client(v, "pub")
        for i in range(10):
            pub.send("/queue/py.rr", "m%d" % i)
        ma = [m.body for m in a.rec.wait_messages(5)]
        mb = [m.body for m in b.rec.wait_messages(5)]
        self.assertTrue(a.rec.quiet(0.3, 5) and b.rec.quiet(0, 5), "no consumer gets more than its share")
        self.assertEqual(sorted(ma + mb), sorted("m%d" % i for i in range(10)))
        self.assertEqual(ma, sorted(ma, key=lambda s: int(s[1:])), "each consumer sees publish order")

    def check_ack_redelivery(self, v):
        pub = self.client(v, "pub")
        c1 = self.client(v, "c1")
        if v == "1.0":
            # 1.0 has ack:client (cumulative) and no NACK: ack the first, drop the connection.
            c1.subscribe("/queue/py.ack", "s1", ack="client")
            for i in range(3):
                pub.send("/queue/py.ack", "a%d" % i)
            msgs = c1.rec.wait_messages(3)
            c1.ack(msgs[0])
            c1.disconnect()
            c2 = self.client(v, "c2")
            c2.subscribe("/queue/py.ack", "s2", ack="client")
            re = c2.rec.wait_messages(2)
            self.assertEqual([m.body for m in re], ["a1", "a2"])
            for m in re:
                self.assertEqual(m.headers.get("redelivered"), "true")
            self.assertTrue(c2.rec.quiet(0.3, 2))
            return
        c1.subscribe("/queue/py.ack", "s1", ack="client-individual")
        for i in range(3):
            pub.send("/queue/py.ack", "a%d" % i)
        msgs = c1.rec.wait_messages(3)
        if v == "1.2":
            for m in msgs:
                self.assertIn("ack", m.headers, "1.2 MESSAGE carries an ack header")
        c1.ack(msgs[0])
        c1.ack(msgs[2])
        c1.nack(msgs[1])
        (again,) = c1.rec.wait_messages(4)[3:]
        self.assertEqual(again.body, "a1")
        self.assertEqual(again.headers.get("redelivered"), "true")
        c1.ack(again)
        c1.disconnect()
        c2 = self.client(v, "c2")
        c2.subscribe("/queue/py.ack", "s2")
        self.assertTrue(c2.rec.quiet(0.4, 0), "all were acked: nothing left to redeliver")


def _make(check_name, v):
    def test(self):
        getattr(self, check_name)(v)
    test.__name__ = "test_%s_v%s" % (check_name[len("check_"):], v.replace(".", ""))
    test.__doc__ = "%s over STOMP %s" % (check_name[len("check_"):].replace("_", " "), v)
    return test


for _name in [n for n in dir(VersionTests) if n.startswith("check_")]:
    for _v in VERSIONS:
        _t = _make(_name, _v)
        setattr(VersionTests, _t.__name__, _t)


class MoreTests(BrokerTestCase):

    def test_binary_body_byte_exact(self):
        sub = self.client("1.2", "sub", auto_decode=False)
        pub = self.client("1.2", "pub", auto_decode=False)
        sub.subscribe("/topic/py.bin", "s")
        body = bytes(range(256)) * 64 + b"\x00\x00end"
        pub.send("/topic/py.bin", body, headers={"content-type": "application/octet-stream"})
        (m,) = sub.rec.wait_messages(1)
        self.assertEqual(m.body, body)
        self.assertEqual(m.headers.get("content-length"), str(len(body)))

    def test_header_escaping_round_trip(self):
        sub = self.client("1.2", "sub")
        pub = self.client("1.2", "pub")
        sub.subscribe("/topic/py.esc", "s")
        pub.send("/topic/py.esc", "x", headers={"x-tricky": "a:b\\c"})
        (m,) = sub.rec.wait_messages(1)
        self.assertEqual(m.headers.get("x-tricky"), "a:b\\c")

    def test_unknown_destination_prefix_error(self):
        c = self.client("1.2")
        c.conn.send("/foo/bar", "x")
        err = c.rec.wait_error()
        msg = err.headers.get("message", "")
        for p in ("/topic/", "/queue/", "/temp-queue/", "/reply-queue/", "/user/"):
            self.assertIn(p, msg)
        c.rec.wait_disconnected()

    def test_queue_messages_wait_for_consumer(self):
        pub = self.client("1.1", "pub")
        for i in range(3):
            pub.send("/queue/py.wait", "w%d" % i)
        c = self.client("1.2", "c")
        c.subscribe("/queue/py.wait", "s")
        self.assertEqual([m.body for m in c.rec.wait_messages(3)], ["w0", "w1", "w2"])

    def test_many_messages_in_order(self):
        sub = self.client("1.2", "sub")
        pub = self.client("1.2", "pub")
        sub.subscribe("/topic/py.many", "s")
        for i in range(500):
            pub.conn.send("/topic/py.many", "n%d" % i)
        pub.send("/topic/py.other", "fence")
        msgs = sub.rec.wait_messages(500, timeout=30)
        self.assertEqual([m.body for m in msgs], ["n%d" % i for i in range(500)])

    def test_concurrent_publishers(self):
        sub = self.client("1.2", "sub")
        sub.subscribe("/topic/py.conc", "s")
        pubs = [self.client("1.2", "p%d" % i) for i in range(3)]

        def run(p, tag):
            for i in range(100):
                p.conn.send("/topic/py.conc", "%s-%d" % (tag, i))

        threads = [threading.Thread(target=run, args=(p, "p%d" % i)) for i, p in enumerate(pubs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        msgs = [m.body for m in sub.rec.wait_messages(300, timeout=30)]
        for tag in ("p0", "p1", "p2"):
            mine = [b for b in msgs if b.startswith(tag + "-")]
            self.assertEqual(mine, ["%s-%d" % (tag, i) for i in range(100)], "per-publisher order")


class HeartbeatTests(BrokerTestCase):
    settings = {"heartbeat.min_ms": 500, "heartbeat.send_ms": 500, "heartbeat.receive_ms": 500}

    def test_heartbeats_keep_idle_connection(self):
        c = self.client("1.2", heartbeats=(500, 500))
        hb = c.connected.headers.get("heart-beat", "")
        self.assertRegex(hb, r"^\d+,\d+$")
        time.sleep(3)
        self.assertTrue(c.conn.is_connected(), "still connected after 3 s idle")
        self.assertFalse(c.rec.disconnected)
        self.assertGreaterEqual(len(c.rec.heartbeats), 2, "server heart-beats arrived")
        c.subscribe("/topic/py.hb", "s")
        c.send("/topic/py.hb", "alive")
        self.assertEqual(c.rec.wait_messages(1)[0].body, "alive")


class HistoryTests(BrokerTestCase):
    """x-stream-offset with stomp.py: the last value, then a resume by offset (docs/HISTORY.md)."""
    settings = {"history.policy": "/topic/py.stocks.*=10"}

    def test_last_value_and_resume_by_offset(self):
        pub = self.client("1.2", "pub")
        for i in range(3):
            pub.send("/topic/py.stocks.acme", "price-%d" % i)
        sub = self.client("1.2", "sub")
        sub.subscribe("/topic/py.stocks.*", "s", headers={"x-stream-offset": "last"})
        (m,) = sub.rec.wait_messages(1)
        self.assertEqual(m.body, "price-2")
        self.assertEqual(m.headers.get("x-stream-offset"), "3")
        epoch = m.headers.get("x-stream-epoch")
        self.assertRegex(epoch, r"^[0-9a-f]{8}$")
        # Offline for a while: two more prices; then resume after offset 3.
        sub.close()
        pub.send("/topic/py.stocks.acme", "price-3")
        pub.send("/topic/py.stocks.acme", "price-4")
        again = self.client("1.2", "again")
        r = again.receipt()
        again.conn.subscribe("/topic/py.stocks.acme", id="s", ack="auto",
                             headers={"receipt": r, "x-stream-offset": "offset=4",
                                      "x-stream-epoch": epoch})
        again.rec.wait_receipt(r)
        self.assertEqual(again.rec.receipt_headers[r].get("x-stream-recovered"), "true")
        got = again.rec.wait_messages(2)
        self.assertEqual([(f.body, f.headers.get("x-stream-offset")) for f in got],
                         [("price-3", "4"), ("price-4", "5")])
        self.assertTrue(again.rec.quiet(0.2, 2), "nothing more")


if __name__ == "__main__":
    unittest.main()
