//! `harness emulate supabase` driven by the official Python client (supabase-py), and the
//! security properties a Supabase project relies on, checked over HTTP: tokens that are
//! expired, unsigned, wrongly signed or of a role no request may take are refused; a reused
//! refresh token revokes its session; injection attempts in filters and names are inert;
//! row-level security is Postgres's.

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use base64::Engine;
use common::harness;
use serde_json::{Value, json};

/// The emulator as a child process; stopped (SIGINT) when dropped.
struct Emulator {
    child: Child,
    info: Value,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let _ = self.child.wait();
    }
}

fn start(extra: &[&str]) -> Emulator {
    let mut child = harness()
        .args(["emulate", "supabase", "--json"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("harness emulate supabase");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the emulator's first line");
    let info: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    Emulator { child, info }
}

fn psql(url: &str, sql: &str) {
    let out = Command::new(harness_engine::runtimes::postgres_bin_dir().join("psql"))
        .args([url, "-qtAX", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const NOTES: &str = "CREATE TABLE notes (id bigserial PRIMARY KEY, \
    owner uuid NOT NULL DEFAULT auth.uid() REFERENCES auth.users (id) ON DELETE CASCADE, \
    body text NOT NULL, score int); \
    ALTER TABLE notes ENABLE ROW LEVEL SECURITY; \
    CREATE POLICY own_select ON notes FOR SELECT TO authenticated USING (owner = auth.uid()); \
    CREATE POLICY own_insert ON notes FOR INSERT TO authenticated WITH CHECK (owner = auth.uid()); \
    CREATE POLICY own_update ON notes FOR UPDATE TO authenticated USING (owner = auth.uid()) WITH CHECK (owner = auth.uid()); \
    CREATE POLICY own_delete ON notes FOR DELETE TO authenticated USING (owner = auth.uid()); \
    CREATE FUNCTION my_note_count() RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT count(*) FROM notes $$; \
    CREATE TABLE tags (id serial PRIMARY KEY, note_id bigint NOT NULL REFERENCES notes (id) ON DELETE CASCADE, label text NOT NULL); \
    ALTER TABLE tags ENABLE ROW LEVEL SECURITY; \
    CREATE POLICY tags_of_visible_notes ON tags FOR ALL TO authenticated \
        USING (EXISTS (SELECT 1 FROM notes n WHERE n.id = note_id)) \
        WITH CHECK (EXISTS (SELECT 1 FROM notes n WHERE n.id = note_id)); \
    CREATE POLICY own_folder_read ON storage.objects FOR SELECT TO authenticated \
        USING (bucket_id = 'avatars' AND (storage.foldername(name))[1] = auth.uid()::text); \
    CREATE POLICY own_folder_write ON storage.objects FOR INSERT TO authenticated \
        WITH CHECK (bucket_id = 'avatars' AND (storage.foldername(name))[1] = auth.uid()::text); \
    CREATE POLICY own_folder_update ON storage.objects FOR UPDATE TO authenticated \
        USING (bucket_id = 'avatars' AND (storage.foldername(name))[1] = auth.uid()::text); \
    CREATE POLICY own_folder_delete ON storage.objects FOR DELETE TO authenticated \
        USING (bucket_id = 'avatars' AND (storage.foldername(name))[1] = auth.uid()::text);";

/// Runs a client script of `tests/supabase/` with `program` (python3 or node) and the
/// emulator's URL and keys, and returns how many checks it reports (`ok N`, its last line).
fn run_client(
    program: &str,
    script: &str,
    e: &Emulator,
    extra: &[(&str, &std::path::Path)],
) -> usize {
    let s = |k: &str| e.info[k].as_str().expect(k).to_owned();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/supabase")
        .join(script);
    let out = Command::new(program)
        .arg(&path)
        .env("SUPABASE_URL", s("url"))
        .env("SUPABASE_ANON_KEY", s("anon_key"))
        .env("SUPABASE_PUBLISHABLE_KEY", s("publishable_key"))
        .env("SUPABASE_SERVICE_ROLE_KEY", s("service_role_key"))
        .env("SUPABASE_SECRET_KEY", s("secret_key"))
        .envs(extra.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{script}: {stdout}\n{stderr}");
    stdout
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("ok "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn supabase_py_signs_up_signs_in_refreshes_and_reads_only_its_own_rows() {
    let e = start(&[]);
    psql(
        e.info["database_url"].as_str().expect("database_url"),
        NOTES,
    );
    let n = run_client("python3", "py_client.py", &e, &[]);
    assert!(n >= 51, "every check of py_client.py ran: {n}");
}

#[test]
fn supabase_py_confirms_sign_ups_and_signs_in_by_magic_link_code_and_recovery_through_the_inbox() {
    let e = start(&["--confirm-email", "--asymmetric-keys"]);
    let n = run_client("python3", "py_email.py", &e, &[]);
    assert!(n >= 30, "every check of py_email.py ran: {n}");
}

/// Where `.ci/run` installs supabase-js (pinned) and ws.
fn node_modules() -> std::path::PathBuf {
    std::env::var_os("HARNESS_NODE_MODULES").map_or_else(
        || {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/harness-ci/node/node_modules")
        },
        std::path::PathBuf::from,
    )
}

#[test]
fn supabase_js_signs_in_writes_and_reads_under_rls_and_uses_storage() {
    let modules = node_modules();
    assert!(
        modules.join("@supabase/supabase-js").is_dir(),
        "supabase-js is not installed in {}: run `.ci/run --setup-only`",
        modules.display()
    );
    let e = start(&[]);
    let s = |k: &str| e.info[k].as_str().expect(k).to_owned();
    psql(&s("database_url"), NOTES);
    psql(
        &s("database_url"),
        "CREATE POLICY js_folder_read ON storage.objects FOR SELECT TO authenticated \
           USING (bucket_id = 'avatars-js' AND (storage.foldername(name))[1] = auth.uid()::text); \
         CREATE POLICY js_folder_write ON storage.objects FOR INSERT TO authenticated \
           WITH CHECK (bucket_id = 'avatars-js' AND (storage.foldername(name))[1] = auth.uid()::text); \
         CREATE POLICY js_folder_update ON storage.objects FOR UPDATE TO authenticated \
           USING (bucket_id = 'avatars-js' AND (storage.foldername(name))[1] = auth.uid()::text); \
         CREATE POLICY js_folder_delete ON storage.objects FOR DELETE TO authenticated \
           USING (bucket_id = 'avatars-js' AND (storage.foldername(name))[1] = auth.uid()::text);",
    );
    let n = run_client(
        "node",
        "js_client.cjs",
        &e,
        &[("NODE_PATH", modules.as_path())],
    );
    assert!(n >= 30, "every check of js_client.cjs ran: {n}");
}

#[test]
fn the_rest_surface_follows_the_live_schema_through_migrations() {
    let e = start(&[]);
    let s = |k: &str| e.info[k].as_str().expect(k).to_owned();
    let (url, db) = (s("url"), s("database_url"));
    let key = s("service_role_key");
    let http = reqwest::blocking::Client::new();
    let get = |q: &str| {
        let r = http
            .get(format!("{url}/rest/v1/{q}"))
            .header("apikey", &key)
            .header("authorization", format!("Bearer {key}"))
            .send()
            .expect("request");
        (
            r.status().as_u16(),
            r.json::<Value>().unwrap_or(Value::Null),
        )
    };
    assert_eq!(get("items?select=a").0, 404, "no table yet");
    psql(
        &db,
        "CREATE TABLE items (a int); INSERT INTO items VALUES (1)",
    );
    assert_eq!(get("items?select=a"), (200, json!([{"a": 1}])));
    psql(&db, "ALTER TABLE items ADD COLUMN b text DEFAULT 'x'");
    assert_eq!(get("items?select=a,b"), (200, json!([{"a": 1, "b": "x"}])));
    psql(
        &db,
        "DROP TABLE items; CREATE TABLE items (c int); INSERT INTO items VALUES (7)",
    );
    assert_eq!(get("items?select=c&c=eq.7"), (200, json!([{"c": 7}])));
    let (status, body) = get("items?select=a");
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("42703")),
        "{body}"
    );
}

#[test]
fn harness_up_serves_supabase_beside_its_stack_and_down_stops_it() {
    let out = harness()
        .args(["up", "--services", "supabase", "--detach", "--json"])
        .output()
        .expect("harness up");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let up: Value = serde_json::from_slice(&out.stdout).expect("json");
    let run = up["run_id"].as_str().expect("run id").to_owned();
    let _down = common::DownOnDrop(run.clone());
    let services = &up["services"];
    assert!(
        services["postgres"].is_object() && services["s3"].is_object(),
        "{services}"
    );
    let sb = &services["supabase"];
    let url = sb["url"].as_str().expect("url").to_owned();
    let http = reqwest::blocking::Client::new();
    let r = http
        .post(format!("{url}/auth/v1/signup"))
        .header("apikey", sb["publishable_key"].as_str().expect("key"))
        .json(&json!({"email": "up@example.com", "password": "up-password"}))
        .send()
        .expect("signup");
    assert_eq!(r.status().as_u16(), 200);
    // The user is in the stack's own Postgres.
    let pg = &services["postgres"];
    let url_pg = pg["url"].as_str().expect("postgres url");
    let out = Command::new(harness_engine::runtimes::postgres_bin_dir().join("psql"))
        .args([url_pg, "-qtAX", "-c", "SELECT count(*) FROM auth.users"])
        .output()
        .expect("psql");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    let down = harness()
        .args(["down", &run])
        .output()
        .expect("harness down");
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(
        http.get(format!("{url}/auth/v1/settings")).send().is_err(),
        "the emulator stopped with the stack"
    );
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

#[test]
fn tokens_that_are_expired_unsigned_forged_or_of_another_role_are_refused_and_injection_is_inert() {
    let e = start(&["--refresh-reuse-interval", "0"]);
    let s = |k: &str| e.info[k].as_str().expect(k).to_owned();
    let (url, anon, secret) = (s("url"), s("anon_key"), s("jwt_secret"));
    psql(&s("database_url"), NOTES);
    let http = reqwest::blocking::Client::new();
    let now = chrono_now();
    let rest = |token: Option<&str>, query: &str| {
        let mut r = http
            .get(format!("{url}/rest/v1/notes?{query}"))
            .header("apikey", &anon);
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        let resp = r.send().expect("request");
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().unwrap_or(Value::Null))
    };
    let sign =
        |claims: Value| harness_engine::emulators::supabase::keys::sign(secret.as_bytes(), &claims);

    // No key, a key that is not the project's.
    let r = http
        .get(format!("{url}/rest/v1/notes"))
        .send()
        .expect("request");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        r.json::<Value>().expect("json")["message"],
        "No API key found in request"
    );
    let r = http
        .get(format!("{url}/rest/v1/notes"))
        .header("apikey", "sb_publishable_not-this-project")
        .send()
        .expect("request");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        r.json::<Value>().expect("json")["message"],
        "Invalid API key"
    );

    // A valid token of the project reads (nothing, under RLS): the baseline.
    let user = json!({"sub": "00000000-0000-0000-0000-000000000001", "role": "authenticated", "aud": "authenticated", "exp": now + 600});
    assert_eq!(
        rest(Some(&sign(user.clone())), "select=id"),
        (200, json!([]))
    );
    // Expired.
    let mut expired = user.clone();
    expired["exp"] = json!(now - 10);
    let (status, body) = rest(Some(&sign(expired)), "select=id");
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("PGRST303")),
        "{body}"
    );
    // For another audience (a token of another project's API, say); in an array too.
    for aud in [json!("some-other-api"), json!(["some-other-api"])] {
        let mut other = user.clone();
        other["aud"] = aud.clone();
        let (status, body) = rest(Some(&sign(other)), "select=id");
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("PGRST303")),
            "aud {aud}: {body}"
        );
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("audience")),
            "{body}"
        );
    }
    let mut both = user.clone();
    both["aud"] = json!(["some-other-api", "authenticated"]);
    assert_eq!(rest(Some(&sign(both)), "select=id").0, 200);
    // Wrongly signed, and a payload changed after signing.
    let wrong = harness_engine::emulators::supabase::keys::sign(
        b"not-the-project-secret-at-all-32-bytes",
        &user,
    );
    assert_eq!(rest(Some(&wrong), "select=id").1["code"], "PGRST301");
    let good = sign(user.clone());
    let parts: Vec<&str> = good.split('.').collect();
    let mut admin = user.clone();
    admin["role"] = json!("service_role");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(admin.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(rest(Some(&forged), "select=id").0, 401);
    // alg none, unsigned.
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(admin.to_string().as_bytes())
    );
    assert_eq!(rest(Some(&none), "select=id").0, 401);
    // A role no request may take.
    let mut superuser = user.clone();
    superuser["role"] = json!("postgres");
    assert_eq!(rest(Some(&sign(superuser)), "select=id").0, 401);

    // Injection attempts: parse errors or inert values; the table stays.
    for q in [
        "select=id);DROP TABLE notes;--",
        "id=eq.1;DROP TABLE notes",
        "body=eq.'; DROP TABLE notes; --",
        "order=id;DROP TABLE notes",
        "select=\"id\"\"; DROP TABLE notes; --\"",
        "or=(id.eq.1)OR(1=1)",
        "body=in.(a'),(DROP TABLE notes",
        "score=gt.1 OR 1=1",
    ] {
        let (status, body) = rest(Some(&sign(user.clone())), q);
        assert!(
            (400..500).contains(&status) || body == json!([]),
            "{q}: {status} {body}"
        );
    }
    let service = sign(json!({"role": "service_role", "exp": now + 600}));
    assert_eq!(
        rest(Some(&service), "select=id"),
        (200, json!([])),
        "the table is still there"
    );

    // Bad requests get PostgREST's and Storage's errors, never a 500.
    let token = sign(user.clone());
    for (q, status, code) in [
        ("score=between.1.5", 400, "PGRST100"),
        ("select=id&limit=ten", 400, "PGRST100"),
        ("select=nope", 400, "42703"),
        ("score=gt.not-a-number", 400, "22P02"),
    ] {
        let (got, body) = rest(Some(&token), q);
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "{q}: {body}"
        );
    }
    let r = http
        .get(format!("{url}/rest/v1/notes"))
        .header("apikey", &anon)
        .header("range", "5-2")
        .send()
        .expect("request");
    assert_eq!(r.status().as_u16(), 416);
    let r = http
        .get(format!("{url}/rest/v1/no_such_table"))
        .header("apikey", &anon)
        .send()
        .expect("request");
    assert_eq!(r.status().as_u16(), 404);
    for (path, error) in [
        ("object/avatars/a%2F..%2Fsecret", "InvalidKey"),
        ("object/avatars//double", "InvalidKey"),
        ("object/bad%20bucket/a.txt", "InvalidBucketName"),
    ] {
        let r = http
            .post(format!("{url}/storage/v1/{path}"))
            .header("apikey", &anon)
            .body("x")
            .send()
            .expect("request");
        let status = r.status().as_u16();
        let body: Value = r.json().expect("json");
        assert!(
            status == 400 && body["error"] == error,
            "{path}: {status} {body}"
        );
    }

    // Refresh-token reuse (no reuse interval here): the spent token is refused and the
    // session's family revoked, so its current token is refused too.
    let auth = |path: &str, body: Value| {
        let r = http
            .post(format!("{url}/auth/v1/{path}"))
            .header("apikey", &anon)
            .json(&body)
            .send()
            .expect("auth request");
        (
            r.status().as_u16(),
            r.json::<Value>().unwrap_or(Value::Null),
        )
    };
    let (status, session) = auth(
        "signup",
        json!({"email": "reuse@example.com", "password": "reuse-password"}),
    );
    assert_eq!(status, 200, "{session}");
    let first = session["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let (status, next) = auth(
        "token?grant_type=refresh_token",
        json!({"refresh_token": first}),
    );
    assert_eq!(status, 200, "{next}");
    let second = next["refresh_token"].as_str().expect("rotated").to_owned();
    assert_ne!(first, second);
    let (status, body) = auth(
        "token?grant_type=refresh_token",
        json!({"refresh_token": first}),
    );
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("refresh_token_already_used")),
        "{body}"
    );
    let (status, body) = auth(
        "token?grant_type=refresh_token",
        json!({"refresh_token": second}),
    );
    assert_eq!(status, 400, "the revoked family's current token: {body}");
}

