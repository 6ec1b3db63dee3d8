"""A minimal Lambda Runtime API client loop, as awslambdaric runs one: import the handler
module (the init phase), then fetch an event, call the handler, post its result, forever."""

import http.client
import json
import os
import sys
import traceback

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
BASE = "/2018-06-01/runtime"


def post(conn, path, payload):
    conn.request("POST", BASE + path, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    conn.getresponse().read()


def main():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    conn = http.client.HTTPConnection(API)
    try:
        import handler
    except Exception as e:  # noqa: BLE001 - reported to the Runtime API as Lambda does
        post(conn, "/init/error", {"errorMessage": str(e), "errorType": type(e).__name__})
        raise
    while True:
        conn.request("GET", BASE + "/invocation/next")
        response = conn.getresponse()
        event = response.read()
        request_id = response.getheader("Lambda-Runtime-Aws-Request-Id")
        try:
            result = handler.handle(json.loads(event), None)
            post(conn, f"/invocation/{request_id}/response", result)
        except Exception as e:  # noqa: BLE001
            post(conn, f"/invocation/{request_id}/error", {
                "errorMessage": str(e), "errorType": type(e).__name__,
                "stackTrace": traceback.format_exc().splitlines(),
            })


if __name__ == "__main__":
    main()
