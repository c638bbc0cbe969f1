"""An HTTP/1.1 app whose responses are framed two ways at once, as a broken app or a smuggling
attempt frames them.

Listens on 127.0.0.1:$ASPNETCORE_PORT and keeps each connection alive. Routes:

  /both            200 with `Content-Length: 5` and `Transfer-Encoding: chunked`, and a chunked
                   body of 26 bytes (the alphabet): read as chunked (RFC 9112 §6.3), the whole
                   alphabet is the body; read by the Content-Length, only "abcde"
  /early-hints     103 Early Hints, then 200 "ok": the informational response is skipped
  /extensions      a chunked "hello" with chunk extensions and a trailer field
  /until-close     200 with no framing at all: the body is what comes until the app closes
  /reason          200 with the reason phrase "Fine Thanks"
  /case            200 with a header named `X-Written-As`: the lean path passes names on as
                   written, hyper's path in lower case
  /bad-chunk       200 chunked, one good chunk, then a chunk size that is not hex
  /iisintegration  accepts ANCM's shutdown message (202) and exits
  anything else    200 "ok <path>", after reading the declared body
"""
import os
import sys

from rawhttp import serve_forever


def answer(conn, reader, method, path, length):
    if length:
        reader.read(length)
    if path == "/both":
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"d\r\nabcdefghijklm\r\nd\r\nnopqrstuvwxyz\r\n0\r\n\r\n"
        )
        return True
    if path == "/early-hints":
        conn.sendall(
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        )
        return True
    if path == "/extensions":
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3;name=value\r\nhel\r\n2 ; quoted=\"a b\"\r\nlo\r\n0\r\nX-Checksum: abc\r\n\r\n"
        )
        return True
    if path == "/until-close":
        conn.sendall(b"HTTP/1.1 200 OK\r\n\r\nall of this, until the app closes")
        return False
    if path == "/reason":
        conn.sendall(b"HTTP/1.1 200 Fine Thanks\r\nContent-Length: 0\r\n\r\n")
        return True
    if path == "/case":
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Written-As: This\r\nContent-Length: 2\r\n\r\nok")
        return True
    if path == "/bad-chunk":
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"
        )
        return False
    if path == "/iisintegration":
        conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
        os._exit(0)
    body = f"ok {path}".encode()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    return True


if __name__ == "__main__":
    sys.exit(serve_forever(answer, lambda line: print(f"framing: {line}", flush=True)))
