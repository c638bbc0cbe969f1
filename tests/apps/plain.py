"""A plain HTTP app that knows nothing of ASP.NET Core, as an Express or Flask app is.

Listens on 127.0.0.1:$PORT, prints each request line it reads ("plain: POST /iisintegration
HTTP/1.1"), answers 404 to /iisintegration as such apps do, and to anything else 200 with JSON: the
path it got and its headers ({"path": "/x?y", "headers": [["host", "..."], ...]}). On
SIGTERM it prints "plain: got SIGTERM" and exits 0.
"""
import http.server
import json
import os
import signal
import sys


def say(line):
    print(f"plain: {line}", flush=True)


def on_sigterm(signum, frame):
    say("got SIGTERM")
    sys.stdout.flush()
    os._exit(0)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def answer(self):
        say(self.requestline)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status = 404 if self.path.startswith("/iisintegration") else 200
        body = json.dumps(
            {"path": self.path, "headers": [[k.lower(), v] for k, v in self.headers.items()]}
        ).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = answer


signal.signal(signal.SIGTERM, on_sigterm)
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
say(f"listening on {os.environ['PORT']}")
server.serve_forever()
