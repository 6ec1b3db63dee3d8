#!/usr/bin/env python3
"""A minimal Lambda Runtime API (the 2018-06-01 interface a `bootstrap` polls), for running a
built function binary outside Lambda: serves each event file once, collects the answers, and
exits when all are answered (or on the first init/invocation error, or after --timeout).

    lambda-runtime-api.py --port 9001 --out answers.json events/a.json events/b.json

It only serves; the caller starts the bootstrap with AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port>.
Listens on 127.0.0.1 only. Answers are written to --out as a JSON list, in the order of the
events: {"event": path, "response": <the function's JSON>} or {"event": path, "error": ...}.
"""

import argparse
import json
import queue
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("events", nargs="+")
    args = parser.parse_args()

    pending = queue.Queue()
    ids = {}
    for path in args.events:
        request_id = str(uuid.uuid4())
        with open(path, "rb") as f:
            pending.put((request_id, f.read()))
        ids[request_id] = path
    answers = {}
    done = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_):
            pass

        def reply(self, status, body=b"", headers=None):
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path != f"{PREFIX}/invocation/next":
                return self.reply(404)
            try:
                request_id, body = pending.get(timeout=args.timeout)
            except queue.Empty:
                return self.reply(500)
            self.reply(200, body, {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": request_id,
                "Lambda-Runtime-Deadline-Ms": "9999999999999",
                "Lambda-Runtime-Invoked-Function-Arn":
                    "arn:aws:lambda:us-east-1:123456789012:function:local",
                "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
            })

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            parts = self.path[len(PREFIX):].strip("/").split("/")
            if parts == ["init", "error"]:
                answers["init"] = {"error": body.decode(errors="replace")}
                self.reply(202)
                done.set()
                return
            if len(parts) == 3 and parts[0] == "invocation" and parts[1] in ids:
                path = ids[parts[1]]
                if parts[2] == "response":
                    try:
                        answers[parts[1]] = {"event": path, "response": json.loads(body)}
                    except ValueError:
                        answers[parts[1]] = {"event": path, "error": "not JSON: " + body[:200].decode(errors="replace")}
                else:
                    answers[parts[1]] = {"event": path, "error": body.decode(errors="replace")}
                self.reply(202)
                if len(answers) == len(ids):
                    done.set()
                return
            self.reply(404)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    finished = done.wait(args.timeout)
    server.shutdown()
    out = [answers["init"]] if "init" in answers else [
        answers.get(rid, {"event": path, "error": "no answer"}) for rid, path in ids.items()]
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    if not finished:
        print("lambda-runtime-api: timed out", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
