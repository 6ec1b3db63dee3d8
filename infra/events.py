#!/usr/bin/env python3
"""Writes events/<route>.json: an API Gateway HTTP API (payload 2.0) event for every route in
template.yaml, for `sam local invoke -e` and for the tests, which run each through its handler.

Run it after adding a route: .venv/bin/python infra/events.py (PyYAML comes with cfn-lint)."""
import json
import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
ID = "0192f0c4-6f8e-7a3c-9c1e-6f2d1b7a4e10"

# A valid body for each route that takes one.
BODIES = {
    "POST /canvases": {"name": "Landing page", "description": "Hero and pricing",
                       "data": {"elements": [{"type": "rect", "x": 10, "y": 20}]}},
    "PATCH /canvases/{id}": {"name": "Landing page v2"},
    "POST /sessions": {"title": "Logo ideas"},
    "PATCH /sessions/{id}": {"title": "Logo ideas, round 2"},
    "POST /sessions/{id}/messages": {"role": "user", "content": "Draw a fox in a forest"},
    "POST /workflows": {"name": "txt2img", "graph": {"3": {"class_type": "KSampler", "inputs": {"seed": 42}}}},
    "PATCH /workflows/{id}": {"name": "txt2img (sdxl)"},
    "POST /workflows/{id}/run/complete": {"results": [{"filename": "fox.png"}]},
    "POST /files": {"name": "fox.png", "content_type": "image/png", "size": 1024},
}
# The value of a greedy path parameter (`{proxy+}`): a path the route's function serves.
GREEDY = {"GET /docs/{proxy+}": "swagger-ui.css"}
# Headers a route needs beyond the defaults.
EXTRA_HEADERS = {"PATCH /canvases/{id}": {"if-match": "\"1\""}}


class Loader(yaml.SafeLoader):
    pass


Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def routes():
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=Loader)
    for resource in template["Resources"].values():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in (resource["Properties"].get("Events") or {}).values():
            if event.get("Type") == "HttpApi":
                yield event["Properties"]["Method"].upper(), event["Properties"]["Path"]


def file_name(method, path):
    words = [w.strip("{}+") for w in path.strip("/").split("/")]
    return f"{method.lower()}-" + "-".join(words) + ".json"


def event(method, path):
    route = f"{method} {path}"
    params = {name: GREEDY[route] if greedy else ID for name, greedy in re.findall(r"{(\w+)(\+?)}", path)}
    raw_path = re.sub(r"{(\w+)\+?}", lambda m: params[m.group(1)], path)
    body = BODIES.get(route)
    headers = {
        "accept": "application/json",
        "authorization": "Bearer <token from POST /dev/token or your identity provider>",
        "host": "abc123.execute-api.us-east-1.amazonaws.com",
        "user-agent": "curl/8.5.0",
        "x-amzn-trace-id": "Root=1-6744c1a2-3f0c2b1d4e5f60718293a4b5",
        "x-forwarded-for": "203.0.113.10",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    if body is not None:
        headers["content-type"] = "application/json"
    headers.update(EXTRA_HEADERS.get(route, {}))
    e = {
        "version": "2.0",
        "routeKey": route,
        "rawPath": raw_path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.10", "userAgent": "curl/8.5.0"},
            "requestId": "CZ3yJh2oIAMEbRg=",
            "routeKey": route,
            "stage": "$default",
            "time": "25/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1795600800000,
        },
        "isBase64Encoded": False,
    }
    if params:
        e["pathParameters"] = params
    if body is not None:
        e["body"] = json.dumps(body)
    return e


def main():
    out = ROOT / "events"
    out.mkdir(exist_ok=True)
    for method, path in routes():
        (out / file_name(method, path)).write_text(json.dumps(event(method, path), indent=2) + "\n")


if __name__ == "__main__":
    main()
