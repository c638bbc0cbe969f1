"""An HTTP/1.1 app that misbehaves on purpose, at the byte level hyper-based apps cannot reach.

Listens on 127.0.0.1:$ASPNETCORE_PORT, checks nothing, and prints one line per request it
reads ("misbehaving: GET /path"), so tests can count what reached it. Routes:

  /abort               reset the connection without answering (as HttpContext.Abort() does)
  /garbage             answer bytes that are not HTTP, then close
  /continue-then-die   answer 100 Continue, then exit with code 3
  /iisintegration      refuse ANCM's shutdown message with 404
  /early               answer 200 "early" before reading the declared body, then read it
  anything else        200 "ok <path>", after reading the declared body
"""
import os
import socket
import struct
import sys

from rawhttp import serve_forever


def say(line):
    print(f"misbehaving: {line}", flush=True)


def answer(conn, reader, method, path, length):
    say(f"{method} {path}")
    if path == "/abort":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        return False
    if path == "/garbage":
        conn.sendall(b"this is not HTTP at all\r\n\r\n")
        conn.close()
        return False
    if path == "/continue-then-die":
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        os._exit(3)
    if path == "/iisintegration":
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        return True
    if path == "/early":
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly")
        if length:
            reader.read(length)
        return True
    if length:
        reader.read(length)
    body = f"ok {path}".encode()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    return True


if __name__ == "__main__":
    sys.exit(serve_forever(answer, say))
