//! The Supabase emulator, in one run, on loopback, over one native Postgres:
//!
//! - `supabase/ready`: from `Supabase::start` (Supabase's roles, `auth` schema and functions
//!   installed into a fresh database, the gateway bound) until a REST request answers.
//!   `supabase start` pulls a dozen images and takes minutes; the target here is ≤ 1 s.
//! - `supabase/select/rest` and `supabase/select/sqlx`: the same filtered, ordered, limited
//!   select of 50 rows out of 10,000 as the signed-in owner, through the REST API (one
//!   kept-alive HTTP connection, the request in a transaction that takes the user's role and
//!   claims, so RLS applies) and straight over sqlx (the same role and claims set in a
//!   transaction by hand; the claims are the REST request's token's). Target: REST ≤ 1.5×
//!   sqlx.
//! - `supabase/statements/one_message` and `supabase/statements/four_round_trips`: what the
//!   emulator sends per request (the caller's settings and the select as one simple-protocol
//!   message, one implicit transaction) against the same work as `BEGIN`, the settings, the
//!   select and `COMMIT`, each its own round trip.
//! - `supabase/sign_in`: one password grant (bcrypt check, a session, a refresh token and a
//!   signed access token).
//!
//! After criterion, a pass of 1,000 alternating selects prints both medians and their ratio
//! for docs/benchmarks.md.

use std::time::{Duration, Instant};

use criterion::Criterion;
use harness_engine::{
    emulators::supabase::{Config, Supabase},
    stack::{ServiceKind, Stack},
};
use serde_json::{Value, json};
use sqlx::{Connection, Executor, Row, postgres::PgPoolOptions};
use tokio::runtime::Runtime;

