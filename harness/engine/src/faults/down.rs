//! `down`: the proxy refuses new connections (its listening socket is closed, so a connect
//! gets "connection refused") and cuts the open ones; up again, it listens on the same
//! address.

use std::{io, net::SocketAddr, sync::Arc};

use tokio::net::TcpListener;

use super::Inner;

/// Binds the proxy's address again and accepts on it.
pub(super) async fn listen(inner: &Arc<Inner>, addr: SocketAddr) -> io::Result<()> {
    let listener = bind(addr).await?;
    let task = tokio::spawn(super::accept(inner.clone(), listener));
    if let Some(old) = inner
        .accepting
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .replace(task)
    {
        old.abort();
    }
    Ok(())
}

/// Closes the listening socket and every open connection, and waits until the socket is
/// closed.
pub(super) async fn stop_and_wait(inner: &Inner) {
    let task = inner
        .accepting
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(task) = task {
        task.abort();
        let _ = task.await;
    }
    inner.cut_all(false);
}

/// [`stop_and_wait`] without the wait (for `Drop`).
pub(super) fn stop(inner: &Inner) {
    if let Some(task) = inner
        .accepting
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        task.abort();
    }
    inner.cut_all(false);
}

async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    // The port was ours a moment ago; its old connections may sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}
