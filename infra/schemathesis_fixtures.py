"""Test data for schemathesis: items in the state an operation needs before it can succeed.

A workflow run is resumed only when paused, paused or completed only when running; a file is
completed only once its bytes are uploaded. Random ids reach none of them, and chance rarely
strings the right links together, so each such operation gets an item of its own, made here
through the API and named to schemathesis by `infra/schemathesis.toml` (ST_* variables).
Usage: schemathesis_fixtures.py <base URL> <token>; prints `export ST_...=<id>` lines.
"""

import json
import sys
import urllib.request

base, token = sys.argv[1:3]


def call(method, path, body=None, headers=None, url=None, as_token=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url or base + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {as_token or token}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read()
        return json.loads(text) if text else None


def workflow(*transitions, space=""):
    made = call("POST", f"{space}/workflows", {"name": "schemathesis fixture", "graph": {}})
    for transition in transitions:
        call("POST", f"{space}/workflows/{made['id']}/run/{transition}")
    return made["id"]


def uploaded_file(space=""):
    made = call(
        "POST", f"{space}/files", {"name": "fixture.bin", "content_type": "application/octet-stream", "size": 4}
    )
    upload = made["upload"]
    request = urllib.request.Request(upload["url"], data=b"\0" * 4, method=upload["method"], headers=upload["headers"])
    with urllib.request.urlopen(request, timeout=10):
        pass
    return made["id"]


def organization():
    return call("POST", "/orgs", {"name": "schemathesis fixture"})["id"]


def project(org):
    return call("POST", f"/orgs/{org}/projects", {"name": "schemathesis fixture"})["id"]


def member(org, project, user):
    for scope in (f"/orgs/{org}", f"/projects/{project}"):
        call("PUT", f"{scope}/members/{user}", {"role": "member"})
    return user


def dev_token(user):
    request = urllib.request.Request(base + "/dev/token", data=json.dumps({"user": user}).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())["token"]


def invitation(scope, body, as_token=None):
    return call("POST", f"{scope}/invitations", body, as_token=as_token)


def invitation_for_the_caller():
    """A token the caller may accept: another user's organization invites them by user id."""
    inviter = dev_token("schemathesis-inviter")
    org = call("POST", "/orgs", {"name": "schemathesis inviter"}, as_token=inviter)["id"]
    return invitation(f"/orgs/{org}", {"user": "schemathesis", "role": "member"}, as_token=inviter)["token"]


org = organization()
shared_project = project(org)
fixtures = {
    # The caller's own organization and project, for every route that names one; the deletions
    # get their own (they end them), and the member removals a member to remove.
    "ST_ORG": org,
    "ST_PROJECT": shared_project,
    "ST_ORG_TO_DELETE": organization(),
    "ST_PROJECT_TO_DELETE": project(org),
    "ST_MEMBER": member(org, shared_project, "schemathesis-member"),
    # Invitations to revoke (revoking again answers 204 too), and one for the caller to accept
    # (schemathesis_hooks.py puts its token in the body; accepting again is a 409).
    "ST_ORG_INVITATION": invitation(f"/orgs/{org}", {"email": "invitee@example.com", "role": "member"})["id"],
    "ST_PROJECT_INVITATION": invitation(f"/projects/{shared_project}", {"user": "invitee", "role": "viewer"})["id"],
    "ST_INVITATION_TOKEN": invitation_for_the_caller(),
    # Items of the shared project to delete.
    "ST_PROJECT_CANVAS": call("POST", f"/projects/{shared_project}/canvases", {"name": "fixture"})["id"],
    "ST_PROJECT_SESSION": call("POST", f"/projects/{shared_project}/sessions", {})["id"],
    "ST_PROJECT_WORKFLOW": workflow(space=f"/projects/{shared_project}"),
    "ST_PROJECT_FILE": uploaded_file(space=f"/projects/{shared_project}"),
    # The same states inside the shared project.
    "ST_PROJECT_RUNNING_WORKFLOW_TO_PAUSE": workflow("start", space=f"/projects/{shared_project}"),
    "ST_PROJECT_RUNNING_WORKFLOW_TO_COMPLETE": workflow("start", space=f"/projects/{shared_project}"),
    "ST_PROJECT_PAUSED_WORKFLOW": workflow("start", "pause", space=f"/projects/{shared_project}"),
    "ST_PROJECT_RUNNING_WORKFLOW_TO_RESET": workflow("start", space=f"/projects/{shared_project}"),
    "ST_PROJECT_UPLOADED_FILE": uploaded_file(space=f"/projects/{shared_project}"),
    "ST_RUNNING_WORKFLOW_TO_PAUSE": workflow("start"),
    "ST_RUNNING_WORKFLOW_TO_COMPLETE": workflow("start"),
    "ST_PAUSED_WORKFLOW": workflow("start", "pause"),
    "ST_RUNNING_WORKFLOW_TO_RESET": workflow("start"),
    "ST_UPLOADED_FILE": uploaded_file(),
    # Personal items to delete: their first deletion succeeds, whatever else runs.
    "ST_CANVAS_TO_DELETE": call("POST", "/canvases", {"name": "fixture"})["id"],
    "ST_SESSION_TO_DELETE": call("POST", "/sessions", {})["id"],
    "ST_WORKFLOW_TO_DELETE": workflow(),
    "ST_FILE_TO_DELETE": uploaded_file(),
}
for name, value in fixtures.items():
    print(f"export {name}={value}")
