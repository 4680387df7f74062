//! Postgres, started from a copy of the cached template data directory. The run's password
//! is set over a Unix socket that only the service user can reach; TCP needs the password.

use std::{path::Path, path::PathBuf};

use serde::{Deserialize, Serialize};
use sqlx::{
    Connection, PgConnection,
    postgres::{PgConnectOptions, PgPool, PgPoolOptions},
};

use super::user::ServiceUser;
use crate::{
    error::{Error, IoContext},
    fsutil,
    runtimes::Installed,
    secret::Secret,
    stack::readiness::Probe,
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
    /// A ping that first sets the run's password over the private socket in `socket_dir`.
    pub(crate) fn over_socket(socket_dir: PathBuf, endpoint: PostgresEndpoint) -> Self {
        Ping {
            socket_dir: Some(socket_dir),
            endpoint,
        }
    }

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

/// Fills the service's folder (already the service user's) with a copy of the cached
/// template data directory, owned by that user.
pub(crate) async fn prepare(
    dir: &Path,
    runtime: &Installed,
    user: ServiceUser,
) -> Result<(), Error> {
    user.give(dir)?;
    let data = dir.join("data");
    let template = runtime.path(crate::runtimes::POSTGRES_TEMPLATE);
    tokio::task::spawn_blocking(move || {
        fsutil::copy_tree(&template, &data, user.ids())?;
        no_op_archiving(&data)
    })
    .await
    .map_err(|e| Error::Other(e.to_string()))?
}

/// The server runs with `archive_mode=on`: until a drill sets pgBackRest's command, each
/// finished WAL segment is "archived" by a command that does nothing, so none piles up.
/// It is in `postgresql.conf`, below `ALTER SYSTEM`'s file and the command line, so a drill
/// can set its own and reset it.
const NO_OP_ARCHIVING: &str = "\n# harness: a no-op until a restore drill sets pgBackRest's archive-push\narchive_command = '/bin/true'\n";

fn no_op_archiving(data: &Path) -> Result<(), Error> {
    use std::io::Write;
    let conf = data.join("postgresql.conf");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&conf)
        .and_then(|mut f| f.write_all(NO_OP_ARCHIVING.as_bytes()))
        .ctx(|| format!("append to {}", conf.display()))
}

impl Probe for Ping {
    fn describe(&self) -> String {
        "postgres protocol round trip".into()
    }
    fn check(&self) -> futures::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(Ping::check(self))
    }
}
