//! Free ports on 127.0.0.1. The kernel picks a free port; a process-wide set stops two
//! services of this process from being handed the same one before either binds it. A clash
//! with another process is caught at start-up and retried with fresh ports.

use std::{
    collections::HashSet,
    net::{Ipv4Addr, TcpListener},
    sync::{LazyLock, Mutex},
};

use crate::error::Error;

static HANDED_OUT: LazyLock<Mutex<HashSet<u16>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

/// A port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> Result<u16, Error> {
    for _ in 0..64 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::io("bind 127.0.0.1:0", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::io("read local address", e))?
            .port();
        let mut seen = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
        if seen.insert(port) {
            return Ok(port);
        }
    }
    Err(Error::Other("no free port on 127.0.0.1".into()))
}

/// Checks that a port the user asked for is free.
pub fn check_requested(service: &str, port: u16) -> Result<u16, Error> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .map(|_| port)
        .map_err(|_| Error::PortInUse {
            service: service.to_owned(),
            port,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_within_a_process() {
        let ports: HashSet<u16> = (0..50).map(|_| free_port().expect("port")).collect();
        assert_eq!(ports.len(), 50);
    }

    #[test]
    fn a_taken_port_is_reported() {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = l.local_addr().expect("addr").port();
        let err = check_requested("postgres", port).expect_err("must clash");
        assert!(err.to_string().contains("already in use"), "{err}");
    }
}
