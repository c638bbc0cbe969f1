"""What the byte-level test apps share: reading a request head, and a threaded loopback server
on $ASPNETCORE_PORT that hands each request to the app's own answer."""
import os
import socket
import threading


def read_head(reader):
    """(method, path, declared length) of the next request, or None when the client is gone."""
    line = reader.readline()
    if not line:
        return None
    method, path = line.decode("latin-1").split(" ")[:2]
    length = 0
    while True:
        header = reader.readline()
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return method, path, length


def serve_forever(answer, announce):
    """Serves each connection on its own thread; `answer(conn, reader, method, path, length)`
    answers one request and returns False to end the connection."""
    port = int(os.environ["ASPNETCORE_PORT"])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    announce(f"listening on {port}")

    def connection(conn):
        reader = conn.makefile("rb")
        while True:
            head = read_head(reader)
            if head is None or answer(conn, reader, *head) is False:
                return

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=connection, args=(conn,), daemon=True).start()
