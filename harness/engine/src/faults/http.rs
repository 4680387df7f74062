//! HTTP faults, for a proxy in front of an HTTP endpoint: a share of the requests is
//! answered with a status instead of being forwarded (`abort`), held back (`delay`), or gets
//! its response body cut after some bytes (`truncate`). While one is set, every new
//! connection is served as HTTP/1.1: each request is decided on its own (from the seed, and
//! logged), then forwarded over the connection's own connection to the upstream. Setting one
//! closes the proxy's open connections, so that no request goes around it on a kept-alive
//! connection; clearing it leaves HTTP connections as they are, forwarding every request.

use std::{convert::Infallible, future::Future, pin::Pin, sync::Arc, task::Poll, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{
    Request, Response, StatusCode,
    body::{Body, Frame, Incoming},
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::{net::TcpStream, sync::Mutex};

use super::{Decision, Inner, Link, Stream};

/// An HTTP fault. `rate` is the share of requests it applies to (0 to 1).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HttpFault {
    /// Answer with this status instead of forwarding the request.
    pub abort: Option<u16>,
    /// Hold the request this long before forwarding it, in ms.
    pub delay: u64,
    /// Cut the response body after this many bytes, then close the connection.
    pub truncate: Option<u64>,
    pub rate: f64,
}

type BodyError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = BoxBody<Bytes, BodyError>;

fn full(status: StatusCode, text: String) -> Response<ProxyBody> {
    let mut r = Response::new(
        Full::new(Bytes::from(text))
            .map_err(|never: Infallible| -> BodyError { match never {} })
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Serves one client connection as HTTP/1.1, forwarding to the proxy's upstream.
pub(super) async fn serve(inner: Arc<Inner>, id: u64, link: Link, client: TcpStream) {
    let upstream = tokio::select! {
        _ = link.cancel.cancelled() => None,
        s = TcpStream::connect(inner.upstream) => s.ok(),
    };
    let Some(upstream) = upstream else { return };
    let _ = upstream.set_nodelay(true);
    let _ = client.set_nodelay(true);
    let Ok((sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await
    else {
        return;
    };
    let upstream_task = tokio::spawn(async move {
        let _ = conn.await;
    });
    let sender = Arc::new(Mutex::new(sender));
    let requests = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let service = service_fn(move |req: Request<Incoming>| {
        let (inner, sender, requests) = (
            Arc::clone(&inner),
            Arc::clone(&sender),
            Arc::clone(&requests),
        );
        async move {
            let n = requests.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, Infallible>(handle(&inner, id, n, &sender, req).await)
        }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(client), service);
    tokio::select! {
        _ = link.cancel.cancelled() => {}
        _ = served => {}
    }
    upstream_task.abort();
}

async fn handle(
    inner: &Inner,
    id: u64,
    n: u64,
    sender: &Mutex<hyper::client::conn::http1::SendRequest<Incoming>>,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let fault = *inner.http.borrow();
    let applies = fault.and_then(|f| {
        // Decided per request: the same seed, connection and request number decide alike.
        let name = format!("http#{n}");
        let mut rng = inner
            .decisions
            .rng(&inner.name, id, &name, Stream::Upstream);
        let hit = f.rate >= 1.0 || rng.random_bool(f.rate.clamp(0.0, 1.0));
        inner.decisions.record(Decision {
            proxy: inner.name.clone(),
            connection: id,
            toxic: "http".into(),
            stream: Stream::Upstream,
            choice: if hit { describe(&f) } else { "skipped".into() },
        });
        hit.then_some(f)
    });
    if let Some(f) = applies {
        if f.delay > 0 {
            super::clock::sleep_until(tokio::time::Instant::now() + Duration::from_millis(f.delay))
                .await;
        }
        if let Some(code) = f.abort {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return full(status, format!("fault injected by harness: HTTP {code}\n"));
        }
    }
    let response = sender.lock().await.send_request(req).await;
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            return full(
                StatusCode::BAD_GATEWAY,
                format!("harness fault proxy: the upstream failed: {e}\n"),
            );
        }
    };
    let (parts, body) = response.into_parts();
    let body = match applies.and_then(|f| f.truncate) {
        Some(limit) => Truncated {
            body,
            left: limit,
            cut: None,
        }
        .boxed(),
        None => body.map_err(BodyError::from).boxed(),
    };
    Response::from_parts(parts, body)
}

fn describe(f: &HttpFault) -> String {
    let mut parts = Vec::new();
    if f.delay > 0 {
        parts.push(format!("delay {}ms", f.delay));
    }
    if let Some(code) = f.abort {
        parts.push(format!("abort {code}"));
    }
    if let Some(n) = f.truncate {
        parts.push(format!("truncate {n}"));
    }
    parts.join(", ")
}

/// A response body that breaks off after `left` bytes: what came before is sent, then the
/// connection is dropped, so the client sees it close short of the length its headers
/// promised.
struct Truncated {
    body: Incoming,
    left: u64,
    /// A moment for what was sent to be flushed before the connection is dropped.
    cut: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for Truncated {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if self.left == 0 {
            let cut = self
                .cut
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(50))));
            return match cut.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => Poll::Ready(Some(Err(
                    "the body was truncated by a harness fault".into(),
                ))),
            };
        }
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(mut data) => {
                    if data.len() as u64 > self.left {
                        data.truncate(self.left as usize);
                    }
                    self.left -= data.len() as u64;
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
