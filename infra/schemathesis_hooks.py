"""Schemathesis hooks: play the part of a client outside the API.

A file is only complete once its bytes are in the bucket, and the API never sees that upload:
clients PUT straight to the presigned URL. After each created file (up to 1 MiB, to keep the
run fast) the hook uploads that many bytes, so `POST /files/{id}/complete` can succeed when the
stateful phase follows the create's link to it.
"""

import os
import urllib.request
import uuid

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


# Teams routes act in the caller's own organization and project (made by
# schemathesis_fixtures.py), in every phase: a random id answers 404, and the stateful phase's
# links cannot name them. Invalid ids (negative cases) are left as generated; deleting the
# organization or the project keeps its own fixture (schemathesis.toml).
TEAM_IDS = {"org_id": os.environ.get("ST_ORG"), "project_id": os.environ.get("ST_PROJECT")}
OWN_FIXTURES = {("DELETE", "/orgs/{org_id}"), ("DELETE", "/projects/{project_id}")}


# The invitation the caller may accept: a generated token names none. Bodies meant to be
# invalid (no token, not a string) are left as generated.
INVITATION_TOKEN = os.environ.get("ST_INVITATION_TOKEN")


# Paging cursors (`cursor`, and `after` for polling) are HMAC-signed tokens only the server
# issues: a generated string is refused with 400 by design, so a list with two of them would
# mostly test that refusal. Valid-input cases leave them out; invalid-input cases keep them, and
# forged cursors are covered by the `decode_cursor` fuzzer and the integration tests.
SIGNED_QUERY_PARAMETERS = ("cursor", "after")


def is_negative(case):
    return case.meta is not None and case.meta.generation.mode.is_negative


@schemathesis.hook
def before_call(context, case, **kwargs):
    if case.query and not is_negative(case):
        for name in SIGNED_QUERY_PARAMETERS:
            case.query.pop(name, None)
    if (case.method.upper(), case.operation.path) == ("POST", "/invitations/accept"):
        if INVITATION_TOKEN and isinstance(case.body, dict) and isinstance(case.body.get("token"), str):
            case.body["token"] = INVITATION_TOKEN
        return
    if (case.method.upper(), case.operation.path) in OWN_FIXTURES or not case.path_parameters:
        return
    for name, value in TEAM_IDS.items():
        if value and name in case.path_parameters and is_uuid(case.path_parameters[name]):
            case.path_parameters[name] = value


def is_uuid(value):
    try:
        uuid.UUID(str(value))
        return True
    except ValueError:
        return False
