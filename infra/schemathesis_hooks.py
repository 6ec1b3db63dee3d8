"""Schemathesis hooks: play the part of a client outside the API.

A file is only complete once its bytes are in the bucket, and the API never sees that upload:
clients PUT straight to the presigned URL. After each created file (up to 1 MiB, to keep the
run fast) the hook uploads that many bytes, so `POST /files/{id}/complete` can succeed when the
stateful phase follows the create's link to it.
"""

import urllib.request

import schemathesis

UPLOAD_MAX_BYTES = 1 << 20


@schemathesis.hook
def after_call(context, case, response):
    if (case.method.upper(), case.operation.path) != ("POST", "/files") or response.status_code != 201:
        return
    created = response.json()
    size = created["file"]["size"]
    upload = created["upload"]
    if size > UPLOAD_MAX_BYTES:
        return
    request = urllib.request.Request(
        upload["url"], data=b"\0" * size, method=upload["method"], headers=upload["headers"]
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200, f"upload failed: {answer.status}"
