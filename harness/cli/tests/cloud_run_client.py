"""Google's Cloud Run client library (google-cloud-run, REST transport) against the
emulator: list services and revisions, create a service and wait for its operation, read it
back, update it to a new revision (phase `make`), and delete it (phase `delete`); create a
job, run it to success and to failure, list and read its executions (phase `jobs`), and
delete it (phase `jobs-delete`). Prints one JSON object with what it saw; the Rust test checks it against the
emulator's own view (gcloud's), the ingress and the tasks' logs."""

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

if phase == "jobs":
    jobs = run_v2.JobsClient(credentials=creds, transport="rest", client_options=opts)
    executions = run_v2.ExecutionsClient(credentials=creds, transport="rest", client_options=opts)
    job = jobs.create_job(
        parent=parent,
        job_id="lib-job",
        job=run_v2.Job(template=run_v2.ExecutionTemplate(
            task_count=3,
            parallelism=2,
            template=run_v2.TaskTemplate(
                containers=[run_v2.Container(
                    image="example/task",
                    env=[run_v2.EnvVar(name="TASK_MS", value="50")],
                )],
                max_retries=0,
                timeout="30s",
            ),
        )),
    ).result(timeout=60)
    seen["job"] = {"name": job.name, "task_count": job.template.task_count,
                   "timeout": job.template.template.timeout.seconds,
                   "terminal": run_v2.Condition.State(job.terminal_condition.state).name}
    done = jobs.run_job(name=job.name).result(timeout=120)
    seen["run"] = {"name": done.name, "job": done.job, "succeeded": done.succeeded_count,
                   "failed": done.failed_count, "task_count": done.task_count,
                   "completed": done.completion_time is not None and done.completion_time.timestamp() > 0}
    try:
        jobs.run_job(request=run_v2.RunJobRequest(
            name=job.name,
            overrides=run_v2.RunJobRequest.Overrides(
                task_count=1,
                container_overrides=[run_v2.RunJobRequest.Overrides.ContainerOverride(
                    env=[run_v2.EnvVar(name="FAIL_INDEX", value="0")])],
            ),
        )).result(timeout=120)
        seen["failed_run"] = "succeeded"
    except exceptions.GoogleAPICallError as e:
        seen["failed_run"] = {"code": e.code.value if hasattr(e.code, "value") else e.code,
                              "message": str(e.message)}
    listed = list(executions.list_executions(parent=job.name))
    seen["executions"] = [{"name": e.name, "succeeded": e.succeeded_count, "failed": e.failed_count}
                          for e in listed]
    seen["execution_get"] = executions.get_execution(name=done.name).succeeded_count
    seen["job_after"] = {"execution_count": jobs.get_job(name=job.name).execution_count,
                         "latest": jobs.get_job(name=job.name).latest_created_execution.name}
    seen["listed_jobs"] = [j.name for j in jobs.list_jobs(parent=parent)]
    try:
        jobs.create_job(parent=parent, job_id="Bad_Name", job=run_v2.Job(
            template=run_v2.ExecutionTemplate(template=run_v2.TaskTemplate(
                containers=[run_v2.Container(image="example/task")])))).result(timeout=60)
        seen["bad_id"] = "created"
    except exceptions.BadRequest as e:
        seen["bad_id"] = str(e.message)
    try:
        jobs.get_job(name=f"{parent}/jobs/nothere")
        seen["missing_job"] = "found"
    except exceptions.NotFound as e:
        seen["missing_job"] = str(e.message)
    print(json.dumps(seen))
    sys.exit(0)

if phase == "jobs-delete":
    jobs = run_v2.JobsClient(credentials=creds, transport="rest", client_options=opts)
    gone = jobs.delete_job(name=f"{parent}/jobs/lib-job").result(timeout=60)
    seen["deleted"] = gone.name
    seen["after_delete"] = [j.name for j in jobs.list_jobs(parent=parent)]
    print(json.dumps(seen))
    sys.exit(0)

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
