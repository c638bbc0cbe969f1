"""An HTTP/1.1 app that leaves bytes on its keep-alive connection after a response, as a broken
app does: the next request on that connection would get them as its answer.

Listens on 127.0.0.1:$ASPNETCORE_PORT and keeps each connection alive. What it sends past a
response is itself a whole response, 200 "stolen", so a proxy that reuses the connection hands
it to the next client as that client's answer. Routes for tests, whose stray bytes are already
in the proxy's socket when the response ends (the response fills exactly the 8 KiB the proxy
reads at once, the stray bytes go in the same write), or come late:

  GET  /overlong   a body of its Content-Length, then the stray response
  HEAD /head-body  a head (Content-Length of the stray response), then the stray response
  GET  /ambiguous  Transfer-Encoding: chunked and Content-Length both, a chunked "hello",
                   then, 0.2 s later, the stray response
  POST /unread     answers "unread" before reading the declared body and never reads it: it
                   sends all but the last byte, waits until the body is there, sends the last
                   byte; the body is then read as the start of the next request

Routes for bench/leftover.py, as a compiled app misbehaving under load does (stray bytes in a
write of their own, right after the response). With LEFTOVER_LOOP=1 in its environment the app
serves every connection from one thread, so that nothing runs between the two writes:

  GET  /late/overlong   "overlong" by its Content-Length, then the stray response
  HEAD /late/head-body  a head, then the stray response
  POST /late/unread     answers "unread" without reading the body; the body (the client's) is
                        then read as the next request

  /iisintegration  accepts ANCM's shutdown message (202) and exits
  anything else    200 "ok <path>", after reading the declared body
"""
import os
import selectors
import socket
import sys
import time

from rawhttp import serve_forever

STRAY = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nstolen"

# What the proxy reads from the app at once (exchange.rs READ_PIECE).
PIECE = 8192


def padded_response():
    """A 200 with a body of x's, exactly PIECE bytes in all."""
    for n in range(PIECE, 0, -1):
        head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n
        if len(head) + n == PIECE:
            return head + b"x" * n
    raise ValueError("no padding fits")


def padded_head(length):
    """A 200 head declaring `length`, padded to exactly PIECE bytes."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Pad: " % length
    return head + b"p" * (PIECE - len(head) - 4) + b"\r\n\r\n"


def late(path):
    """The writes that answer a /late route, or None for another route."""
    if path == "/late/overlong":
        return [b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\noverlong", STRAY]
    if path == "/late/head-body":
        return [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(STRAY), STRAY]
    if path == "/late/unread":
        return [b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nunread"]
    return None


def serve_loop():
    """The /late routes and the plain answer, every connection served from one thread."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(os.environ["ASPNETCORE_PORT"])))
    listener.listen(1024)
    print(f"leftover: listening on {listener.getsockname()[1]} (one thread)", flush=True)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    bufs = {}
    while True:
        for key, _ in sel.select():
            if key.fileobj is listener:
                conn, _ = listener.accept()
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sel.register(conn, selectors.EVENT_READ)
                bufs[conn] = b""
                continue
            conn = key.fileobj
            try:
                data = conn.recv(65536)
                if data:
                    bufs[conn] = answer_all(conn, bufs[conn] + data)
            except (OSError, ValueError, IndexError):
                # A proxy that closed this connection, or bytes no request starts with.
                data = b""
            if not data:
                sel.unregister(conn)
                del bufs[conn]
                conn.close()


def answer_all(conn, buf):
    """Answers every whole request at the start of `buf`; returns what is left of it."""
    while b"\r\n\r\n" in buf:
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        writes = late(path)
        if path == "/late/unread":
            # The body stays, to be read as the next request.
            buf = rest
        elif len(rest) < length:
            break
        else:
            buf = rest[length:]
        if path == "/iisintegration":
            conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
            os._exit(0)
        if writes is None:
            body = f"ok {path}".encode()
            writes = [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body]
        for write in writes:
            conn.sendall(write)
    return buf


def answer(conn, reader, method, path, length):
    if path == "/overlong":
        conn.sendall(padded_response() + STRAY)
        return True
    if path == "/head-body":
        conn.sendall(padded_head(len(STRAY)) + STRAY)
        return True
    if path == "/ambiguous":
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n"
        )
        time.sleep(0.2)
        conn.sendall(STRAY)
        return True
    if path == "/unread":
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nunrea")
        # Waits for the body without taking it.
        reader.peek(1)
        conn.sendall(b"d")
        return True
    if path.startswith("/late/"):
        for write in late(path):
            conn.sendall(write)
        return True
    if path == "/iisintegration":
        conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
        os._exit(0)
    if length:
        reader.read(length)
    body = f"ok {path}".encode()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    return True


if __name__ == "__main__":
    if os.environ.get("LEFTOVER_LOOP") == "1":
        serve_loop()
    sys.exit(serve_forever(answer, lambda line: print(f"leftover: {line}", flush=True)))
