#!/usr/bin/env python3
"""Serialize real requests with botocore and write them as the classifier's test fixtures.

For every REST operation of the tabled services, and the first RPC operations of each JSON,
query, EC2 or CBOR service, botocore's own serializer (the one the AWS CLI v1 and boto3 use) builds
the request from minimal parameters, with the endpoint an IP literal as the gateway's is. Nothing
is sent. The request's method, path, query, routing-relevant headers and body are written to
gateway/src/classify/fixtures/botocore_requests.jsonl; a Rust test classifies each one and expects
the operation it was made for. With --check, exits 1 if the committed file differs.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_operations  # noqa: E402

OUT = os.path.join(
    gen_operations.WORKSPACE, "gateway", "src", "classify", "fixtures", "botocore_requests.jsonl"
)
ENDPOINT = "http://10.96.0.12:8080"
# A gateway host name the Rust test's classifier knows as its own.
VIRTUAL_HOST_ENDPOINT = "http://localhost:8080"
RPC_OPERATIONS_PER_SERVICE = 12

# Headers that vary per run or carry no routing information.
DROPPED_HEADERS = {
    "authorization",
    "user-agent",
    "x-amz-date",
    "amz-sdk-invocation-id",
    "amz-sdk-request",
    "x-amz-content-sha256",
    "content-length",
    "content-md5",
    "expect",
    "x-amz-security-token",
    "x-amz-sdk-checksum-algorithm",
    "transfer-encoding",
}


def ensure_client_dependencies():
    gen_operations.ensure_botocore()
    try:
        import botocore.session  # noqa: F401
    except ImportError:
        python = sys.executable
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet", f"botocore=={gen_operations.BOTOCORE_VERSION}"],
            check=True,
        )
        os.execv(python, [python, os.path.abspath(sys.argv[0]), *sys.argv[1:]])


def sample(shapes, shape_name, depth=0):
    """Minimal parameters: every required member, and idempotency tokens (so nothing is random)."""
    shape = shapes[shape_name]
    kind = shape["type"]
    if kind == "structure":
        if depth > 6:
            return {}
        out = {}
        required = set(shape.get("required", []))
        for member, spec in sorted(shape.get("members", {}).items()):
            if member in required or spec.get("idempotencyToken"):
                out[member] = sample(shapes, spec["shape"], depth + 1)
        return out
    if kind == "list":
        return [sample(shapes, shape["member"]["shape"], depth + 1)] if depth <= 6 else []
    if kind == "map":
        return {}
    if kind == "string":
        return shape["enum"][0] if shape.get("enum") else "sample"
    if kind in ("integer", "long"):
        return max(int(shape.get("min", 1)), 1)
    if kind in ("double", "float"):
        return 1.0
    if kind == "boolean":
        return True
    if kind == "timestamp":
        return datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    if kind == "blob":
        return b"x"
    return "sample"


def capture(service, version, signing_name, operations, endpoint=ENDPOINT, addressing="path"):
    import botocore.config
    import botocore.session
    from botocore.awsrequest import AWSResponse

    session = botocore.session.get_session()
    config = botocore.config.Config(
        parameter_validation=False,
        inject_host_prefix=False,
        s3={"addressing_style": addressing},
        retries={"max_attempts": 0},
        request_checksum_calculation="when_required",
    )
    client = session.create_client(
        service,
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="example",
        api_version=version,
        config=config,
    )
    captured = []

    class EmptyBody:
        def stream(self, **_):
            return iter([b""])

        def read(self, *_, **__):
            return b""

    def before_send(request, **_):
        captured.append(request)
        return AWSResponse(request.url, 200, {}, EmptyBody())

    client.meta.events.register("before-send", before_send)
    model = client.meta.service_model
    shapes = gen_operations.load_model(service, version)["shapes"]
    rows = []
    skipped = []
    for name in operations:
        op = model.operation_model(name)
        params = sample(shapes, op.input_shape.name) if op.input_shape is not None else {}
        before = len(captured)
        try:
            client._make_api_call(name, params)
        except Exception:  # the empty response rarely parses; the request is what we want
            pass
        if len(captured) == before:
            skipped.append(name)
            continue
        request = captured[-1]
        url = urlsplit(request.url)
        headers = sorted(
            [k.lower(), v.decode() if isinstance(v, bytes) else str(v)]
            for k, v in request.headers.items()
            if k.lower() not in DROPPED_HEADERS and not k.lower().startswith("x-amz-checksum-")
        )
        headers.append(["host", url.netloc])
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        if isinstance(body, bytes):
            try:
                body = body.decode("utf-8")
            except UnicodeDecodeError:
                body = None
        rows.append(
            {
                "service": service,
                "signing": signing_name,
                "operation": name,
                "method": request.method,
                "path": url.path,
                "query": url.query,
                "headers": headers,
                "body": body,
            }
        )
    return rows, skipped


def render():
    lines = []
    all_skipped = []
    for service, version, _ in gen_operations.SERVICES:
        model = gen_operations.load_model(service, version)
        meta = model["metadata"]
        signing = meta.get("signingName") or meta["endpointPrefix"]
        names = sorted(model["operations"])
        if meta["protocol"] not in gen_operations.REST_PROTOCOLS:
            names = names[:RPC_OPERATIONS_PER_SERVICE]
        rows, skipped = capture(service, version, signing, names)
        if service == "s3":
            # Virtual-host style too: the bucket moves into the Host header.
            virtual, more = capture(
                service, version, signing, names, VIRTUAL_HOST_ENDPOINT, "virtual"
            )
            rows += virtual
            skipped += more
        all_skipped += [f"{service}:{n}" for n in skipped]
        lines += [json.dumps(row, sort_keys=True) for row in rows]
    return "\n".join(lines) + "\n", all_skipped


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed file drifts")
    args = parser.parse_args()
    ensure_client_dependencies()
    text, skipped = render()
    if skipped:
        print("botocore built no request for: " + ", ".join(skipped), file=sys.stderr)
    if args.check:
        try:
            with open(OUT, encoding="utf-8") as f:
                same = f.read() == text
        except FileNotFoundError:
            same = False
        if not same:
            print(f"{os.path.relpath(OUT, gen_operations.WORKSPACE)} drifts from botocore")
            sys.exit(1)
        print("request fixtures match botocore " + gen_operations.BOTOCORE_VERSION)
        return
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {text.count(chr(10))} requests to {os.path.relpath(OUT, gen_operations.WORKSPACE)}")


if __name__ == "__main__":
    main()
