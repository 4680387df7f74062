//! Scenario-runner costs: setting up one scenario's isolation (database cloned from a
//! template, versioned bucket, graph label) on a running stack, and the overhead of an
//! `http` step against the same request made with reqwest directly.

use std::{path::PathBuf, sync::Arc, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use harness_engine::{
    run::{
        context::{Ctx, Redactor},
        isolation::{Isolation, Shared},
        steps::{self, Extensions},
    },
    stack::Stack,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn isolation(c: &mut Criterion) {
    let rt = runtime();
    let stack = rt
        .block_on(Stack::builder().postgres().object_store().start())
        .expect("stack");
    let shared = Arc::new(
        rt.block_on(Shared::connect(stack.endpoints(), false))
            .expect("connect"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("schema.sql"),
        "create table orders (id bigint primary key, total numeric);\n\
         insert into orders select g, g * 1.5 from generate_series(1, 1000) g;\n",
    )
    .expect("fixture");
    let mut group = c.benchmark_group("isolation");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(15));
    for (name, yaml) in [
        (
            "empty",
            "name: b\nstack: [postgres, s3]\nsteps:\n  - exec: { command: 'true' }\n",
        ),
        (
            "sql_fixture_1000_rows",
            "name: b\nstack: [postgres, s3]\nfixtures:\n  - sql: schema.sql\nsteps:\n  - exec: { command: 'true' }\n",
        ),
    ] {
        let scenario = harness_scenario::parse("b.yaml", yaml).expect("valid");
        let (shared, dir, scenario) = (
            Arc::clone(&shared),
            dir.path().to_path_buf(),
            Arc::new(scenario),
        );
        let mut n = 0u64;
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (shared, dir, scenario) =
                    (Arc::clone(&shared), dir.clone(), Arc::clone(&scenario));
                let base = n;
                n += iters;
                async move {
                    let mut total = Duration::ZERO;
                    for i in 0..iters {
                        let id = format!("bench{name}{}", base + i).replace('_', "");
                        let t = std::time::Instant::now();
                        let iso = shared.prepare(&id, &scenario, &dir).await.expect("prepare");
                        total += t.elapsed();
                        shared.cleanup(&iso).await;
                    }
                    total
                }
            })
        });
    }
    group.finish();
    rt.block_on(stack.shutdown());
}

fn http_step(c: &mut Criterion) {
    let rt = runtime();
    let server = rt.block_on(wiremock::MockServer::start());
    rt.block_on(
        wiremock::Mock::given(wiremock::matchers::path("/orders/1"))
            .respond_with(
                wiremock::ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"id": 1, "status": "paid", "total": 12.5})),
            )
            .mount(&server),
    );
    let url = format!("{}/orders/1", server.uri());
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let yaml = format!(
        "name: b\nvars:\n  url: {url}\nsteps:\n  - http:\n      url: \"${{vars.url}}\"\n      expect:\n        status: 200\n        json: {{ \"$.status\": paid }}\n      capture: {{ id: \"$.id\" }}\n"
    );
    let scenario = Arc::new(harness_scenario::parse("b.yaml", &yaml).expect("valid"));
    let mut ctx = Ctx::new(
        Arc::clone(&scenario),
        harness_scenario::Source::new("b.yaml", yaml.clone()),
        PathBuf::from("b.yaml"),
        Default::default(),
        Isolation::default(),
        Redactor::default(),
        client.clone(),
        0,
        false,
    );
    ctx.resolve_vars().expect("vars");
    let ctx = Arc::new(tokio::sync::Mutex::new(ctx));
    let ext = Extensions::default();
    let mut group = c.benchmark_group("http");
    group.bench_function("raw_reqwest", |b| {
        b.to_async(&rt).iter(|| async {
            let resp = client.get(&url).send().await.expect("send");
            assert_eq!(resp.status(), 200);
            let body: serde_json::Value = resp.json().await.expect("json");
            assert_eq!(body["status"], "paid");
        })
    });
    group.bench_function("harness_http_step", |b| {
        b.to_async(&rt).iter(|| async {
            let mut ctx = ctx.lock().await;
            steps::run(&mut ctx, &scenario.steps[0], &ext)
                .await
                .expect("step passes");
        })
    });
    group.finish();
}

criterion_group!(benches, isolation, http_step);
criterion_main!(benches);
