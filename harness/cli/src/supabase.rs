//! `harness emulate supabase`: a Postgres and an object store of its own (the native
//! provider) with Supabase's gateway in front of them, until Ctrl-C; then everything stops
//! and nothing is left.

use std::path::{Path, PathBuf};

use harness_engine::{
    Error,
    emulators::supabase::{self, Supabase},
    stack::{Endpoints, ServiceKind, Stack},
};
use serde_json::{Value, json};

#[derive(clap::Args)]
pub struct SupabaseArgs {
    /// The gateway's port on 127.0.0.1 (0: a free one; `supabase start` uses 54321).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Print the URL and keys as JSON (`url`, `anon_key`, `publishable_key`,
    /// `service_role_key`, `secret_key`, `jwt_secret`, `database_url`) instead of lines.
    #[arg(long)]
    pub json: bool,
    /// Seconds a spent refresh token is accepted again (Supabase's default: 10); after it,
    /// reusing one revokes its session.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub refresh_reuse_interval: u64,
    /// Serve in front of an existing stack instead of starting one: its endpoints file (as
    /// `harness up --json` prints, or an external provider's file); its Postgres, and its
    /// object store when it has one.
    #[arg(long, value_name = "FILE")]
    pub endpoints: Option<PathBuf>,
    /// New addresses must be confirmed, by the mailed link or code, before a password
    /// sign-in (Supabase's `enable_confirmations`); the mails go to the local inbox,
    /// `URL/inbox` (Mailpit's API).
    #[arg(long)]
    pub confirm_email: bool,
    /// Sign user access tokens with an asymmetric ES256 key, its public half at
    /// `/auth/v1/.well-known/jwks.json`, as newer Supabase projects do (default: HS256 with
    /// the JWT secret; the anon and service_role keys are HS256 either way).
    #[arg(long)]
    pub asymmetric_keys: bool,
}

/// The bucket of the object store that holds Storage's bytes.
const STORAGE_BUCKET: &str = "supabase-storage";

fn config(
    endpoints: &Endpoints,
    port: u16,
    reuse: u64,
    confirm_email: bool,
    asymmetric_keys: bool,
) -> Result<supabase::Config, Error> {
    let pg = endpoints.postgres.clone().ok_or_else(|| {
        Error::BadInput("the Supabase emulator serves a Postgres, and the stack has none".into())
    })?;
    Ok(supabase::Config {
        database: pg.database.clone(),
        postgres: pg,
        port,
        auth: supabase::auth::Settings {
            reuse_interval: std::time::Duration::from_secs(reuse),
            confirm_email,
            asymmetric_keys,
            ..supabase::auth::Settings::default()
        },
        storage: endpoints
            .s3
            .clone()
            .map(|s3| (s3, STORAGE_BUCKET.to_owned())),
    })
}

/// `services.supabase` of `harness up --json`: the project URL and its keys.
fn endpoint_of(e: &Supabase) -> Value {
    let k = e.keys();
    json!({
        "url": e.url(),
        "anon_key": k.anon.expose(),
        "publishable_key": k.publishable.expose(),
        "service_role_key": k.service_role.expose(),
        "secret_key": k.secret.expose(),
        "jwt_secret": k.jwt_secret().expose(),
    })
}

/// Whether `--services` names the emulator, and the runtimes it needs with the others.
pub fn wanted(services: &[String]) -> (bool, Vec<String>) {
    let wanted = services.iter().any(|s| s.trim() == "supabase");
    let mut runtimes: Vec<String> = services
        .iter()
        .filter(|s| s.trim() != "supabase")
        .cloned()
        .collect();
    if wanted {
        for needed in ["postgres", "s3"] {
            if !runtimes.iter().any(|r| r.trim() == needed) {
                runtimes.push(needed.to_owned());
            }
        }
    }
    (wanted, runtimes)
}

/// The emulator beside a stack of `harness up`: in this process for an attached stack, as
/// `harness emulate supabase --endpoints` of its own (recorded with the stack, so that
/// `harness down` stops it) for a detached one. Returns the in-process emulator and
/// `services.supabase`.
pub async fn beside(
    stack: &mut Stack,
    detach: bool,
    port: u16,
) -> Result<(Option<Supabase>, Value), Error> {
    if !detach {
        let e = Supabase::start(config(stack.endpoints(), port, 10, false, false)?).await?;
        let endpoint = endpoint_of(&e);
        return Ok((Some(e), endpoint));
    }
    let file = stack.run_dir().join("supabase-endpoints.json");
    write_private(
        &file,
        &serde_json::to_vec(stack.endpoints()).unwrap_or_default(),
    )?;
    let port = port.to_string();
    let (pid, line) = crate::emulate::announced(
        &[
            "emulate",
            "supabase",
            "--json",
            "--port",
            &port,
            "--endpoints",
        ],
        &file,
        &stack.run_dir().join("supabase.log"),
        "the Supabase emulator",
        |line| serde_json::from_str::<Value>(line).is_ok(),
    )
    .await?;
    stack.adopt("supabase", pid)?;
    let mut info: Value = serde_json::from_str(&line).unwrap_or_default();
    if let Some(m) = info.as_object_mut() {
        m.remove("database_url");
        m.remove("run_id");
    }
    Ok((None, info))
}

/// Writes a file only this user reads (it holds the stack's credentials).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| Error::Other(format!("write {}: {e}", path.display())))
}

pub async fn emulate(a: SupabaseArgs) -> Result<(), Error> {
    let mut signals = crate::StopSignals::register();
    let (stack, endpoints) = match &a.endpoints {
        Some(file) => {
            let e = harness_engine::stack::external::load(file)?;
            harness_engine::stack::external::guard(&e, false)?;
            (None, e)
        }
        None => {
            let stack = Stack::builder()
                .progress(crate::progress())
                .service(ServiceKind::Postgres)
                .service(ServiceKind::S3)
                .start()
                .await?;
            let e = stack.endpoints().clone();
            (Some(stack), e)
        }
    };
    let started = match config(
        &endpoints,
        a.port,
        a.refresh_reuse_interval,
        a.confirm_email,
        a.asymmetric_keys,
    ) {
        Ok(cfg) => Supabase::start(cfg).await,
        Err(e) => Err(e),
    };
    let emulator = match started {
        Ok(e) => e,
        Err(e) => {
            if let Some(s) = stack {
                s.shutdown().await;
            }
            return Err(e);
        }
    };
    let k = emulator.keys();
    let pg = endpoints
        .postgres
        .clone()
        .unwrap_or_else(|| unreachable!("checked by config"));
    if a.json {
        let mut info = endpoint_of(&emulator);
        info["database_url"] = json!(pg.url.expose());
        info["run_id"] = json!(stack.as_ref().map(|s| s.run_id().to_owned()));
        println!("{info}");
    } else {
        println!("API URL: {}", emulator.url());
        println!("anon key: {}", k.anon.expose());
        println!("publishable key: {}", k.publishable.expose());
        println!("service_role key: {}", k.service_role.expose());
        println!("secret key: {}", k.secret.expose());
        println!("inbox: {}/inbox/api/v1/messages", emulator.url());
        eprintln!("serving until Ctrl-C");
    }
    signals.wait().await;
    emulator.shutdown().await;
    if let Some(s) = stack {
        s.shutdown().await;
    }
    Ok(())
}