/// Values reach Postgres as quoted literals: quotes and backslashes round-trip exactly and a
/// NUL byte is refused as Postgres refuses it. A request's settings and statements run as one
/// transaction, and the requests that decide afterwards (`tx=rollback`, a single object
/// that is not there) leave nothing behind.
#[test]
fn values_round_trip_exactly_and_undone_writes_leave_nothing() {
    let e = start(&[]);
    let s = |k: &str| e.info[k].as_str().expect(k).to_owned();
    let (url, anon) = (s("url"), s("anon_key"));
    psql(&s("database_url"), NOTES);
    let http = reqwest::blocking::Client::new();
    let session: Value = http
        .post(format!("{url}/auth/v1/signup"))
        .header("apikey", &anon)
        .json(&json!({"email": "quotes@example.com", "password": "quotes-password"}))
        .send()
        .expect("signup")
        .json()
        .expect("session");
    let token = session["access_token"].as_str().expect("token").to_owned();
    let call =
        |method: reqwest::Method, query: &str, headers: &[(&str, &str)], body: Option<Value>| {
            let mut r = http
                .request(method, format!("{url}/rest/v1/notes?{query}"))
                .header("apikey", &anon)
                .header("authorization", format!("Bearer {token}"));
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            if let Some(b) = body {
                r = r.json(&b);
            }
            let resp = r.send().expect("request");
            let status = resp.status().as_u16();
            let range = resp
                .headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (status, resp.json::<Value>().unwrap_or(Value::Null), range)
        };
    let get = |query: &str| call(reqwest::Method::GET, query, &[], None);
    let tricky = r#"it's a \ back\'slash "quoted" E'\x41' $1 ; --"#;
    let representation = [("prefer", "return=representation")];
    for (body, score) in [(tricky, 1), ("plain", 7), ("other", 7)] {
        let (status, rows, _) = call(
            reqwest::Method::POST,
            "",
            &representation,
            Some(json!({"body": body, "score": score})),
        );
        assert_eq!(status, 201, "{rows}");
        assert_eq!(rows[0]["body"], body, "stored as sent");
    }
    let encoded: String = tricky
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let (status, rows, _) = get(&format!("select=body,score&body=eq.{encoded}"));
    assert_eq!(
        (status, rows),
        (200, json!([{"body": tricky, "score": 1}])),
        "the value matches itself exactly"
    );
    let (status, rows, _) = get(&format!("select=score&body=neq.{encoded}&order=id"));
    assert_eq!((status, rows), (200, json!([{"score": 7}, {"score": 7}])));
    let (status, body, _) = get("select=id&body=eq.a%00b");
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("22021")),
        "a NUL byte: {body}"
    );
    // The count travels with the select, in the same transaction.
    let (status, rows, range) = call(
        reqwest::Method::GET,
        "select=id&limit=2",
        &[("prefer", "count=exact")],
        None,
    );
    assert_eq!((status, rows.as_array().map(Vec::len)), (206, Some(2)));
    assert_eq!(range, "0-1/3");

    // A single object asked of a write that reaches two rows: 406, and the write undone.
    let (status, body, _) = call(
        reqwest::Method::PATCH,
        "score=eq.7",
        &[
            ("prefer", "return=representation"),
            ("accept", "application/vnd.pgrst.object+json"),
        ],
        Some(json!({"body": "changed"})),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (406, Some("PGRST116")),
        "{body}"
    );
    assert_eq!(get("select=id&body=eq.changed").1, json!([]), "rolled back");
    // The same write for one row stays.
    let (status, body, _) = call(
        reqwest::Method::PATCH,
        "body=eq.plain",
        &[
            ("prefer", "return=representation"),
            ("accept", "application/vnd.pgrst.object+json"),
        ],
        Some(json!({"body": "changed"})),
    );
    assert_eq!((status, &body["body"]), (200, &json!("changed")), "{body}");
    assert_eq!(get("select=score&body=eq.changed").1, json!([{"score": 7}]));
    // tx=rollback answers as if it had written, and leaves nothing.
    let (status, rows, _) = call(
        reqwest::Method::POST,
        "",
        &[("prefer", "return=representation,tx=rollback")],
        Some(json!({"body": "dry run", "score": 2})),
    );
    assert_eq!(
        (status, &rows[0]["body"]),
        (201, &json!("dry run")),
        "{rows}"
    );
    assert_eq!(get("select=id&body=eq.dry%20run").1, json!([]));
    // A failing statement leaves the connection usable: the next request is answered.
    let (status, body, _) = get("score=gt.not-a-number");
    assert_eq!((status, body["code"].as_str()), (400, Some("22P02")));
    assert_eq!(get("select=id").1.as_array().map(Vec::len), Some(3));
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
