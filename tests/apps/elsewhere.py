"""An app that does not listen where ancm tells it to, as a hard-coded port makes it.

  own          listens on 127.0.0.1 at a port of its own (ASPNETCORE_PORT is ignored) and prints it
  everywhere   listens on ASPNETCORE_PORT, but on all interfaces (0.0.0.0), and answers 200

It prints "elsewhere: listening on ADDRESS:PORT" once it listens, and serves until stopped.
"""
import os
import socket
import sys


def main():
    mode = sys.argv[1]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if mode == "own":
        listener.bind(("127.0.0.1", 0))
    else:
        listener.bind(("0.0.0.0", int(os.environ["ASPNETCORE_PORT"])))
    listener.listen(16)
    host, port = listener.getsockname()
    print(f"elsewhere: listening on {host}:{port}", flush=True)
    while True:
        conn, _ = listener.accept()
        with conn:
            reader = conn.makefile("rb")
            while reader.readline() not in (b"\r\n", b"\n", b""):
                pass
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")


if __name__ == "__main__":
    sys.exit(main())
