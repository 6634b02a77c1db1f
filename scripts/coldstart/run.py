#!/usr/bin/env python3
"""Start-to-ready time of every function of template.yaml, each measured with scripts/coldstart.py.

Each function runs as it would on Lambda: with the environment template.yaml gives it (parameters at
their defaults; the Fn::ForEach loops expanded), against the moto emulator holding what the template
creates and the functions read at start-up or on the first call: the table (its keys and indexes
from the template), the queues, the five secrets (filled with test keys; the Kit RSA key a fresh
3072-bit one) and the KMS key. So the functions whose init fetches secrets (edge, worker, usage push,
usage ingestion, the key-reading callbacks) are measured with that fetch. Each is sent
events/<crate>.json as its first invocation.

Run through scripts/coldstart-all.sh (which starts the emulator); directly:
  bash scripts/emulator.sh run .venv/bin/python scripts/coldstart/run.py BIN_DIR [RUNS] [CRATE...]
BIN_DIR holds one binary per function crate, named after the crate (a native build: Lambda's arm64
binaries do not run on an x86_64 host).
"""
import json
import os
import re
import statistics
import subprocess
import sys
import uuid

import boto3
from cfnlint.decode import cfn_yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
STACK = "coldstart"


def plain(v):
    """cfn-lint's node types as plain dicts, lists and strings."""
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, str):
        return str(v)
    return v


def substitute(v, var, item, mappings):
    """One Fn::ForEach iteration: ${var} and Ref var replaced, FindInMap on the Mappings resolved."""
    if isinstance(v, dict):
        if v == {"Ref": var}:
            return item
        if list(v) == ["Fn::FindInMap"]:
            m, k, a = substitute(v["Fn::FindInMap"], var, item, mappings)
            return mappings[m][k][a]
        if list(v) == ["Fn::Sub"] and isinstance(v["Fn::Sub"], str):
            return {"Fn::Sub": v["Fn::Sub"].replace("${%s}" % var, item)}
        return {k.replace("${%s}" % var, item): substitute(x, var, item, mappings) for k, x in v.items()}
    if isinstance(v, list):
        return [substitute(x, var, item, mappings) for x in v]
    return v


def expand(template):
    resources = {}
    for key, value in template["Resources"].items():
        if not key.startswith("Fn::ForEach::"):
            resources[key] = value
            continue
        var, items, body = value
        for item in items:
            resources.update(substitute(body, var, item, template.get("Mappings", {})))
    return resources


def create(template, resources, ddb, sqs, sm, kms):
    """What the functions touch, as the template creates it; returns the value of each Ref."""
    refs = {name: p.get("Default", "") for name, p in template["Parameters"].items()}
    refs = {k: str(v) for k, v in refs.items()}
    suffix = uuid.uuid4().hex[:8]
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    values = {
        "KeysSecret": {"accessKey": uuid.uuid4().hex, "kitKey": uuid.uuid4().hex},
        "OpenApiSecret": {"ak": "coldstart-ak", "sk": uuid.uuid4().hex},
        "WebhookSecret": {"webhookSecret": uuid.uuid4().hex},
        "UsageKeySecret": {"usageKey": uuid.uuid4().hex},
        "KitRsaSecret": {"kitRsaPrivateKey": pem},
    }
    for name, r in resources.items():
        kind, props = r.get("Type"), r.get("Properties", {})
        if kind == "AWS::DynamoDB::Table":
            table = f"{STACK}-{name}-{suffix}"
            ddb.create_table(
                TableName=table, BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=props["AttributeDefinitions"], KeySchema=props["KeySchema"],
                GlobalSecondaryIndexes=props.get("GlobalSecondaryIndexes", []))
            refs[name] = table
        elif kind == "AWS::SQS::Queue":
            refs[name] = sqs.create_queue(QueueName=f"{STACK}-{name}-{suffix}")["QueueUrl"]
        elif kind == "AWS::SecretsManager::Secret":
            refs[name] = sm.create_secret(Name=f"{STACK}/{name}-{suffix}",
                                          SecretString=json.dumps(values[name]))["ARN"]
        elif kind == "AWS::KMS::Key":
            refs[name] = kms.create_key()["KeyMetadata"]["Arn"]
        elif kind == "AWS::Serverless::Function":
            refs[name] = f"{STACK}-{name}"
    return refs


