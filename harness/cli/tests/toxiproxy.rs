//! Toxiproxy's own clients against harness's control API: `toxiproxy-cli` (built from the Go
//! module github.com/Shopify/toxiproxy/v2 by `.ci/run`) and toxiproxy-python. Each creates a
//! proxy, adds and removes a latency toxic, and the effect is measured on traffic through the
//! proxy. `harness up` serves the same API beside its stack, attached or detached, with a
//! proxy in front of each service.

mod common;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

const TOXIPROXY: &str = "2.12.0";

fn toxiproxy_cli() -> PathBuf {
    let dir = std::env::var_os("HARNESS_TOXIPROXY_DIR").map_or_else(
        || {
            let home = std::env::var_os("HARNESS_HOME").map_or_else(
                || PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/harness"),
                PathBuf::from,
            );
            home.join(format!("tools/toxiproxy-{TOXIPROXY}"))
        },
        PathBuf::from,
    );
    let cli = dir.join("cli");
    assert!(
        cli.is_file(),
        "toxiproxy-cli is not at {}: `bash .ci/run --setup-only` builds it",
        cli.display()
    );
    cli
}

/// `harness emulate toxiproxy` on a free port; stopped with Ctrl-C when dropped.
struct Emulator {
    child: Child,
    port: u16,
}

impl Emulator {
    fn start() -> Emulator {
        let mut child = common::harness()
            .args(["emulate", "toxiproxy", "--port", "0", "--seed", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn harness emulate toxiproxy");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the URL");
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no URL on stdout: {line:?}"));
        Emulator { child, port }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        interrupt(&self.child);
        let status = self.child.wait().expect("wait");
        if !std::thread::panicking() {
            assert!(
                status.success(),
                "harness emulate toxiproxy ended with {status}"
            );
        }
    }
}

fn interrupt(child: &Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("interrupt");
}

/// A line echo server: what the test measures through the proxy.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = conn.try_clone().expect("clone");
                let mut buf = [0u8; 4096];
                let mut r = conn;
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 || w.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// The time from sending a line through `addr` to reading it back.
fn round_trip(addr: &str) -> std::io::Result<Duration> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let started = Instant::now();
    s.write_all(b"ping\n")?;
    let mut back = String::new();
    BufReader::new(&s).read_line(&mut back)?;
    if back != "ping\n" {
        return Err(std::io::Error::other(format!("echoed {back:?}")));
    }
    Ok(started.elapsed())
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run the client")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn toxiproxy_cli_adds_changes_and_removes_a_latency_toxic_and_traffic_shows_it() {
    let e = Emulator::start();
    let up = echo_server();
    let cli = |args: &[&str]| {
        run(Command::new(toxiproxy_cli())
            .args(["-h", &e.host()])
            .args(args))
    };
    let created = ok(cli(&[
        "create",
        "-l",
        "127.0.0.1:0",
        "-u",
        &up.to_string(),
        "web",
    ]));
    assert!(created.contains("Created new proxy web"), "{created}");
    let listed = ok(cli(&["list"]));
    let listen = listed
        .lines()
        .find_map(|l| l.strip_prefix("web\t"))
        .and_then(|rest| rest.split('\t').next())
        .unwrap_or_else(|| panic!("web is not listed: {listed}"))
        .to_owned();
    round_trip(&listen).expect("through the proxy");

    ok(cli(&[
        "toxic",
        "add",
        "-t",
        "latency",
        "-a",
        "latency=400",
        "web",
    ]));
    let inspected = ok(cli(&["inspect", "web"]));
    assert!(
        inspected.contains("latency_downstream") && inspected.contains("latency=400"),
        "{inspected}"
    );
    let slow = round_trip(&listen).expect("with latency");
    assert!(
        slow >= Duration::from_millis(400),
        "a 400 ms toxic took {slow:?}"
    );

    ok(cli(&[
        "toxic",
        "update",
        "-n",
        "latency_downstream",
        "-a",
        "latency=700",
        "web",
    ]));
    let slower = round_trip(&listen).expect("with more latency");
    assert!(
        slower >= Duration::from_millis(700),
        "a 700 ms toxic took {slower:?}"
    );

    ok(cli(&["toxic", "remove", "-n", "latency_downstream", "web"]));
    let fast = round_trip(&listen).expect("without latency");
    assert!(fast < Duration::from_millis(400), "no toxic, yet {fast:?}");

    // Disabled, the proxy refuses; enabled again, it serves on the same address.
    ok(cli(&["toggle", "web"]));
    assert!(round_trip(&listen).is_err(), "a disabled proxy answered");
    ok(cli(&["toggle", "web"]));
    round_trip(&listen).expect("enabled again");

    // Bad requests get Toxiproxy's statuses and messages, and the CLI shows them.
    let bad = cli(&["toxic", "add", "-t", "nonsense", "web"]);
    assert!(
        text(&bad).contains("HTTP 400: invalid toxic type"),
        "{}",
        text(&bad)
    );
    let bad = cli(&["inspect", "nowhere"]);
    assert!(
        text(&bad).contains("HTTP 404: proxy not found"),
        "{}",
        text(&bad)
    );
    let bad = cli(&["create", "-l", "127.0.0.1:0", "-u", &up.to_string(), "web"]);
    assert!(
        text(&bad).contains("HTTP 409: proxy already exists"),
        "{}",
        text(&bad)
    );
    let bad = cli(&["create", "-l", "0.0.0.0:0", "-u", &up.to_string(), "open"]);
    assert!(text(&bad).contains("127.0.0.1 only"), "{}", text(&bad));
    let bad = cli(&["create", "-l", "127.0.0.1:0", "-u", "192.0.2.1:80", "away"]);
    assert!(text(&bad).contains("HTTP 400: upstream"), "{}", text(&bad));

