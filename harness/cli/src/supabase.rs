//! `harness emulate supabase`: a Postgres and an object store of its own (the native
//! provider) with Supabase's gateway in front of them, until Ctrl-C; then everything stops
//! and nothing is left.

use harness_engine::{
    Error,
    emulators::supabase::{self, Supabase},
    stack::{ServiceKind, Stack},
};
use serde_json::json;

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
}

pub async fn emulate(a: SupabaseArgs) -> Result<(), Error> {
    let mut signals = crate::StopSignals::register();
    let stack = Stack::builder()
        .progress(crate::progress())
        .service(ServiceKind::Postgres)
        .service(ServiceKind::S3)
        .start()
        .await?;
    let pg = stack
        .endpoints()
        .postgres
        .clone()
        .ok_or_else(|| Error::Other("the stack started without its Postgres".into()))?;
    let started = Supabase::start(supabase::Config {
        postgres: pg.clone(),
        database: pg.database.clone(),
        port: a.port,
        auth: supabase::auth::Settings {
            reuse_interval: std::time::Duration::from_secs(a.refresh_reuse_interval),
            ..supabase::auth::Settings::default()
        },
        storage: stack
            .endpoints()
            .s3
            .clone()
            .map(|s3| (s3, "supabase-storage".to_owned())),
    })
    .await;
    let emulator = match started {
        Ok(e) => e,
        Err(e) => {
            stack.shutdown().await;
            return Err(e);
        }
    };
    let k = emulator.keys();
    if a.json {
        println!(
            "{}",
            json!({
                "url": emulator.url(),
                "anon_key": k.anon.expose(),
                "publishable_key": k.publishable.expose(),
                "service_role_key": k.service_role.expose(),
                "secret_key": k.secret.expose(),
                "jwt_secret": k.jwt_secret().expose(),
                "database_url": pg.url.expose(),
                "run_id": stack.run_id(),
            })
        );
    } else {
        println!("API URL: {}", emulator.url());
        println!("anon key: {}", k.anon.expose());
        println!("publishable key: {}", k.publishable.expose());
        println!("service_role key: {}", k.service_role.expose());
        println!("secret key: {}", k.secret.expose());
        eprintln!("serving until Ctrl-C");
    }
    signals.wait().await;
    emulator.shutdown().await;
    stack.shutdown().await;
    Ok(())
}
