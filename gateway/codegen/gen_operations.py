#!/usr/bin/env python3
"""Generate the gateway's operation tables from botocore's public AWS service models.

Writes gateway/src/classify/generated/<service>.rs (one static `ServiceModel` per service) and
gateway/src/classify/generated/mod.rs (the list of them). With --check, writes nothing and exits 1
when the committed files differ from what the pinned botocore would produce.

botocore is pinned (BOTOCORE_VERSION). When the running interpreter does not have exactly that
version, the script creates a throwaway virtualenv under <workspace>/target/codegen-venv, installs
the pinned botocore from PyPI into it, and re-runs itself there.
"""

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import venv

BOTOCORE_VERSION = "1.44.8"

HERE = os.path.dirname(os.path.abspath(__file__))
WORKSPACE = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT_DIR = os.path.join(WORKSPACE, "gateway", "src", "classify", "generated")
VENV_DIR = os.path.join(WORKSPACE, "target", "codegen-venv")

# (botocore service name, API version, IAM action prefix). The IAM prefix is the signing name
# except where AWS's IAM service prefix differs from it.
SERVICES = [
    ("s3", "2006-03-01", "s3"),
    ("dynamodb", "2012-08-10", "dynamodb"),
    ("lambda", "2015-03-31", "lambda"),
    ("sts", "2011-06-15", "sts"),
    ("iam", "2010-05-08", "iam"),
    ("sqs", "2012-11-05", "sqs"),
    ("sns", "2010-03-31", "sns"),
    ("kms", "2014-11-01", "kms"),
    ("secretsmanager", "2017-10-17", "secretsmanager"),
    ("ssm", "2014-11-06", "ssm"),
    ("ec2", "2016-11-15", "ec2"),
    ("cloudwatch", "2010-08-01", "cloudwatch"),
    ("logs", "2014-03-28", "logs"),
    ("ecr", "2015-09-21", "ecr"),
    ("eks", "2017-11-01", "eks"),
    ("cloudformation", "2010-05-15", "cloudformation"),
    ("events", "2015-10-07", "events"),
    ("stepfunctions", "2016-11-23", "states"),
    ("kinesis", "2013-12-02", "kinesis"),
    ("bedrock-runtime", "2023-09-30", "bedrock"),
    # Share the `bedrock` signing name with bedrock-runtime; told apart by path.
    ("bedrock", "2023-04-20", "bedrock"),
    ("bedrock-agent", "2023-06-05", "bedrock"),
    ("bedrock-agent-runtime", "2023-07-26", "bedrock"),
    # Credential-returning operations live here.
    ("eks-auth", "2023-11-26", "eks-auth"),
    ("sso", "2019-06-10", "sso"),
]

# Protocols a service still accepts on the wire beyond what its current model lists. SQS moved
# from the query protocol to JSON in 2023; older SDKs and the AWS CLI v1 still send query.
LEGACY_PROTOCOLS = {"sqs": ["query"]}

# REST routes that the wire cannot tell apart (same method, path, required query and headers).
# The model marks the older one deprecated; where it does not, this says which one wins.
PREFERRED_ROUTES = {
    ("s3", "ListDirectoryBuckets"): "ListBuckets",
}

# Optional query-string members that resource or IAM-action decisions need.
RESOURCE_QUERY_MEMBERS = {"VersionId", "Qualifier"}

PROTOCOL_VARIANTS = {
    "json": "Json",
    "query": "Query",
    "ec2": "Ec2",
    "rest-json": "RestJson",
    "rest-xml": "RestXml",
    "smithy-rpc-v2-cbor": "RpcV2Cbor",
}
REST_PROTOCOLS = {"rest-json", "rest-xml"}


def ensure_botocore():
    try:
        import botocore  # noqa: F401

        if botocore.__version__ == BOTOCORE_VERSION:
            return
    except ImportError:
        pass
    python = os.path.join(VENV_DIR, "bin", "python")
    if os.path.abspath(sys.executable) == os.path.abspath(python):
        sys.exit(f"botocore {BOTOCORE_VERSION} is not importable from {VENV_DIR}")
    if not os.path.exists(python):
        print(f"creating {VENV_DIR} with botocore=={BOTOCORE_VERSION}", file=sys.stderr)
        venv.create(VENV_DIR, with_pip=True)
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", f"botocore=={BOTOCORE_VERSION}"],
        check=True,
    )
    # Re-run whichever script called us (the fixture generator imports this module).
    os.execv(python, [python, os.path.abspath(sys.argv[0]), *sys.argv[1:]])


