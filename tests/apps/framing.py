"""An HTTP/1.1 app whose responses are framed two ways at once, as a broken app or a smuggling
attempt frames them.

Listens on 127.0.0.1:$ASPNETCORE_PORT and keeps each connection alive. Routes:

  /both            200 with `Content-Length: 5` and `Transfer-Encoding: chunked`, and a chunked
                   body of 26 bytes (the alphabet): read as chunked (RFC 9112 §6.3), the whole
                   alphabet is the body; read by the Content-Length, only "abcde"
  /iisintegration  accepts ANCM's shutdown message (202) and exits
  anything else    200 "ok <path>", after reading the declared body
"""
import os
import socket
import sys
import threading


def serve(conn):
    reader = conn.makefile("rb")
    while True:
        line = reader.readline()
        if not line:
            return
        path = line.decode("latin-1").split(" ")[1]
        length = 0
        while True:
            header = reader.readline()
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length:
            reader.read(length)
        if path == "/both":
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"d\r\nabcdefghijklm\r\nd\r\nnopqrstuvwxyz\r\n0\r\n\r\n"
            )
            continue
        if path == "/iisintegration":
            conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
            os._exit(0)
        body = f"ok {path}".encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def main():
    port = int(os.environ["ASPNETCORE_PORT"])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    print(f"framing: listening on {port}", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
