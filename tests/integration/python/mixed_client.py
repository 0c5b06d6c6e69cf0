"""stomp.py side of the mixed-transport tests (driven by mixed.test.mjs).

  mixed_client.py send PORT VERSION DEST BODY_B64 HEADERS_JSON
      connect over TCP, SEND (with receipt), DISCONNECT; prints "SENT"
  mixed_client.py recv PORT VERSION DEST COUNT TIMEOUT_S
      connect, SUBSCRIBE (with receipt), print "READY", then one JSON line per MESSAGE
      {"headers": {...}, "body_b64": "..."}; exits 0 after COUNT messages, 1 on time-out
"""
import base64
import json
import sys

from stompws_testlib import Client


class _Broker:
    def __init__(self, port):
        self.tcp_port = port


def main(argv):
    cmd, port, version, dest = argv[1], int(argv[2]), argv[3], argv[4]
    c = Client(_Broker(port), version=version, name="mixed-" + cmd, auto_decode=False)
    try:
        if cmd == "send":
            body = base64.b64decode(argv[5])
            headers = json.loads(argv[6])
            c.send(dest, body, headers=headers)
            print("SENT", flush=True)
            c.disconnect()
            return 0
        if cmd == "recv":
            count, timeout = int(argv[5]), float(argv[6])
            c.subscribe(dest, "mixed-sub")
            print("READY", flush=True)
            msgs = c.rec.wait_messages(count, timeout=timeout)
            for m in msgs:
                print(json.dumps({"headers": dict(m.headers),
                                  "body_b64": base64.b64encode(m.body).decode("ascii")}), flush=True)
            c.disconnect()
            return 0
        print("unknown command " + cmd, file=sys.stderr)
        return 2
    except AssertionError as e:
        print("FAILED: %s" % e, file=sys.stderr)
        return 1
    finally:
        c.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
