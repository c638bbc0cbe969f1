"""An HTTP/1.1 app that misbehaves on purpose, at the byte level hyper-based apps cannot reach.

Listens on 127.0.0.1:$ASPNETCORE_PORT, checks nothing, and prints one line per request it
reads ("misbehaving: GET /path"), so tests can count what reached it. Routes:

  /abort               reset the connection without answering (as HttpContext.Abort() does)
  /garbage             answer bytes that are not HTTP, then close
  /continue-then-die   answer 100 Continue, then exit with code 3
  /iisintegration      refuse ANCM's shutdown message with 404
  anything else        200 "ok <path>", after reading the declared body
"""
import os
import socket
import struct
import sys
import threading


def say(line):
    print(f"misbehaving: {line}", flush=True)


def serve(conn):
    reader = conn.makefile("rb")
    while True:
        line = reader.readline()
        if not line:
            return
        method, path = line.decode("latin-1").split(" ")[:2]
        length = 0
        while True:
            header = reader.readline()
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        say(f"{method} {path}")
        if path == "/abort":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            return
        if path == "/garbage":
            conn.sendall(b"this is not HTTP at all\r\n\r\n")
            conn.close()
            return
        if path == "/continue-then-die":
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            os._exit(3)
        if path == "/iisintegration":
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            continue
        if length:
            reader.read(length)
        body = f"ok {path}".encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def main():
    port = int(os.environ["ASPNETCORE_PORT"])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    say(f"listening on {port}")
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
