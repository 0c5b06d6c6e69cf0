"""A STOMP subscriber over TCP that stops reading, for the slow-consumer tests (faults.test.mjs).

Usage: slow_reader.py PORT DESTINATION
It connects with a 4 KiB receive buffer (so the kernel holds little of what the broker sends),
subscribes, prints "ready", and reads nothing until a line arrives on stdin. Then it reads
everything to the end of the connection (at most 20 s) and prints one JSON line: the MESSAGE
count, the bytes read after resuming, the bytes that came before the ERROR, the ERROR's message
header, and whether the ERROR was the last frame.
"""
import json
import socket
import sys
import time


def unescape(value):
    """A STOMP 1.2 header value as written: \\c is ':', \\n a newline, \\\\ a backslash."""
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            out.append({"c": ":", "n": "\n", "r": "\r", "\\": "\\"}.get(value[i + 1], value[i + 1]))
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def frames(data):
    """Splits a STOMP byte stream into (command, headers, offset-of-frame-end) tuples."""
    out = []
    pos = 0
    while pos < len(data):
        while pos < len(data) and data[pos:pos + 1] in (b"\n", b"\r"):
            pos += 1  # heart-beats
        end = data.find(b"\0", pos)
        if end < 0:
            break
        head = data[pos:end].split(b"\n\n", 1)[0].decode("utf-8", "replace").split("\n")
        headers = {}
        for line in head[1:]:
            key, _, value = line.partition(":")
            headers.setdefault(key, unescape(value))
        out.append((head[0], headers, end + 1))
        pos = end + 1
    return out


def read_frame(sock):
    data = b""
    while b"\0" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("connection closed during set-up")
        data += chunk
    return data


def main():
    port, destination = int(sys.argv[1]), sys.argv[2]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"CONNECT\naccept-version:1.2\nhost:127.0.0.1\nheart-beat:0,0\n\n\0")
    read_frame(sock)
    sock.sendall(("SUBSCRIBE\nid:s\ndestination:%s\nreceipt:sub\n\n\0" % destination).encode())
    read_frame(sock)
    print("ready", flush=True)
    sys.stdin.readline()
    data = b""
    deadline = time.monotonic() + 20
    sock.settimeout(1)
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    parsed = frames(data)
    errors = [i for i, f in enumerate(parsed) if f[0] == "ERROR"]
    result = {
        "messages": sum(1 for f in parsed if f[0] == "MESSAGE"),
        "bytes": len(data),
        "error": parsed[errors[0]][1].get("message") if errors else None,
        "bytes_before_error": (parsed[errors[0] - 1][2] if errors[0] > 0 else 0) if errors else None,
        "error_last": bool(errors) and errors[0] == len(parsed) - 1,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
