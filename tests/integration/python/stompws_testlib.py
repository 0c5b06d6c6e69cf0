"""Helpers for the stomp.py integration tests: a real stompws process per test and a
listener whose waits are all bounded in time.

Run with Debian's /usr/bin/python3 (python3-stomp provides stomp.py 8.0).
"""
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import stomp

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_BIN = os.path.normpath(os.path.join(HERE, "..", "..", "..", "build", "server", "stompws"))


def broker_bin():
    return os.path.abspath(os.environ.get("STOMPWS_BIN", DEFAULT_BIN))


class Broker:
    """One stompws process listening on free loopback ports."""

    def __init__(self, settings=None, extra_args=None):
        if not os.path.exists(broker_bin()):
            raise RuntimeError("broker binary not found: %s (set STOMPWS_BIN)" % broker_bin())
        self.dir = tempfile.mkdtemp(prefix="stompws-py-")
        self.log_path = os.path.join(self.dir, "broker.log")
        self.log = open(self.log_path, "wb")
        args = [broker_bin(), "--ws", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--log-level", "debug"]
        # One event loop, as the Node suites run (tests/integration/lib/broker.mjs says why).
        args += ["--threads", os.environ.get("STOMPWS_TEST_THREADS", "1")]
        merged = {"server.shutdown_timeout_ms": 2000}
        merged.update(settings or {})
        for key, value in merged.items():
            args += ["--set", "%s=%s" % (key, value)]
        args += list(extra_args or [])
        self.args = args
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.log, cwd=self.dir)
        self.stdout = ""
        self.ws_port = None
        self.tcp_port = None
        deadline = time.monotonic() + 10
        fd = self.proc.stdout.fileno()
        while self.ws_port is None or self.tcp_port is None:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise RuntimeError("broker did not print its listening lines within 10 s:\n" + self.log_tail())
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                self.kill()
                raise RuntimeError("broker exited during startup (%s):\n%s" % (self.proc.wait(), self.log_tail()))
            self.stdout += chunk.decode("utf-8", "replace")
            m = re.search(r"^listening ws 127\.0\.0\.1:(\d+)\s*$", self.stdout, re.M)
            if m:
                self.ws_port = int(m.group(1))
            m = re.search(r"^listening tcp 127\.0\.0\.1:(\d+)\s*$", self.stdout, re.M)
            if m:
                self.tcp_port = int(m.group(1))
        # Keep draining stdout so the broker never blocks on a full pipe.
        self._drain = threading.Thread(target=self._drain_stdout, daemon=True)
        self._drain.start()

    def _drain_stdout(self):
        try:
            for line in self.proc.stdout:
                self.stdout += line.decode("utf-8", "replace")
        except (OSError, ValueError):
            pass

    def stop(self, timeout=5.0):
        """SIGTERM, then SIGKILL after timeout. Returns the exit status (negative = signal)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def log_tail(self, lines=150):
        try:
            self.log.flush()
        except ValueError:
            pass
        with open(self.log_path, "rb") as f:
            text = f.read().decode("utf-8", "replace").splitlines()
        return "--- broker log (last %d of %d lines; full: %s) ---\n%s\n--- end ---" % (
            min(lines, len(text)), len(text), self.log_path, "\n".join(text[-lines:]))

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class Recorder(stomp.ConnectionListener):
    """Records every frame; waits are bounded and raise AssertionError on time-out."""

    def __init__(self, name="conn"):
        self.name = name
        self.cond = threading.Condition()
        self.connected = None
        self.messages = []
        self.receipts = []
        self.receipt_headers = {}  # receipt-id -> the RECEIPT's headers
        self.errors = []
        self.heartbeats = []
        self.disconnected = False

    def on_heartbeat(self):
        with self.cond:
            self.heartbeats.append(time.monotonic())

    def on_connected(self, frame):
        with self.cond:
            self.connected = frame
            self.cond.notify_all()

    def on_message(self, frame):
        with self.cond:
            self.messages.append(frame)
            self.cond.notify_all()

    def on_receipt(self, frame):
        with self.cond:
            self.receipt_headers[frame.headers.get("receipt-id")] = dict(frame.headers)
            self.receipts.append(frame.headers.get("receipt-id"))
            self.cond.notify_all()

    def on_error(self, frame):
        with self.cond:
            self.errors.append(frame)
            self.cond.notify_all()

    def on_disconnected(self):
        with self.cond:
            self.disconnected = True
            self.cond.notify_all()

    def wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: timed out after %.1f s waiting for %s (messages=%d, errors=%s)" % (
                        self.name, timeout, what, len(self.messages),
                        [dict(e.headers) for e in self.errors]))
                self.cond.wait(left)

    def wait_connected(self, timeout=5):
        self.wait(lambda: self.connected is not None or self.errors, timeout, "CONNECTED")
        if self.connected is None:
            raise AssertionError("%s: CONNECT refused: %s" % (self.name, [dict(e.headers) for e in self.errors]))
        return self.connected

    def wait_receipt(self, receipt, timeout=5):
        self.wait(lambda: receipt in self.receipts or self.errors, timeout, "RECEIPT %s" % receipt)
        if receipt not in self.receipts:
            raise AssertionError("%s: ERROR instead of RECEIPT %s: %s" % (
                self.name, receipt, [(dict(e.headers), e.body) for e in self.errors]))

    def wait_messages(self, n, timeout=5):
        self.wait(lambda: len(self.messages) >= n, timeout, "%d messages" % n)
        return list(self.messages[:n])

    def wait_error(self, timeout=5):
        self.wait(lambda: self.errors, timeout, "an ERROR frame")
        return self.errors[0]

    def wait_disconnected(self, timeout=5):
        self.wait(lambda: self.disconnected, timeout, "the connection to close")

    def quiet(self, seconds, count):
        """True if no more than count messages have arrived after waiting seconds."""
        time.sleep(seconds)
        with self.cond:
            return len(self.messages) <= count


CONNECTION_CLASSES = {
    "1.0": stomp.Connection10,
    "1.1": stomp.Connection11,
    "1.2": stomp.Connection12,
}

_seq = [0]


def next_id(prefix):
    _seq[0] += 1
    return "%s-%d" % (prefix, _seq[0])


class Client:
    """A stomp.py connection plus its Recorder."""

    def __init__(self, broker, version="1.2", name=None, auto_decode=True, heartbeats=(0, 0),
                 login=None, passcode=None):
        self.version = version
        self.name = name or "py%s" % version
        cls = CONNECTION_CLASSES[version]
        kwargs = dict(host_and_ports=[("127.0.0.1", broker.tcp_port)], auto_decode=auto_decode,
                      reconnect_attempts_max=1, timeout=5)
        if version != "1.0":
            kwargs["heartbeats"] = heartbeats
        self.conn = cls(**kwargs)
        self.rec = Recorder(self.name)
        self.conn.set_listener("rec", self.rec)
        self.conn.connect(username=login, passcode=passcode, wait=False)
        self.connected = self.rec.wait_connected()

    def receipt(self):
        return next_id("%s-r" % self.name)

    def subscribe(self, destination, sub_id, ack="auto", headers=None):
        r = self.receipt()
        h = dict(headers or {})
        h["receipt"] = r
        self.conn.subscribe(destination, id=sub_id, ack=ack, headers=h)
        self.rec.wait_receipt(r)

    def send(self, destination, body, headers=None, **kw):
        r = self.receipt()
        h = dict(headers or {})
        h["receipt"] = r
        self.conn.send(destination, body, headers=h, **kw)
        self.rec.wait_receipt(r)

    def ack(self, frame, transaction=None):
        r = self.receipt()
        h = frame.headers
        if self.version == "1.2":
            self.conn.ack(h["ack"], transaction=transaction, receipt=r)
        elif self.version == "1.1":
            self.conn.ack(h["message-id"], h["subscription"], transaction=transaction, receipt=r)
        else:
            self.conn.ack(h["message-id"], transaction=transaction, receipt=r)
        self.rec.wait_receipt(r)

    def nack(self, frame, transaction=None):
        r = self.receipt()
        h = frame.headers
        if self.version == "1.2":
            self.conn.nack(h["ack"], transaction=transaction, receipt=r)
        else:
            self.conn.nack(h["message-id"], h["subscription"], transaction=transaction, receipt=r)
        self.rec.wait_receipt(r)

    def frame_with_receipt(self, send):
        """Calls send(headers) with a fresh receipt header and waits for the RECEIPT."""
        r = self.receipt()
        send({"receipt": r})
        self.rec.wait_receipt(r)

    def disconnect(self, timeout=5):
        """DISCONNECT with a receipt; waits (bounded) for the RECEIPT and for the close."""
        r = self.receipt()
        self.conn.send_frame("DISCONNECT", {"receipt": r})
        self.rec.wait_receipt(r, timeout)
        self.rec.wait_disconnected(timeout)

    def close(self):
        """Drops the socket without blocking (stomp.py's own disconnect() can wait forever)."""
        try:
            self.conn.transport.disconnect_socket()
        except Exception:  # noqa: BLE001 - best effort during teardown
            pass
