//! The Toxiproxy-compatible control API, request by request: the JSON shapes, statuses and
//! error bodies Toxiproxy 2.12 answers with (the clients themselves are driven in
//! `harness/cli/tests/toxiproxy.rs`).

use std::sync::Arc;

use harness_engine::faults::api::Control;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

async fn api() -> (
    Arc<Control>,
    harness_engine::faults::api::ControlServer,
    Client,
) {
    let control = Control::new(3);
    let server = control
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    (control, server, Client::new())
}

async fn body(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    (status, r.text().await.expect("body"))
}

#[tokio::test]
async fn proxies_and_toxics_have_toxiproxys_shapes_and_errors() {
    let (_c, server, http) = api().await;
    let url = |p: &str| format!("{}{p}", server.url());
    let (s, b) = body(http.get(url("/version")).send().await.expect("version")).await;
    assert_eq!(
        (s, b.as_str()),
        (StatusCode::OK, "{\"version\": \"2.12.0\"}\n")
    );

    let r = http
        .post(url("/proxies"))
        .json(&json!({"name": "db", "upstream": "localhost:1"}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.expect("json");
    let listen = created["listen"].as_str().expect("listen").to_owned();
    assert!(
        listen.starts_with("127.0.0.1:") && !listen.ends_with(":0"),
        "{listen}"
    );
    assert_eq!(
        created,
        json!({"name": "db", "listen": listen, "upstream": "127.0.0.1:1", "enabled": true, "toxics": []})
    );

    // Missing fields, duplicates, unknown proxies and toxics: Toxiproxy's bodies, verbatim.
    let cases = [
        (
            json!({"upstream": "127.0.0.1:1"}),
            400,
            "missing required field: name",
        ),
        (
            json!({"name": "x"}),
            400,
            "missing required field: upstream",
        ),
        (
            json!({"name": "db", "upstream": "127.0.0.1:1"}),
            409,
            "proxy already exists",
        ),
    ];
    for (req, status, message) in cases {
        let (s, b) = body(
            http.post(url("/proxies"))
                .json(&req)
                .send()
                .await
                .expect("post"),
        )
        .await;
        assert_eq!(s.as_u16(), status, "{req}");
        assert_eq!(
            b,
            format!("{}\n", json!({"error": message, "status": status}))
        );
    }
    let (s, b) = body(http.get(url("/proxies/nowhere")).send().await.expect("get")).await;
    assert_eq!(
        (s.as_u16(), b.as_str()),
        (404, "{\"error\":\"proxy not found\",\"status\":404}\n")
    );

    let toxics = url("/proxies/db/toxics");
    let r = http
        .post(&toxics)
        .json(&json!({"type": "latency", "attributes": {"latency": 50}}))
        .send()
        .await
        .expect("toxic");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"name": "latency_downstream", "type": "latency", "stream": "downstream",
               "toxicity": 1.0, "attributes": {"latency": 50, "jitter": 0}})
    );
    let up = json!({"type": "slicer", "stream": "UPSTREAM", "name": "cut", "toxicity": 0.5,
                    "attributes": {"average_size": 10}});
    assert_eq!(
        http.post(&toxics)
            .json(&up)
            .send()
            .await
            .expect("post")
            .status(),
        200
    );
    // Upstream first, as Toxiproxy lists them.
    let list: Value = http
        .get(&toxics)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["cut", "latency_downstream"]);

    let cases = [
        (json!({"type": "latency"}), 409, "toxic already exists"),
        (json!({"type": "gremlin"}), 400, "invalid toxic type"),
        (
            json!({"type": "latency", "stream": "sideways"}),
            400,
            "stream was invalid, can be either upstream or downstream",
        ),
    ];
    for (req, status, message) in cases {
        let (s, b) = body(http.post(&toxics).json(&req).send().await.expect("post")).await;
        assert_eq!(s.as_u16(), status, "{req}");
        assert_eq!(
            b,
            format!("{}\n", json!({"error": message, "status": status}))
        );
    }
    let (s, b) = body(
        http.post(&toxics)
            .body("{not json")
            .send()
            .await
            .expect("post"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b.contains("\"error\":\"bad request body: "), "{b}");

    // An update lays the given attributes over the toxic's; the rest stay.
    let r = http
        .patch(url("/proxies/db/toxics/latency_downstream"))
        .json(&json!({"attributes": {"jitter": 5}}))
        .send()
        .await
        .expect("patch");
    let t: Value = r.json().await.expect("json");
    assert_eq!(t["attributes"], json!({"latency": 50, "jitter": 5}));
    let (s, _) = body(
        http.delete(url("/proxies/db/toxics/nothing"))
            .send()
            .await
            .expect("del"),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Disable, reset (back up, no toxics), delete.
    let r = http
        .patch(url("/proxies/db"))
        .json(&json!({"enabled": false}))
        .send()
        .await
        .expect("patch");
    assert_eq!(r.json::<Value>().await.expect("json")["enabled"], false);
    assert!(
        tokio::net::TcpStream::connect(&listen).await.is_err(),
        "disabled, yet listening"
    );
    assert_eq!(
        http.post(url("/reset"))
            .send()
            .await
            .expect("reset")
            .status(),
        204
    );
    let shown: Value = http
        .get(url("/proxies/db"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (shown["enabled"].clone(), shown["toxics"].clone()),
        (json!(true), json!([]))
    );
    assert_eq!(shown["listen"], listen, "re-enabled on the same address");
    assert_eq!(
        http.delete(url("/proxies/db"))
            .send()
            .await
            .expect("delete")
            .status(),
        204
    );
    assert!(
        tokio::net::TcpStream::connect(&listen).await.is_err(),
        "deleted, yet listening"
    );
}

#[tokio::test]
async fn populate_creates_keeps_and_replaces_and_browsers_are_refused() {
    let (_c, server, http) = api().await;
    let url = |p: &str| format!("{}{p}", server.url());
    let r = http
        .post(url("/populate"))
        .json(&json!([{"name": "a", "upstream": "127.0.0.1:1"}, {"name": "b", "upstream": "127.0.0.1:2", "enabled": false}]))
        .send()
        .await
        .expect("populate");
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.expect("json");
    let first = v["proxies"][0]["listen"].clone();
    assert_eq!(v["proxies"][1]["enabled"], false);
    // The same again keeps `a` where it is; a new upstream replaces it.
    let v: Value = http
        .post(url("/populate"))
        .json(&json!([{"name": "a", "upstream": "127.0.0.1:1"}]))
        .send()
        .await
        .expect("again")
        .json()
        .await
        .expect("json");
    assert_eq!(v["proxies"][0]["listen"], first);
    let v: Value = http
        .post(url("/populate"))
        .json(&json!([{"name": "a", "upstream": "127.0.0.1:3"}]))
        .send()
        .await
        .expect("replace")
        .json()
        .await
        .expect("json");
    assert_eq!(v["proxies"][0]["upstream"], "127.0.0.1:3");
    let (s, b) = body(
        http.post(url("/populate"))
            .json(&json!([{"name": "c"}]))
            .send()
            .await
            .expect("bad"),
    )
    .await;
    assert_eq!(
        (s.as_u16(), b.trim()),
        (
            400,
            "{\"error\":\"missing required field: upstream at proxy 1\",\"status\":400}"
        )
    );

    let r = http
        .get(url("/proxies"))
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64)")
        .send()
        .await
        .expect("browser");
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "a web page must not reach the API"
    );
    let all: Value = http
        .get(url("/proxies"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let names: Vec<&String> = all.as_object().expect("object").keys().collect();
    assert_eq!(names, ["a", "b"]);
}
