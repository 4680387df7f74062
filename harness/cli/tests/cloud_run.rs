//! The Cloud Run emulator driven by the real `gcloud` CLI and by Google's client library, as a
//! user would drive Cloud Run: `harness emulate cloud-run` prints the environment that points
//! gcloud at it, and every command here is gcloud's own. What gcloud reports is checked
//! against what the ingress serves, and the API's error answers against the real API's shape.

mod common;

use std::{collections::BTreeMap, path::Path, process::Command, time::Duration};

use common::cloud_run::{Emulator, condition, get, version};
use serde_json::Value;

#[test]
fn deploy_split_tag_and_roll_back_with_gcloud() {
    let emu = Emulator::start(&[]);
    // A new service.
    let (ok, _, err) = emu.run(&["run", "deploy", "hello", "--image=example/hello:v1"]);
    assert!(ok, "{err}");
    assert!(
        err.contains("has been deployed and is serving 100 percent of traffic"),
        "{err}"
    );
    let svc = emu.describe("hello");
    assert_eq!(condition(&svc, "Ready")["status"], "True");
    let v1 = svc["status"]["latestReadyRevisionName"]
        .as_str()
        .expect("ready")
        .to_owned();
    assert!(v1.starts_with("hello-00001-"), "{v1}");
    let url = svc["status"]["url"].as_str().expect("url").to_owned();
    assert!(err.contains(&url), "gcloud prints the service URL: {err}");
    let got = version(&url);
    assert_eq!(got["version"], "v1");
    assert_eq!(got["revision"], v1.as_str());
    assert_eq!(got["service"], "hello");

    // A new revision with changed env.
    emu.ok(&[
        "run",
        "deploy",
        "hello",
        "--image=example/hello:v2",
        "--update-env-vars=GREETING=hi",
    ]);
    let svc = emu.describe("hello");
    let v2 = svc["status"]["latestReadyRevisionName"]
        .as_str()
        .expect("ready")
        .to_owned();
    assert_ne!(v1, v2);
    assert_eq!(version(&url)["revision"], v2.as_str());
    let env: Value = get(&format!("{url}/env?name=GREETING"))
        .json()
        .expect("env");
    assert_eq!(env["value"], "hi");

    // revisions list: both, newest first, labelled with their service.
    let listed: Value = serde_json::from_str(&emu.ok(&[
        "run",
        "revisions",
        "list",
        "--service=hello",
        "--format=json",
    ]))
    .expect("json");
    let names: Vec<&str> = listed
        .as_array()
        .expect("list")
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, [v2.as_str(), v1.as_str()]);

    // A 50/50 split over 1,000 requests lands within ±5 %, on exactly what gcloud reports.
    emu.ok(&[
        "run",
        "services",
        "update-traffic",
        "hello",
        &format!("--to-revisions={v1}=50,{v2}=50"),
    ]);
    let svc = emu.describe("hello");
    let reported: BTreeMap<String, u64> = svc["status"]["traffic"]
        .as_array()
        .expect("traffic")
        .iter()
        .map(|t| {
            (
                t["revisionName"].as_str().unwrap_or_default().to_owned(),
                t["percent"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        reported,
        BTreeMap::from([(v1.clone(), 50), (v2.clone(), 50)])
    );
    let client = reqwest::blocking::Client::new();
    let mut served: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..1000 {
        let v: Value = client
            .get(format!("{url}/version"))
            .send()
            .expect("get")
            .json()
            .expect("json");
        *served
            .entry(v["revision"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    assert_eq!(served.len(), 2, "{served:?}");
    for rev in [&v1, &v2] {
        let n = served[rev.as_str()];
        assert!(
            (450..=550).contains(&n),
            "{rev} got {n} of 1000: {served:?}"
        );
    }

    // A tag gets its own URL, serving its revision only; removing it closes the URL.
    emu.ok(&[
        "run",
        "services",
        "update-traffic",
        "hello",
        &format!("--set-tags=blue={v1}"),
    ]);
    let svc = emu.describe("hello");
    let tagged = svc["status"]["traffic"]
        .as_array()
        .expect("traffic")
        .iter()
        .find(|t| t["tag"] == "blue")
        .expect("blue in status.traffic")
        .clone();
    assert_eq!(tagged["revisionName"], v1.as_str());
    let tag_url = tagged["url"].as_str().expect("tag url").to_owned();
    assert_ne!(tag_url, url);
    for _ in 0..20 {
        assert_eq!(version(&tag_url)["revision"], v1.as_str());
    }
    emu.ok(&[
        "run",
        "services",
        "update-traffic",
        "hello",
        "--remove-tags=blue",
    ]);
    let gone = reqwest::blocking::Client::new()
        .get(format!("{tag_url}/version"))
        .timeout(Duration::from_secs(2))
        .send();
    assert!(
        gone.is_err(),
        "the tag's URL still answers after --remove-tags"
    );

    // --to-latest: everything to v2. Rolling back: everything to v1, on every request.
    emu.ok(&["run", "services", "update-traffic", "hello", "--to-latest"]);
    for _ in 0..50 {
        assert_eq!(version(&url)["revision"], v2.as_str());
    }
    emu.ok(&[
        "run",
        "services",
        "update-traffic",
        "hello",
        &format!("--to-revisions={v1}=100"),
    ]);
    let svc = emu.describe("hello");
    assert_eq!(svc["status"]["traffic"][0]["revisionName"], v1.as_str());
    for _ in 0..100 {
        assert_eq!(version(&url)["version"], "v1");
    }
}

#[test]
fn a_revision_that_fails_to_start_gets_no_traffic_and_the_previous_keeps_it() {
    let emu = Emulator::start(&[]);
    emu.ok(&["run", "deploy", "hello", "--image=example/hello:v1"]);
    let before = emu.describe("hello");
    let v1 = before["status"]["latestReadyRevisionName"]
        .as_str()
        .expect("ready")
        .to_owned();
    let url = before["status"]["url"].as_str().expect("url").to_owned();

    let err = emu.fails(&["run", "deploy", "hello", "--image=example/crash"]);
    assert!(
        err.contains("is not ready and cannot serve traffic"),
        "{err}"
    );
    assert!(err.contains("Container called exit(3)."), "{err}");
    let after = emu.describe("hello");
    assert_eq!(condition(&after, "Ready")["status"], "False");
    assert_eq!(condition(&after, "ConfigurationsReady")["status"], "False");
    let bad = after["status"]["latestCreatedRevisionName"]
        .as_str()
        .expect("created")
        .to_owned();
    assert_ne!(bad, v1);
    assert_eq!(after["status"]["latestReadyRevisionName"], v1.as_str());
    assert_eq!(
        after["status"]["traffic"], before["status"]["traffic"],
        "traffic changed"
    );
    for _ in 0..100 {
        assert_eq!(version(&url)["revision"], v1.as_str());
    }
    let to_bad = emu
        .events()
        .into_iter()
        .filter(|e| e["event"] == "request" && e["revision"] == bad.as_str())
        .count();
    assert_eq!(to_bad, 0, "the failed revision received requests");

    // The revision itself says why.
    let rev: Value =
        serde_json::from_str(&emu.ok(&["run", "revisions", "describe", &bad, "--format=json"]))
            .expect("json");
    assert_eq!(condition(&rev, "Ready")["status"], "False");
    assert_eq!(
        condition(&rev, "Ready")["reason"],
        "HealthCheckContainerError"
    );

    // An image the map does not have is a deploy error, as a missing image is.
    let err = emu.fails(&["run", "deploy", "hello", "--image=example/nothere:v1"]);
    assert!(
        err.contains("Image 'example/nothere:v1' not found."),
        "{err}"
    );
    // A startup probe that fails: a revision that listens but answers its probe with 500.
    let err = emu.fails(&[
        "run",
        "deploy",
        "hello",
        "--image=example/hello:v2",
        "--update-env-vars=FAIL_ROUTE=/fail",
        "--startup-probe=httpGet.path=/fail,failureThreshold=2,periodSeconds=1,timeoutSeconds=1",
    ]);
    assert!(err.contains("STARTUP HTTP probe failed 2 times"), "{err}");
    for _ in 0..20 {
        assert_eq!(version(&url)["revision"], v1.as_str());
    }
}

#[test]
fn bad_requests_get_the_real_api_errors_and_gcloud_prints_them() {
    let emu = Emulator::start(&[]);
    emu.ok(&[
        "run",
        "deploy",
        "hello",
        "--image=example/hello:v1",
        "--revision-suffix=one",
    ]);
    // An unknown revision in traffic.
    let err = emu.fails(&[
        "run",
        "services",
        "update-traffic",
        "hello",
        "--to-revisions=hello-nope=100",
    ]);
    assert!(
        err.contains("Revision 'hello-nope' referenced in traffic not found."),
        "{err}"
    );
    // A revision name that is taken.
    let err = emu.fails(&[
        "run",
        "deploy",
        "hello",
        "--image=example/hello:v2",
        "--revision-suffix=one",
    ]);
    assert!(err.contains("ALREADY_EXISTS: Revision named 'hello-one' with different configuration already exists."), "{err}");
    // A service that does not exist.
    let err = emu.fails(&["run", "services", "describe", "nothere"]);
    assert!(err.contains("nothere"), "{err}");

    // The API itself: status and `error.code/message/status`.
    let api = format!(
        "{}/apis/serving.knative.dev/v1/namespaces/demo/services",
        emu.url()
    );
    let client = reqwest::blocking::Client::new();
    let svc: Value = client
        .get(format!("{api}/hello"))
        .send()
        .expect("get")
        .json()
        .expect("json");
    let mut body = svc.clone();
    body["spec"]["traffic"] = serde_json::json!([
        {"revisionName": "hello-one", "percent": 60},
        {"latestRevision": true, "percent": 30},
    ]);
    let r = client
        .put(format!("{api}/hello"))
        .json(&body)
        .send()
        .expect("put");
    assert_eq!(r.status(), 400);
    let e: Value = r.json().expect("json");
    assert_eq!(e["error"]["code"], 400);
    assert_eq!(e["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(
        e["error"]["message"],
        "Traffic targets sum to 90, want 100: spec.traffic"
    );

    let mut body = svc.clone();
    body["spec"]["template"]["spec"]["containers"][0]["imagee"] = serde_json::json!("x");
    let r = client
        .put(format!("{api}/hello"))
        .json(&body)
        .send()
        .expect("put");
    assert_eq!(r.status(), 400);
    let e: Value = r.json().expect("json");
    assert_eq!(
        e["error"]["message"],
        "Invalid JSON payload received. Unknown name \"imagee\" at 'spec.template.spec.containers[0]': Cannot find field."
    );
    assert_eq!(
        e["error"]["details"][0]["fieldViolations"][0]["field"],
        "spec.template.spec.containers[0]"
    );

    let r = client.post(&api).json(&svc).send().expect("post");
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<Value>().expect("json")["error"]["status"],
        "ALREADY_EXISTS"
    );

    let r = client.get(format!("{api}/nothere")).send().expect("get");
    assert_eq!(r.status(), 404);
    let e: Value = r.json().expect("json");
    assert_eq!(e["error"]["status"], "NOT_FOUND");
    assert_eq!(
        e["error"]["message"],
        "Resource 'nothere' of kind 'SERVICE' in region 'us-central1' in project 'demo' does not exist."
    );
    let r = client
        .get(format!(
            "{}/apis/serving.knative.dev/v1/namespaces/other/services",
            emu.url()
        ))
        .send()
        .expect("get");
    assert_eq!(r.status(), 403);
    // Nothing changed: still one revision, serving.
    assert_eq!(
        version(svc["status"]["url"].as_str().expect("url"))["revision"],
        "hello-one"
    );
}

#[test]
fn jobs_run_their_tasks_with_the_contract_and_retries() {
    let emu = Emulator::start(&[]);
    emu.ok(&[
        "run",
        "jobs",
        "create",
        "ingest",
        "--image=example/task",
        "--tasks=3",
        "--max-retries=1",
    ]);
    emu.ok(&["run", "jobs", "execute", "ingest", "--wait"]);
    let listed: Value = serde_json::from_str(&emu.ok(&[
        "run",
        "jobs",
        "executions",
        "list",
        "--job=ingest",
        "--format=json",
    ]))
    .expect("json");
    let first = &listed[0];
    assert_eq!(first["status"]["succeededCount"], 3);
    assert_eq!(first["status"]["failedCount"], 0);
    let exec = first["metadata"]["name"].as_str().expect("name").to_owned();
    let logs = emu.dir.path().join("logs").join(&exec);
    for i in 0..3 {
        let said =
            std::fs::read_to_string(logs.join(format!("task{i}-attempt0.log"))).expect("task log");
        assert!(
            said.contains(&format!(
                "CLOUD_RUN_JOB=ingest CLOUD_RUN_EXECUTION={exec} CLOUD_RUN_TASK_INDEX={i} CLOUD_RUN_TASK_COUNT=3 CLOUD_RUN_TASK_ATTEMPT=0"
            )),
            "{said}"
        );
    }

    // A task that fails once is retried and the execution succeeds.
    emu.ok(&[
        "run",
        "jobs",
        "update",
        "ingest",
        "--update-env-vars=FAIL_INDEX=1,FAIL_ATTEMPTS=1",
    ]);
    emu.ok(&["run", "jobs", "execute", "ingest", "--wait"]);
    // One that fails every attempt fails the execution, and gcloud exits non-zero.
    emu.ok(&[
        "run",
        "jobs",
        "update",
        "ingest",
        "--update-env-vars=FAIL_INDEX=2,FAIL_ATTEMPTS=9",
    ]);
    let err = emu.fails(&["run", "jobs", "execute", "ingest", "--wait"]);
    assert!(err.contains("The execution failed."), "{err}");
    let listed: Value = serde_json::from_str(&emu.ok(&[
        "run",
        "jobs",
        "executions",
        "list",
        "--job=ingest",
        "--format=json",
    ]))
    .expect("json");
    let mut listed = listed.as_array().expect("list").clone();
    listed.sort_by_key(|e| {
        e["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    });
    let by_count: Vec<(u64, u64, u64)> = listed
        .iter()
        .map(|e| {
            let s = &e["status"];
            (
                s["succeededCount"].as_u64().unwrap_or(0),
                s["failedCount"].as_u64().unwrap_or(0),
                s["retriedCount"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(by_count, [(3, 0, 0), (3, 0, 1), (2, 1, 1)], "oldest first");
}

/// `tests/cloud_run_client.py` (Google's client library) in `phase` against the emulator;
/// what it saw.
fn library(emu: &Emulator, phase: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cloud_run_client.py");
    let out = Command::new("python3")
        .arg(&script)
        .args([emu.url().as_str(), "demo", "us-central1", phase])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "the client library failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script's json")
}

#[test]
fn googles_client_library_creates_runs_lists_and_deletes_jobs() {
    let emu = Emulator::start(&[]);
    let seen = library(&emu, "jobs");
    let p = "projects/demo/locations/us-central1";
    let job = format!("{p}/jobs/lib-job");
    assert_eq!(seen["job"]["name"], job.as_str());
    assert_eq!(seen["job"]["task_count"], 3);
    assert_eq!(seen["job"]["timeout"], 30);
    assert_eq!(seen["job"]["terminal"], "CONDITION_SUCCEEDED");
    // run_job's operation ends when the execution has: all three tasks succeeded.
    let run = &seen["run"];
    assert_eq!(run["job"], "lib-job");
    assert_eq!(run["task_count"], 3);
    assert_eq!(run["succeeded"], 3);
    assert_eq!(run["failed"], 0);
    assert_eq!(run["completed"], true);
    let first = run["name"].as_str().expect("execution name");
    assert!(
        first.starts_with(&format!("{job}/executions/lib-job-")),
        "{first}"
    );
    // A run whose task fails ends the operation with an error naming the task.
    let failed = &seen["failed_run"];
    assert_eq!(failed["code"], 400, "{seen}");
    assert!(
        failed["message"]
            .as_str()
            .unwrap_or_default()
            .contains("-task0 failed"),
        "{seen}"
    );
    // Both executions are listed, newest first, with their counts.
    let listed = seen["executions"].as_array().expect("executions");
    assert_eq!(listed.len(), 2, "{seen}");
    assert_eq!(listed[1]["name"], first);
    assert_eq!(listed[1]["succeeded"], 3);
    assert_eq!(listed[0]["failed"], 1);
    assert_eq!(seen["execution_get"], 3);
    assert_eq!(seen["job_after"]["execution_count"], 2);
    assert_eq!(seen["job_after"]["latest"], listed[0]["name"]);
    assert_eq!(seen["listed_jobs"], serde_json::json!([job]));
    assert!(
        seen["bad_id"]
            .as_str()
            .unwrap_or_default()
            .contains("job_id: Resource name must use only lowercase letters"),
        "{seen}"
    );
    assert!(
        seen["missing_job"]
            .as_str()
            .unwrap_or_default()
            .contains("'nothere'"),
        "{seen}"
    );
    // gcloud (the v1 surface) sees the same job and executions, and the tasks really ran
    // with the library's task count.
    let described: Value =
        serde_json::from_str(&emu.ok(&["run", "jobs", "describe", "lib-job", "--format=json"]))
            .expect("json");
    assert_eq!(described["status"]["executionCount"], 2);
    let listed_by_gcloud = emu.ok(&["run", "jobs", "executions", "list", "--job=lib-job"]);
    let short = first.rsplit('/').next().expect("short name");
    assert!(listed_by_gcloud.contains(short), "{listed_by_gcloud}");
    let log = std::fs::read_to_string(
        emu.dir
            .path()
            .join(format!("logs/{short}/task2-attempt0.log")),
    )
    .expect("task 2's log");
    assert!(log.contains("CLOUD_RUN_TASK_COUNT=3"), "{log}");
    let deleted = library(&emu, "jobs-delete");
    assert_eq!(deleted["deleted"], job.as_str());
    assert_eq!(deleted["after_delete"], serde_json::json!([]));
    let err = emu.fails(&["run", "jobs", "describe", "lib-job"]);
    assert!(err.contains("lib-job"), "{err}");
}

#[test]
fn googles_client_library_lists_creates_updates_and_deletes_services() {
    let emu = Emulator::start(&[]);
    emu.ok(&["run", "deploy", "hello", "--image=example/hello:v1"]);
    let client = |phase: &str| library(&emu, phase);
    let seen = client("make");
    let p = "projects/demo/locations/us-central1";
    // What gcloud deployed, the library lists.
    assert_eq!(
        seen["before"],
        serde_json::json!([format!("{p}/services/hello")])
    );
    // It created a service through a long-running operation, and it serves.
    let created = &seen["created"];
    assert_eq!(created["name"], format!("{p}/services/made"));
    assert_eq!(created["terminal"], "CONDITION_SUCCEEDED");
    assert_eq!(created["max_instances"], 3);
    let v1 = created["latest_ready"].as_str().expect("latest ready");
    assert!(
        v1.starts_with(&format!("{p}/services/made/revisions/made-00001-")),
        "{v1}"
    );
    assert_eq!(seen["served"]["version"], "lib-v1");
    assert_eq!(
        seen["served"]["revision"],
        v1.rsplit('/').next().expect("name")
    );
    // An update makes a new revision that takes the traffic.
    let v2 = seen["updated_latest_ready"].as_str().expect("updated");
    assert_ne!(v1, v2);
    assert_eq!(seen["served_after_update"]["version"], "lib-v2");
    assert_eq!(
        seen["revisions"],
        serde_json::json!([v2, v1]),
        "newest first"
    );
    assert_eq!(seen["revision_service"], format!("{p}/services/made"));
    assert_eq!(
        seen["after"],
        serde_json::json!([format!("{p}/services/hello"), format!("{p}/services/made")])
    );
    // gcloud sees the library's service too, with the same revision.
    let made = emu.describe("made");
    assert_eq!(
        made["status"]["latestReadyRevisionName"],
        v2.rsplit('/').next().expect("name")
    );
    // Errors come back as the library's own exceptions.
    assert!(
        seen["missing"]
            .as_str()
            .unwrap_or_default()
            .contains("'nothere'"),
        "{seen}"
    );
    assert!(
        seen["duplicate"]
            .as_str()
            .unwrap_or_default()
            .contains("already exists"),
        "{seen}"
    );
    let deleted = client("delete");
    assert_eq!(
        deleted["after_delete"],
        serde_json::json!([format!("{p}/services/hello")])
    );
    let err = emu.fails(&["run", "services", "describe", "made"]);
    assert!(err.contains("made"), "{err}");
}
