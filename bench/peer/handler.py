"""The peer: the canvases list (and get) handler as a Python Lambda with boto3, written the
way such a function usually is: the client is created at import (init), the handler verifies
the HS256 bearer token, routes on the API Gateway v2 route key, runs one DynamoDB call and
answers JSON. Same table, index, page size, cursor signing and answers as the Rust function."""

import base64
import hashlib
import hmac
import json
import os
import time
import uuid

import boto3

TABLE = os.environ["CANVASES_TABLE"]
INDEX = "user_id-updated_at-index"
SECRET = os.environ["JWT_SECRET"].encode()
ISSUER = os.environ.get("JWT_ISSUER") or None
AUDIENCE = os.environ.get("JWT_AUDIENCE") or None
LEEWAY = int(os.environ.get("JWT_LEEWAY_SECONDS") or 30)
CURSOR_KEY = (os.environ.get("CURSOR_SECRET") or "").encode() or hmac.new(
    SECRET, b"cursor-signing-key-v1", hashlib.sha256
).digest()

dynamodb = boto3.client("dynamodb", endpoint_url=os.environ.get("DYNAMODB_ENDPOINT") or None)


class HttpError(Exception):
    def __init__(self, status, title):
        super().__init__(title)
        self.status = status
        self.title = title


def b64decode(segment):
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def b64encode(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def verify(header):
    if not header or not header.startswith("Bearer "):
        raise HttpError(401, "missing bearer token")
    try:
        head, payload, signature = header[7:].split(".")
        if json.loads(b64decode(head)).get("alg") != "HS256":
            raise HttpError(401, "algorithm not allowed")
        expected = hmac.new(SECRET, f"{head}.{payload}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, b64decode(signature)):
            raise HttpError(401, "bad signature")
        claims = json.loads(b64decode(payload))
    except (ValueError, KeyError):
        raise HttpError(401, "malformed token")
    now = time.time()
    if claims.get("exp", 0) < now - LEEWAY or claims.get("nbf", 0) > now + LEEWAY:
        raise HttpError(401, "token expired or not yet valid")
    if ISSUER and claims.get("iss") != ISSUER:
        raise HttpError(401, "wrong issuer")
    if AUDIENCE and AUDIENCE not in ([claims.get("aud")] if isinstance(claims.get("aud"), str) else claims.get("aud") or []):
        raise HttpError(401, "wrong audience")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise HttpError(401, "no subject")
    return sub


def plain(item):
    out = {}
    for name, value in item.items():
        (kind, raw), = value.items()
        out[name] = int(raw) if kind == "N" else raw
    return out


def summary(item):
    c = plain(item)
    return {k: c.get(k) for k in ("id", "name", "description", "created_at", "updated_at", "version")}


def sign_cursor(user, key):
    body = b64encode(json.dumps({"scope": "canvases", "user": user, "key": key}, separators=(",", ":")).encode())
    mac = b64encode(hmac.new(CURSOR_KEY, body.encode(), hashlib.sha256).digest())
    return f"{body}.{mac}"


def read_cursor(user, cursor):
    try:
        body, mac = cursor.split(".")
        good = b64encode(hmac.new(CURSOR_KEY, body.encode(), hashlib.sha256).digest())
        data = json.loads(b64decode(body))
    except ValueError:
        raise HttpError(400, "cursor is invalid")
    if not hmac.compare_digest(good, mac) or data.get("scope") != "canvases" or data.get("user") != user:
        raise HttpError(400, "cursor is invalid")
    start = {k: {"S": v} for k, v in data["key"].items()}
    start["user_id"] = {"S": user}
    return start


def list_canvases(user, query):
    raw_limit = query.get("limit", "20")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
        raise HttpError(400, "limit must be an integer from 1 to 100")
    limit = int(raw_limit)
    params = {
        "TableName": TABLE,
        "IndexName": INDEX,
        "KeyConditionExpression": "#uid = :uid",
        "ExpressionAttributeNames": {"#uid": "user_id"},
        "ExpressionAttributeValues": {":uid": {"S": user}},
        "ScanIndexForward": False,
        "Limit": limit + 1,
    }
    if query.get("cursor"):
        params["ExclusiveStartKey"] = read_cursor(user, query["cursor"])
    out = dynamodb.query(**params)
    items = out.get("Items", [])
    next_cursor = None
    if len(items) > limit or "LastEvaluatedKey" in out:
        items = items[:limit]
        if items:
            last = items[-1]
            next_cursor = sign_cursor(user, {"id": last["id"]["S"], "updated_at": last["updated_at"]["S"]})
    return 200, {"items": [summary(i) for i in items], "next_cursor": next_cursor}


def get_canvas(user, canvas_id):
    out = dynamodb.get_item(
        TableName=TABLE, Key={"user_id": {"S": user}, "id": {"S": canvas_id}}, ConsistentRead=True
    )
    if "Item" not in out:
        raise HttpError(404, "canvas not found")
    canvas = plain(out["Item"])
    canvas.pop("user_id", None)
    canvas["data"] = json.loads(canvas.get("data") or "{}")
    canvas.setdefault("description", None)
    return 200, canvas


def handle(event, context):
    started = time.perf_counter()
    request_id = event.get("requestContext", {}).get("requestId") or str(uuid.uuid4())
    route = event.get("routeKey", "")
    user = None
    try:
        user = verify((event.get("headers") or {}).get("authorization"))
        if route == "GET /canvases":
            status, body = list_canvases(user, event.get("queryStringParameters") or {})
        elif route == "GET /canvases/{id}":
            status, body = get_canvas(user, (event.get("pathParameters") or {}).get("id", ""))
        else:
            raise HttpError(404, "no such route")
        headers = {"content-type": "application/json", "x-request-id": request_id}
    except HttpError as e:
        status, body = e.status, {"status": e.status, "title": e.title, "request_id": request_id}
        headers = {"content-type": "application/problem+json", "x-request-id": request_id}
    print(json.dumps({"level": "INFO", "request_id": request_id, "route": route, "status": status,
                      "user_id": user, "latency_us": int((time.perf_counter() - started) * 1e6)}))
    return {"statusCode": status, "headers": headers, "body": json.dumps(body), "isBase64Encoded": False}
