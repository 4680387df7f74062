//! Postgres, started from a copy of the cached template data directory. The run's password
//! is set over a Unix socket that only the service user can reach; TCP needs the password.

use std::{path::Path, path::PathBuf, time::Duration};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use sqlx::{
    Connection, PgConnection,
    postgres::{PgConnectOptions, PgPool, PgPoolOptions},
};

use super::{
    process::{ServiceProcess, wait_ready},
    service_dir,
    user::ServiceUser,
};
use crate::{
    error::Error,
    fsutil,
    runtimes::{Installed, postgres_bin_dir},
    secret::Secret,
    stack::readiness::{Probe, WaitFor},
};

/// How to reach the stack's Postgres.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PostgresEndpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    pub database: String,
    /// `postgres://user:password@127.0.0.1:port/database`
    pub url: Secret,
}

impl PostgresEndpoint {
    /// The endpoint of a server on 127.0.0.1:`port` whose `postgres` role has `password`.
    pub(crate) fn local(port: u16, password: Secret) -> Self {
        PostgresEndpoint {
            host: "127.0.0.1".into(),
            port,
            user: "postgres".into(),
            url: Secret::new(format!(
                "postgres://postgres:{}@127.0.0.1:{port}/postgres",
                password.expose()
            )),
            password,
            database: "postgres".into(),
        }
    }

    pub fn connect_options(&self) -> PgConnectOptions {
        PgConnectOptions::new()
            .host(&self.host)
            .port(self.port)
            .username(&self.user)
            .password(self.password.expose())
            .database(&self.database)
    }

    /// A small connection pool to the default database.
    pub async fn pool(&self) -> Result<PgPool, Error> {
        Ok(PgPoolOptions::new()
            .max_connections(5)
            .connect_with(self.connect_options())
            .await?)
    }
}

/// Sets the run's password over the private socket (when there is one), then proves TCP
/// login and a query.
#[derive(Debug)]
pub struct Ping {
    socket_dir: Option<PathBuf>,
    endpoint: PostgresEndpoint,
}

impl Ping {
    /// A ping for a server whose password is already set (a container's).
    pub(crate) fn tcp(endpoint: PostgresEndpoint) -> Self {
        Ping {
            socket_dir: None,
            endpoint,
        }
    }

    pub async fn check(&self) -> Result<(), String> {
        if let Some(dir) = &self.socket_dir {
            self.set_password(dir).await?;
        }
        let mut tcp = PgConnection::connect_with(&self.endpoint.connect_options())
            .await
            .map_err(|e| e.to_string())?;
        let row = sqlx::Executor::fetch_one(&mut tcp, "SELECT 1")
            .await
            .map_err(|e| e.to_string())?;
        let one: i32 = sqlx::Row::try_get(&row, 0).map_err(|e| e.to_string())?;
        let _ = tcp.close().await;
        if one == 1 {
            Ok(())
        } else {
            Err(format!("SELECT 1 returned {one}"))
        }
    }

    async fn set_password(&self, socket_dir: &Path) -> Result<(), String> {
        let local = PgConnectOptions::new()
            .socket(socket_dir)
            .port(self.endpoint.port)
            .username("postgres")
            .database("postgres");
        let mut conn = PgConnection::connect_with(&local)
            .await
            .map_err(|e| e.to_string())?;
        // The password is alphanumeric, so it is safe to inline.
        let alter = format!(
            "ALTER ROLE postgres PASSWORD '{}'",
            self.endpoint.password.expose()
        );
        sqlx::Executor::execute(&mut conn, alter.as_str())
            .await
            .map_err(|e| e.to_string())?;
        let _ = conn.close().await;
        Ok(())
    }
}

pub async fn start(
    run_dir: &Path,
    runtime: &Installed,
    port: u16,
    timeout: Duration,
) -> Result<(ServiceProcess, PostgresEndpoint), Error> {
    let user = ServiceUser::for_postgres()?;
    let dir = service_dir(run_dir, "postgres")?;
    user.give(&dir)?;
    let data = dir.join("data");
    let template = runtime.path(crate::runtimes::POSTGRES_TEMPLATE);
    let (d, t) = (data.clone(), template.clone());
    tokio::task::spawn_blocking(move || fsutil::copy_tree(&t, &d, user.ids()))
        .await
        .map_err(|e| Error::Other(e.to_string()))??;
    let (data_dir, socket_dir) = (data.clone(), dir.clone());
    let respawn = std::sync::Arc::new(move || {
        let mut cmd = tokio::process::Command::new(postgres_bin_dir().join("postgres"));
        cmd.arg("-D").arg(&data_dir);
        for setting in [
            "listen_addresses=127.0.0.1".to_owned(),
            format!("port={port}"),
            format!("unix_socket_directories={}", socket_dir.display()),
            // Only the service user reaches the socket (and its folder is 0700 too): local
            // connections are trusted, so the socket must not be anyone else's way in.
            "unix_socket_permissions=0700".into(),
            "fsync=off".into(),
            "synchronous_commit=off".into(),
            "full_page_writes=off".into(),
            "shared_buffers=32MB".into(),
            "max_connections=200".into(),
        ] {
            cmd.arg("-c").arg(setting);
        }
        user.apply_tokio(&mut cmd);
        cmd
    });
    let mut process = ServiceProcess::spawn_with(
        "postgres",
        respawn,
        &dir.join("postgres.log"),
        Signal::SIGINT,
    )?;
    let endpoint = PostgresEndpoint::local(port, Secret::random(24));
    let ping = Ping {
        socket_dir: Some(dir.clone()),
        endpoint: endpoint.clone(),
    };
    wait_ready(&mut process, &[WaitFor::Ping(Box::new(ping))], timeout).await?;
    Ok((process, endpoint))
}

impl Probe for Ping {
    fn describe(&self) -> String {
        "postgres protocol round trip".into()
    }
    fn check(&self) -> futures::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(Ping::check(self))
    }
}
