#!/usr/bin/env python3
"""Checks Lambda answers against an expectation, for infra/arm64-run and infra/sam-local:

    lambda-answer.py EXPECTATION answers.json

answers.json is a JSON list of {"event": path, "response": <the function's answer>} (or
{"event": path, "error": ...}), as infra/lambda-runtime-api.py writes it. EXPECTATION is a Python
expression over the answer, true when it is right:
    answer   the function's answer as JSON (an event function's output, or an HTTP response)
    status   its statusCode (None without one)
    body     its body: JSON when it parses (base64 decoded first when isBase64Encoded), else text
e.g. 'status == 201 and body["id"]'. Prints one line per answer; exits 1 if any is wrong.
"""

import base64
import json
import sys


def fields(answer):
    if not isinstance(answer, dict):
        return None, None
    body = answer.get("body")
    if isinstance(body, str):
        if answer.get("isBase64Encoded"):
            body = base64.b64decode(body).decode(errors="replace")
        try:
            body = json.loads(body)
        except ValueError:
            pass
    return answer.get("statusCode"), body


def main() -> int:
    expectation, path = sys.argv[1], sys.argv[2]
    answers = json.load(open(path))
    bad = 0
    for entry in answers:
        name = entry.get("event", "init")
        if "response" not in entry:
            bad += 1
            print(f"  BAD {name}: {str(entry.get('error', 'no answer'))[:400]}", file=sys.stderr)
            continue
        answer = entry["response"]
        status, body = fields(answer)
        try:
            ok = bool(eval(expectation, {}, {"answer": answer, "status": status, "body": body}))
        except Exception as e:  # a missing property is a wrong answer, not a crash
            ok = False
            why = f"{type(e).__name__}: {e}"
        else:
            why = ""
        bad += not ok
        shown = json.dumps(answer)[:400] if not ok else f"status {status}" if status is not None else "answered"
        print(f"  {'ok ' if ok else 'BAD'} {name}: {shown}{' (' + why + ')' if why else ''}", file=sys.stderr)
        if not ok:
            print(f"      expected: {expectation}", file=sys.stderr)
    return 1 if bad or not answers else 0


if __name__ == "__main__":
    sys.exit(main())