def resolve(v, refs):
    if isinstance(v, (str, int, float)):
        return str(v)
    if isinstance(v, dict) and list(v) == ["Ref"]:
        return refs[v["Ref"]]
    if isinstance(v, dict) and list(v) == ["Fn::Sub"] and isinstance(v["Fn::Sub"], str):
        names = dict(refs, **{"AWS::StackName": STACK, "AWS::Region": "us-east-1"})
        return re.sub(r"\$\{([^}]+)\}", lambda m: names[m.group(1)], v["Fn::Sub"])
    raise ValueError(f"no local value for {v!r}")


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    bin_dir = sys.argv[1]
    runs = sys.argv[2] if len(sys.argv) > 2 else "20"
    only = set(sys.argv[3:])
    with open(os.path.join(ROOT, "template.yaml")) as f:
        template = plain(cfn_yaml.loads(f.read()))
    resources = expand(template)
    # The emulator's endpoint and region, as scripts/emulator.sh exports them.
    session = boto3.session.Session(region_name=os.environ["AWS_REGION"])
    clients = [session.client(s, endpoint_url=os.environ["AWS_ENDPOINT_URL"])
               for s in ("dynamodb", "sqs", "secretsmanager", "kms")]
    refs = create(template, resources, *clients)
    common = template["Globals"]["Function"]["Environment"]["Variables"]
    # Every function's environment and files first: a template value this script cannot give
    # locally, or a missing binary, stops it before any measurement.
    plan = []
    for name, r in sorted(resources.items()):
        if r.get("Type") != "AWS::Serverless::Function":
            continue
        crate = r["Properties"]["CodeUri"].removeprefix("functions/")
        if only and crate not in only:
            continue
        variables = dict(common, **r["Properties"].get("Environment", {}).get("Variables", {}))
        env = {k: resolve(v, refs) for k, v in variables.items()}
        # The emulator's endpoint and fake credentials (scripts/emulator.sh) stay; nothing else of
        # this shell leaks in.
        env.update({k: os.environ[k] for k in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID",
                                              "AWS_SECRET_ACCESS_KEY", "PATH") if k in os.environ})
        binary = os.path.join(bin_dir, crate)
        event = os.path.join(HERE, "events", f"{crate}.json")
        for path in (binary, event):
            if not os.path.isfile(path):
                print(f"{name}: {path} missing", file=sys.stderr)
                return 1
        plan.append((name, crate, env, binary, event))
    rows = []
    for name, crate, env, binary, event in plan:
        out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "coldstart.py"), binary, event, runs],
                             env=env, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{name} ({crate}): coldstart.py failed\n{out.stdout}{out.stderr}", file=sys.stderr)
            return 1
        found = re.findall(r"^(init|first)\s.*?median ([\d.]+) ms, p90 ([\d.]+) ms", out.stdout, re.M)
        figures = {kind: (median, p90) for kind, median, p90 in found}
        answer = re.search(r"^answer to the first invocation: (.*)$", out.stdout, re.M).group(1)
        rows.append((crate, figures["init"], figures["first"], answer))
        print(f"{crate:24} init {figures['init'][0]:>6} ms (p90 {figures['init'][1]:>6})  "
              f"first {figures['first'][0]:>6} ms (p90 {figures['first'][1]:>6})  {answer[:70]}", flush=True)
    print(f"\n{len(rows)} functions, {runs} runs each; medians of the medians: init "
          f"{statistics.median(float(r[1][0]) for r in rows):.1f} ms, worst init p90 "
          f"{max(float(r[1][1]) for r in rows):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
