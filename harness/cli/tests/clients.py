"""Independent clients against the endpoints `harness up --detach --json` printed.

Reads the JSON on stdin; exits non-zero on the first failing round trip.
"""
import json
import subprocess
import sys
import urllib.request

import boto3
from neo4j import GraphDatabase

up = json.load(sys.stdin)
svc = up["services"]

pg = svc["postgres"]
out = subprocess.run(
    ["psql", pg["url"], "-tAc", "create table t(x int); insert into t values (41); select x + 1 from t"],
    check=True, capture_output=True, text=True,
).stdout.strip().splitlines()[-1]
assert out == "42", f"psql read {out!r}"

s3 = svc["s3"]
client = boto3.client(
    "s3", endpoint_url=s3["endpoint_url"], region_name=s3["region"],
    aws_access_key_id=s3["access_key_id"], aws_secret_access_key=s3["secret_access_key"],
)
client.create_bucket(Bucket="clients-check")
client.put_object(Bucket="clients-check", Key="k", Body=b"boto3")
assert client.get_object(Bucket="clients-check", Key="k")["Body"].read() == b"boto3"

n = svc["neo4j"]
with GraphDatabase.driver(n["bolt_url"], auth=(n["user"], n["password"])) as driver:
    records, _, _ = driver.execute_query("CREATE (p:Probe {v: 7}) RETURN p.v AS v")
    assert records[0]["v"] == 7

otel = svc["otel"]
body = json.dumps({"resourceSpans": [{"resource": {"attributes": [
    {"key": "service.name", "value": {"stringValue": "clients-check"}}]},
    "scopeSpans": [{"spans": [{"traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331", "name": "from-python", "kind": 1,
        "startTimeUnixNano": "1", "endTimeUnixNano": "2"}]}]}]}).encode()
req = urllib.request.Request(otel["otlp_http"] + "/v1/traces", data=body,
                             headers={"content-type": "application/json"})
assert urllib.request.urlopen(req).status == 200
print("clients ok")