def load_model(service, version):
    import botocore

    base = os.path.join(os.path.dirname(botocore.__file__), "data", service, version)
    plain = os.path.join(base, "service-2.json")
    if os.path.exists(plain + ".gz"):
        with gzip.open(plain + ".gz", "rt", encoding="utf-8") as f:
            return json.load(f)
    with open(plain, encoding="utf-8") as f:
        return json.load(f)


def rust_str(s):
    return json.dumps(s)


def split_request_uri(uri):
    """'/{Bucket}/{Key+}?uploads&list-type=2' -> ('/{Bucket}/{Key+}', [('uploads', None), ...])."""
    path, _, query = uri.partition("?")
    literals = []
    for part in filter(None, query.split("&")):
        key, eq, value = part.partition("=")
        if key == "x-id":
            continue  # a hint the client sends; never part of the route
        literals.append((key, value if eq else None))
    for segment in path.split("/"):
        if "{" in segment and not re.fullmatch(r"\{[A-Za-z0-9_]+\+?\}", segment):
            raise SystemExit(f"label not a whole segment in {uri!r}")
    if "+}" in path and not path.endswith("+}"):
        raise SystemExit(f"greedy label not last in {uri!r}")
    return path, literals


def route_for(model, name, op):
    http = op["http"]
    path, literals = split_request_uri(http["requestUri"])
    query = list(literals)
    headers = []
    query_members = []
    shape_name = op.get("input", {}).get("shape")
    if shape_name:
        shape = model["shapes"][shape_name]
        required = set(shape.get("required", []))
        for member, spec in sorted(shape.get("members", {}).items()):
            location = spec.get("location")
            wire = spec.get("locationName", member)
            if location == "querystring":
                if member in required and all(k != wire for k, _ in query):
                    query.append((wire, None))
                if member in RESOURCE_QUERY_MEMBERS:
                    query_members.append((member, wire))
            elif location == "header" and member in required:
                headers.append(wire.lower())
    query.sort()
    headers.sort()
    return {
        "method": http["method"],
        "path": path,
        "query": query,
        "headers": headers,
        "query_members": query_members,
    }


def route_key(route):
    shape = re.sub(r"\{[A-Za-z0-9_]+\}", "{}", route["path"])
    shape = re.sub(r"\{[A-Za-z0-9_]+\+\}", "{+}", shape)
    return (route["method"], shape, tuple(route["query"]), tuple(route["headers"]))


def resolve_shadows(service, model, routes):
    """Name, for each route the wire cannot reach, the operation that takes its requests."""
    by_key = {}
    for name in sorted(routes):
        by_key.setdefault(route_key(routes[name]), []).append(name)
    shadowed_by = {}
    for names in by_key.values():
        if len(names) == 1:
            continue
        live = [n for n in names if not model["operations"][n].get("deprecated")]
        if len(live) != 1:
            preferred = {PREFERRED_ROUTES.get((service, n)) for n in names} - {None}
            if len(preferred) != 1 or preferred.pop() not in names:
                raise SystemExit(f"{service}: indistinguishable routes {names}; add PREFERRED_ROUTES")
            live = [PREFERRED_ROUTES[(service, n)] for n in names if (service, n) in PREFERRED_ROUTES]
        winner = live[0]
        for n in names:
            if n != winner:
                shadowed_by[n] = winner
    return shadowed_by


