"""Google's Cloud Run client library (google-cloud-run, REST transport) against the
emulator: list services and revisions, create a service and wait for its operation, read it
back, update it to a new revision (phase `make`), and delete it (phase `delete`). Prints one JSON object with what it saw;
the Rust test checks it against the emulator's own view and the ingress."""

import json
import sys
import urllib.request

from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import run_v2

url, project, region, phase = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
opts = ClientOptions(api_endpoint=url)
creds = AnonymousCredentials()
services = run_v2.ServicesClient(credentials=creds, transport="rest", client_options=opts)
revisions = run_v2.RevisionsClient(credentials=creds, transport="rest", client_options=opts)
parent = f"projects/{project}/locations/{region}"
seen = {}

if phase == "delete":
    services.delete_service(name=f"{parent}/services/made").result(timeout=60)
    seen["after_delete"] = [s.name for s in services.list_services(parent=parent)]
    print(json.dumps(seen))
    sys.exit(0)

seen["before"] = [s.name for s in services.list_services(parent=parent)]
made = services.create_service(
    parent=parent,
    service_id="made",
    service=run_v2.Service(
        template=run_v2.RevisionTemplate(
            containers=[run_v2.Container(
                image="example/hello:v1",
                env=[run_v2.EnvVar(name="APP_VERSION", value="lib-v1")],
            )],
            scaling=run_v2.RevisionScaling(max_instance_count=3),
        )
    ),
).result(timeout=60)
seen["created"] = {
    "name": made.name,
    "uri": made.uri,
    "latest_ready": made.latest_ready_revision,
    "terminal": run_v2.Condition.State(made.terminal_condition.state).name,
    "max_instances": made.template.scaling.max_instance_count,
}
with urllib.request.urlopen(made.uri + "/version") as r:
    seen["served"] = json.load(r)

got = services.get_service(name=f"{parent}/services/made")
got.template.containers[0].env[0].value = "lib-v2"
updated = services.update_service(service=got).result(timeout=60)
seen["updated_latest_ready"] = updated.latest_ready_revision
with urllib.request.urlopen(updated.uri + "/version") as r:
    seen["served_after_update"] = json.load(r)

seen["after"] = sorted(s.name for s in services.list_services(parent=parent))
seen["revisions"] = [r.name for r in revisions.list_revisions(parent=f"{parent}/services/made")]
seen["revision_service"] = revisions.get_revision(name=seen["revisions"][0]).service

try:
    services.get_service(name=f"{parent}/services/nothere")
    seen["missing"] = "found"
except exceptions.NotFound as e:
    seen["missing"] = str(e.message)

try:
    services.create_service(
        parent=parent, service_id="made",
        service=run_v2.Service(template=run_v2.RevisionTemplate(containers=[run_v2.Container(image="example/hello:v1")])),
    ).result(timeout=60)
    seen["duplicate"] = "created"
except exceptions.Conflict as e:
    seen["duplicate"] = str(e.message)

print(json.dumps(seen))
