"""A stand-in for 8x8's Send Callflow API on loopback, for .ci/schemathesis: every POST is a
created call with a new session id. Prints its port on stdout, then serves until killed."""
import http.server
import json
import sys
import uuid


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = json.dumps({"sessionId": str(uuid.uuid4()), "sessionStatus": "CREATED",
                           "statusCode": 1, "statusMessage": "Created"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
sys.stdout.close()
server.serve_forever()