def render_service(service, version, iam_prefix):
    import botocore

    model = load_model(service, version)
    meta = model["metadata"]
    protocols = list(meta.get("protocols") or [meta["protocol"]])
    for legacy in LEGACY_PROTOCOLS.get(service, []):
        if legacy not in protocols:
            protocols.append(legacy)
    signing_name = meta.get("signingName") or meta["endpointPrefix"]
    is_rest = any(p in REST_PROTOCOLS for p in protocols)
    if is_rest and len(protocols) != 1:
        raise SystemExit(f"{service}: REST and RPC protocols mixed: {protocols}")
    ops = model["operations"]
    routes = {n: route_for(model, n, o) for n, o in ops.items()} if is_rest else {}
    shadowed_by = resolve_shadows(service, model, routes) if is_rest else {}

    lines = [
        f"// @generated by gateway/codegen/gen_operations.py from botocore {BOTOCORE_VERSION}",
        f"// data/{service}/{version}/service-2.json. Do not edit by hand; rerun the generator.",
        "",
        "use crate::classify::table::{"
        + ("HttpRoute, " if is_rest else "")
        + "OperationModel, Protocol, ServiceModel};",
        "",
        "pub(crate) static SERVICE: ServiceModel = ServiceModel {",
        f"    model_name: {rust_str(service)},",
        f"    api_version: {rust_str(version)},",
        f"    signing_name: {rust_str(signing_name)},",
        f"    endpoint_prefix: {rust_str(meta['endpointPrefix'])},",
        f"    iam_prefix: {rust_str(iam_prefix)},",
        "    protocols: &["
        + ", ".join(f"Protocol::{PROTOCOL_VARIANTS[p]}" for p in protocols)
        + "],",
        "    json_target_prefix: "
        + (f"Some({rust_str(meta['targetPrefix'])})" if meta.get("targetPrefix") else "None")
        + ",",
        "    operations: &[",
    ]
    for name in sorted(ops):
        if not is_rest:
            lines.append(f"        OperationModel::rpc({rust_str(name)}),")
            continue
        r = routes[name]
        query = ", ".join(
            f"({rust_str(k)}, {'None' if v is None else 'Some(' + rust_str(v) + ')'})"
            for k, v in r["query"]
        )
        headers = ", ".join(rust_str(h) for h in r["headers"])
        members = ", ".join(f"({rust_str(m)}, {rust_str(w)})" for m, w in r["query_members"])
        shadow = shadowed_by.get(name)
        lines.append(
            f"        OperationModel::rest({rust_str(name)}, &HttpRoute {{ "
            f"method: {rust_str(r['method'])}, path: {rust_str(r['path'])}, "
            f"query: &[{query}], headers: &[{headers}], query_members: &[{members}] }}"
            + (f").shadowed_by({rust_str(shadow)})," if shadow else "),")
        )
    lines += ["    ],", "};", ""]
    assert botocore.__version__ == BOTOCORE_VERSION
    return "\n".join(lines), len(ops)


def module_name(service):
    return service.replace("-", "_")


def render_all():
    files = {}
    total = 0
    mods = []
    for service, version, iam_prefix in SERVICES:
        text, count = render_service(service, version, iam_prefix)
        total += count
        files[f"{module_name(service)}.rs"] = text
        mods.append(module_name(service))
    mod_lines = [
        f"// @generated by gateway/codegen/gen_operations.py from botocore {BOTOCORE_VERSION}.",
        "// Do not edit by hand; rerun the generator.",
        "",
        f"//! Operation tables of {len(SERVICES)} services ({total} operations), generated from",
        f"//! the AWS service models in botocore {BOTOCORE_VERSION}.",
        "",
    ]
    mod_lines += [f"#[rustfmt::skip]\nmod {m};" for m in mods]
    mod_lines += [
        "",
        "use crate::classify::table::ServiceModel;",
        "",
        f'/// The botocore release the tables were generated from.',
        f"pub const BOTOCORE_VERSION: &str = {rust_str(BOTOCORE_VERSION)};",
        "",
        "/// Every generated service model.",
        "pub(crate) static SERVICES: &[&ServiceModel] = &[",
    ]
    mod_lines += [f"    &{m}::SERVICE," for m in mods]
    mod_lines += ["];", ""]
    files["mod.rs"] = "\n".join(mod_lines)
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if committed tables drift")
    args = parser.parse_args()
    ensure_botocore()
    files = render_all()
    if args.check:
        drift = []
        for name, text in sorted(files.items()):
            path = os.path.join(OUT_DIR, name)
            try:
                with open(path, encoding="utf-8") as f:
                    if f.read() != text:
                        drift.append(name)
            except FileNotFoundError:
                drift.append(name)
        existing = {n for n in os.listdir(OUT_DIR) if n.endswith(".rs")} if os.path.isdir(OUT_DIR) else set()
        drift += sorted(existing - set(files))
        if drift:
            print("generated tables drift from botocore " + BOTOCORE_VERSION + ": " + ", ".join(drift))
            sys.exit(1)
        print(f"generated tables match botocore {BOTOCORE_VERSION}")
        return
    os.makedirs(OUT_DIR, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(OUT_DIR, name), "w", encoding="utf-8") as f:
            f.write(text)
    print(f"wrote {len(files)} files to {os.path.relpath(OUT_DIR, WORKSPACE)}")


if __name__ == "__main__":
    main()