    ok(cli(&["delete", "web"]));
    assert!(round_trip(&listen).is_err(), "a deleted proxy answered");
}

#[test]
fn toxiproxy_python_adds_and_removes_a_latency_toxic_and_traffic_shows_it() {
    let e = Emulator::start();
    let up = echo_server();
    let py = |args: &[&str]| {
        run(Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/toxiproxy_client.py"
            ))
            .arg(e.port.to_string())
            .args(args))
    };
    let listen = ok(py(&["create", "py", &up.to_string()])).trim().to_owned();
    assert!(listen.starts_with("127.0.0.1:"), "listen {listen}");
    round_trip(&listen).expect("through the proxy");

    ok(py(&["latency", "py", "500"]));
    let toxics = ok(py(&["toxics", "py"]));
    assert_eq!(
        toxics.trim(),
        "latency_downstream latency downstream jitter=0 latency=500"
    );
    let slow = round_trip(&listen).expect("with latency");
    assert!(
        slow >= Duration::from_millis(500),
        "a 500 ms toxic took {slow:?}"
    );

    ok(py(&["remove", "py", "latency_downstream"]));
    assert_eq!(ok(py(&["toxics", "py"])).trim(), "");
    let fast = round_trip(&listen).expect("without latency");
    assert!(fast < Duration::from_millis(500), "no toxic, yet {fast:?}");

    let missing = ok(py(&["missing"]));
    assert!(
        missing.contains("NotFound") && missing.contains("toxic not found"),
        "{missing}"
    );
    assert_eq!(ok(py(&["destroy-all"])).trim(), "0");
}

/// Reads `harness up --json` (attached) up to the end of its JSON object.
fn read_summary(child: &mut Child) -> serde_json::Value {
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).expect("read") == 0 {
            panic!("harness up ended before its JSON: {text}");
        }
        text.push_str(&line);
        if line.trim_end() == "}" {
            break;
        }
    }
    serde_json::from_str(&text).expect("JSON")
}

#[test]
fn an_attached_stack_serves_the_fault_api_with_a_proxy_in_front_of_each_service() {
    let mut child = common::harness()
        .args(["up", "--services", "postgres", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn harness up");
    let summary = read_summary(&mut child);
    let faults = &summary["services"]["faults"];
    let port = faults["port"].as_u64().expect("services.faults.port");
    assert_eq!(faults["url"], format!("http://127.0.0.1:{port}"));
    let proxy = &faults["proxies"]["postgres"];
    assert_eq!(
        proxy["upstream"],
        format!("127.0.0.1:{}", summary["services"]["postgres"]["port"])
    );
    let listen = proxy["listen"].as_str().expect("listen").to_owned();
    let psql = |addr: &str| {
        let (host, port) = addr.split_once(':').expect("HOST:PORT");
        let pg = &summary["services"]["postgres"];
        Command::new("psql")
            .args([
                "-h",
                host,
                "-p",
                port,
                "-U",
                pg["user"].as_str().expect("user"),
            ])
            .args(["-d", pg["database"].as_str().expect("database")])
            .args(["-tAc", "select 41 + 1"])
            .env("PGPASSWORD", pg["password"].as_str().expect("password"))
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .expect("psql")
    };
    assert_eq!(ok(psql(&listen)).trim(), "42");

    let cli = |args: &[&str]| {
        run(Command::new(toxiproxy_cli())
            .args(["-h", &format!("127.0.0.1:{port}")])
            .args(args))
    };
    ok(cli(&["toggle", "postgres"]));
    let refused = psql(&listen);
    assert!(
        !refused.status.success(),
        "postgres answered through a disabled proxy"
    );
    ok(cli(&["toggle", "postgres"]));
    assert_eq!(ok(psql(&listen)).trim(), "42");

    interrupt(&child);
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        TcpStream::connect(&listen).is_err(),
        "the proxy outlived the stack"
    );
}

#[test]
fn a_detached_stack_has_its_fault_api_until_down() {
    let out = common::harness()
        .args(["up", "--services", "postgres", "--detach", "--json"])
        .output()
        .expect("harness up --detach");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let run_id = summary["run_id"].as_str().expect("run_id").to_owned();
    let _down = common::DownOnDrop(run_id.clone());
    let down = || {
        common::harness()
            .args(["down", &run_id])
            .output()
            .expect("harness down")
    };
    let faults = &summary["services"]["faults"];
    let Some(port) = faults["port"].as_u64() else {
        panic!("no services.faults: {summary}");
    };
    let api = format!("127.0.0.1:{port}");
    let listed = run(Command::new(toxiproxy_cli()).args(["-h", &api, "list"]));
    let listen = faults["proxies"]["postgres"]["listen"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let reached = TcpStream::connect(&listen).is_ok();
    let stopped = down();
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert!(text(&listed).contains("postgres"), "{}", text(&listed));
    assert!(
        reached,
        "the postgres proxy of a detached stack did not answer"
    );
    assert!(
        TcpStream::connect(&api).is_err(),
        "the fault API outlived `harness down`"
    );
    assert!(
        TcpStream::connect(&listen).is_err(),
        "a proxy outlived `harness down`"
    );
}
