"""What an app inherits from ancm besides its own settings: at start, prints one line
`inherited: {"ancm": [names of ANCM_* variables], "fds": {"N": target, ...}}` (descriptors above
2), then answers every request 200 with the same JSON on 127.0.0.1:$ASPNETCORE_PORT.
"""
import http.server
import json
import os


def inherited():
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        if int(name) <= 2:
            continue
        try:
            fds[name] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            # The listing's own descriptor, closed by now.
            pass
    ancm = sorted(name for name in os.environ if name.startswith("ANCM_"))
    return {"ancm": ancm, "fds": fds}


REPORT = json.dumps(inherited())
print(f"inherited: {REPORT}", flush=True)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        body = REPORT.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["ASPNETCORE_PORT"])), Handler).serve_forever()