const QUERY: &str = "SELECT coalesce(json_agg(_r), '[]'::json)::text FROM (SELECT id, body, score FROM notes WHERE score > $1 ORDER BY score DESC, id LIMIT 50) _r";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rt = Runtime::new().expect("runtime");
    let stack = rt.block_on(async {
        Stack::builder()
            .service(ServiceKind::Postgres)
            .start()
            .await
            .expect("stack")
    });
    let pg = stack.endpoints().postgres.clone().expect("postgres");
    let admin = rt.block_on(async {
        PgPoolOptions::new()
            .max_connections(2)
            .connect_with(pg.connect_options().database("postgres"))
            .await
            .expect("admin")
    });
    let mut c = Criterion::default().configure_from_args();
    let mut n = 0u32;
    c.bench_function("supabase/ready", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (admin, pg) = (admin.clone(), pg.clone());
            let start = n;
            n += iters as u32;
            async move {
                let mut total = Duration::ZERO;
                for i in 0..iters as u32 {
                    let db = format!("bench_ready_{}", start + i);
                    sqlx::query(&format!("CREATE DATABASE {db}"))
                        .execute(&admin)
                        .await
                        .expect("create database");
                    let t = Instant::now();
                    let s = Supabase::start(Config {
                        postgres: pg.clone(),
                        database: db.clone(),
                        port: 0,
                        auth: Default::default(),
                        storage: None,
                    })
                    .await
                    .expect("start");
                    let r = reqwest::Client::new()
                        .get(format!("{}/auth/v1/settings", s.url()))
                        .header("apikey", s.keys().anon.expose())
                        .send()
                        .await
                        .expect("settings");
                    assert!(r.status().is_success());
                    total += t.elapsed();
                    s.shutdown().await;
                    sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
                        .execute(&admin)
                        .await
                        .expect("drop database");
                }
                total
            }
        })
    });

    // One project with 10,000 notes of one user, and that user signed in.
    rt.block_on(async {
        sqlx::query("CREATE DATABASE bench_project")
            .execute(&admin)
            .await
            .expect("create database");
    });
    let s = rt.block_on(async {
        Supabase::start(Config {
            postgres: pg.clone(),
            database: "bench_project".into(),
            port: 0,
            auth: Default::default(),
            storage: None,
        })
        .await
        .expect("start")
    });
    let (url, anon) = (s.url(), s.keys().anon.expose().to_owned());
    let http = reqwest::Client::new();
    let session: Value = rt.block_on(async {
        http.post(format!("{url}/auth/v1/signup"))
            .header("apikey", &anon)
            .json(&json!({"email": "bench@example.com", "password": "bench-password"}))
            .send()
            .await
            .expect("signup")
            .json()
            .await
            .expect("session")
    });
    let token = session["access_token"].as_str().expect("token").to_owned();
    let user = session["user"]["id"].as_str().expect("user").to_owned();
    let pool = rt.block_on(async {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            // No ping before each use, as the emulator's pool sends none.
            .test_before_acquire(false)
            .connect_with(pg.connect_options().database("bench_project"))
            .await
            .expect("pool");
        sqlx::raw_sql(&format!(
            "CREATE TABLE notes (id bigserial PRIMARY KEY, owner uuid NOT NULL DEFAULT auth.uid(), body text NOT NULL, score int NOT NULL); \
             CREATE INDEX ON notes (score); \
             ALTER TABLE notes ENABLE ROW LEVEL SECURITY; \
             CREATE POLICY own ON notes FOR SELECT TO authenticated USING (owner = auth.uid()); \
             INSERT INTO notes (owner, body, score) SELECT '{user}', 'note ' || g, g % 1000 FROM generate_series(1, 10000) g; \
             ANALYZE notes;"
        ))
        .execute(&pool)
        .await
        .expect("notes");
        pool
    });
    // The claims the REST request carries (its token's, as the gateway verified them), so
    // that both sides evaluate the policy over the same `request.jwt.claims`.
    let claims = s
        .keys()
        .verify(&token)
        .expect("the token's claims")
        .to_string();
    let rest_url = format!(
        "{url}/rest/v1/notes?select=id,body,score&score=gt.500&order=score.desc,id&limit=50"
    );
    let rest = || {
        let (http, url, anon, token) =
            (http.clone(), rest_url.clone(), anon.clone(), token.clone());
        async move {
            let r = http
                .get(&url)
                .header("apikey", &anon)
                .header("authorization", format!("Bearer {token}"))
                .send()
                .await
                .expect("select");
            let rows: Value = r.json().await.expect("rows");
            assert_eq!(rows.as_array().map(Vec::len), Some(50));
        }
    };
    let direct = || {
        let (pool, claims) = (pool.clone(), claims.clone());
        async move {
            let mut conn = pool.acquire().await.expect("connection");
            let mut tx = conn.begin().await.expect("begin");
            sqlx::query("SELECT set_config('request.jwt.claims', $1, true), set_config('role', 'authenticated', true)")
                .bind(&claims)
                .execute(&mut *tx)
                .await
                .expect("role");
            let text: String = sqlx::query_scalar(QUERY)
                .bind(500)
                .fetch_one(&mut *tx)
                .await
                .expect("select");
            tx.commit().await.expect("commit");
            let rows: Value = serde_json::from_str(&text).expect("rows");
            assert_eq!(rows.as_array().map(Vec::len), Some(50));
        }
    };
    let message = format!(
        "SELECT set_config('request.jwt.claims', '{}', true), set_config('role', 'authenticated', true); {}",
        claims.replace('\'', "''"),
        QUERY.replace("$1", "CAST(('500'::text) AS integer)")
    );
    let one_message = || {
        let (pool, message) = (pool.clone(), message.clone());
        async move {
            let rows = pool
                .fetch_all(sqlx::raw_sql(&message))
                .await
                .expect("one message");
            let text: String = rows[1].get(0);
            let rows: Value = serde_json::from_str(&text).expect("rows");
            assert_eq!(rows.as_array().map(Vec::len), Some(50));
        }
    };
    c.bench_function("supabase/statements/one_message", |b| {
        b.to_async(&rt).iter(one_message)
    });
    c.bench_function("supabase/statements/four_round_trips", |b| {
        b.to_async(&rt).iter(direct)
    });
    c.bench_function("supabase/select/rest", |b| b.to_async(&rt).iter(rest));
    c.bench_function("supabase/select/sqlx", |b| b.to_async(&rt).iter(direct));
    c.bench_function("supabase/sign_in", |b| {
        b.to_async(&rt).iter(|| {
            let (http, url, anon) = (http.clone(), url.clone(), anon.clone());
            async move {
                let r = http
                    .post(format!("{url}/auth/v1/token?grant_type=password"))
                    .header("apikey", &anon)
                    .json(&json!({"email": "bench@example.com", "password": "bench-password"}))
                    .send()
                    .await
                    .expect("sign in");
                assert!(r.status().is_success());
            }
        })
    });
    c.final_summary();

    // The gateway alone: the same client, key and connection, an answer without the database.
    let health = || {
        let (http, url, anon) = (http.clone(), url.clone(), anon.clone());
        async move {
            let r = http
                .get(format!("{url}/auth/v1/health"))
                .header("apikey", &anon)
                .send()
                .await
                .expect("health");
            let _: Value = r.json().await.expect("health body");
        }
    };
    let (mut a, mut b, mut h) = (Vec::new(), Vec::new(), Vec::new());
    rt.block_on(async {
        for _ in 0..1_000 {
            let t = Instant::now();
            rest().await;
            a.push(t.elapsed());
            let t = Instant::now();
            direct().await;
            b.push(t.elapsed());
            let t = Instant::now();
            health().await;
            h.push(t.elapsed());
        }
    });
    let (ra, rb, rh) = (median(a), median(b), median(h));
    println!(
        "select of 50 rows as the owner: REST median {ra:?}, sqlx median {rb:?}, ratio {:.2}; \
         an HTTP round trip through the gateway without the database (GET /auth/v1/health): median {rh:?}",
        ra.as_secs_f64() / rb.as_secs_f64()
    );
    rt.block_on(async {
        s.shutdown().await;
        pool.close().await;
        let _ = sqlx::query("DROP DATABASE bench_project WITH (FORCE)")
            .execute(&admin)
            .await;
        admin.close().await;
        stack.shutdown().await;
    });
}
