//! The ingress of a service: one reverse proxy on 127.0.0.1 that routes each request to a
//! revision by the traffic split (drawn from the seed, so a run replays), and one more per
//! tag that routes to the tagged revision only. Bodies stream both ways; `traceparent`
//! passes through, and `X-Cloud-Trace-Context` is added when the client sent none. When no
//! instance can take a request the answer is Cloud Run's: 429 when every instance is busy
//! at the maximum, 503 when an instance could not start, 504 past the request timeout.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex, RwLock},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::{
    Request, Response, StatusCode,
    body::{Body, Frame, Incoming},
    header::{CONTENT_TYPE, HeaderValue},
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{
    events::Events,
    instances::{Instance, Lease, Pool, Unavailable, Upstream},
};

type Out = UnsyncBoxBody<Bytes, hyper::Error>;

/// How long a request waits for an instance to free up before a 429.
pub const QUEUE_WAIT: Duration = Duration::from_secs(10);

/// What one listener routes to.
enum Target {
    Split(Arc<Ingress>),
    Tag(Arc<RwLock<Arc<Pool>>>),
}

struct Tag {
    port: u16,
    pool: Arc<RwLock<Arc<Pool>>>,
    cancel: CancellationToken,
}

/// The ingress of one service.
pub struct Ingress {
    pub service: String,
    pub port: u16,
    split: RwLock<Vec<(Arc<Pool>, u32)>>,
    tags: Mutex<BTreeMap<String, Tag>>,
    rng: Mutex<StdRng>,
    events: Arc<Events>,
    cancel: CancellationToken,
}

impl Ingress {
    /// Listens on a free port of 127.0.0.1.
    pub async fn start(
        service: &str,
        seed: u64,
        events: Arc<Events>,
    ) -> std::io::Result<Arc<Self>> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let port = listener.local_addr()?.port();
        let mut h: u64 = seed ^ 0x9e37_79b9_7f4a_7c15;
        for b in service.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        let ingress = Arc::new(Ingress {
            service: service.to_owned(),
            port,
            split: RwLock::new(Vec::new()),
            tags: Mutex::new(BTreeMap::new()),
            rng: Mutex::new(StdRng::seed_from_u64(h)),
            events,
            cancel: CancellationToken::new(),
        });
        let target = Arc::new(Target::Split(Arc::clone(&ingress)));
        tokio::spawn(accept(
            listener,
            target,
            ingress.cancel.clone(),
            Arc::clone(&ingress.events),
            service.to_owned(),
        ));
        Ok(ingress)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Routes the service's URL by `split` (revision pools and percents summing to 100) and
    /// each tag's URL to its revision. Returns the URL of each tag.
    pub async fn route(
        &self,
        split: Vec<(Arc<Pool>, u32)>,
        tags: Vec<(String, Arc<Pool>)>,
    ) -> std::io::Result<BTreeMap<String, String>> {
        *self.split.write().unwrap_or_else(|p| p.into_inner()) =
            split.into_iter().filter(|(_, p)| *p > 0).collect();
        let mut urls = BTreeMap::new();
        let wanted: BTreeMap<_, _> = tags.into_iter().collect();
        let mut have = std::mem::take(&mut *self.tags.lock().unwrap_or_else(|p| p.into_inner()));
        for (name, tag) in std::mem::take(&mut have) {
            if wanted.contains_key(&name) {
                have.insert(name, tag);
            } else {
                tag.cancel.cancel();
            }
        }
        for (name, pool) in wanted {
            if let Some(t) = have.get(&name) {
                *t.pool.write().unwrap_or_else(|p| p.into_inner()) = pool;
            } else {
                let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
                let port = listener.local_addr()?.port();
                let shared = Arc::new(RwLock::new(pool));
                let cancel = self.cancel.child_token();
                tokio::spawn(accept(
                    listener,
                    Arc::new(Target::Tag(Arc::clone(&shared))),
                    cancel.clone(),
                    Arc::clone(&self.events),
                    self.service.clone(),
                ));
                have.insert(
                    name.clone(),
                    Tag {
                        port,
                        pool: shared,
                        cancel,
                    },
                );
            }
            urls.insert(
                name.clone(),
                format!("http://127.0.0.1:{}", have[&name].port),
            );
        }
        *self.tags.lock().unwrap_or_else(|p| p.into_inner()) = have;
        Ok(urls)
    }

    /// The URL of each tag now served.
    pub fn tag_urls(&self) -> BTreeMap<String, String> {
        self.tags
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, t)| (k.clone(), format!("http://127.0.0.1:{}", t.port)))
            .collect()
    }

    fn pick(&self) -> Option<Arc<Pool>> {
        let split = self.split.read().unwrap_or_else(|p| p.into_inner()).clone();
        let total: u32 = split.iter().map(|(_, p)| p).sum();
        if total == 0 {
            return None;
        }
        let mut r = self
            .rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .random_range(0..total);
        for (pool, percent) in split {
            if r < percent {
                return Some(pool);
            }
            r -= percent;
        }
        None
    }

    /// Stops listening, on the service URL and every tag URL.
    pub fn close(&self) {
        self.cancel.cancel();
    }
}

impl Drop for Ingress {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn accept(
    listener: TcpListener,
    target: Arc<Target>,
    cancel: CancellationToken,
    events: Arc<Events>,
    service: String,
) {
    loop {
        let conn = tokio::select! {
            () = cancel.cancelled() => return,
            c = listener.accept() => c,
        };
        let Ok((stream, _)) = conn else { continue };
        let _ = stream.set_nodelay(true);
        let (target, events, service, cancel) = (
            Arc::clone(&target),
            Arc::clone(&events),
            service.clone(),
            cancel.clone(),
        );
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let (target, events, service) =
                    (Arc::clone(&target), Arc::clone(&events), service.clone());
                async move { Ok::<_, Infallible>(handle(&target, &events, &service, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = cancel.cancelled() => {}
            }
        });
    }
}

fn text(status: StatusCode, body: &str) -> Response<Out> {
    let mut r = Response::new(
        Full::new(Bytes::from(body.to_owned()))
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn handle(
    target: &Target,
    events: &Events,
    service: &str,
    mut req: Request<Incoming>,
) -> Response<Out> {
    let t0 = Instant::now();
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let (pool, tag) = match target {
        Target::Split(ingress) => (ingress.pick(), None),
        Target::Tag(p) => (
            Some(Arc::clone(&p.read().unwrap_or_else(|p| p.into_inner()))),
            Some(()),
        ),
    };
    let Some(pool) = pool else {
        events.push(
            "request",
            json!({"service": service, "method": method, "path": path,
            "status": 503, "error": "no revision is serving traffic"}),
        );
        return text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
    };
    let record = |status: u16, lease: Option<&Lease>, error: Option<String>| {
        let mut e = json!({"service": service, "revision": pool.revision, "method": method,
            "path": path, "status": status, "ms": (t0.elapsed().as_secs_f64() * 1e6).round() / 1e3,
            "tagged": tag.is_some()});
        if let Some(l) = lease {
            e["instance"] = json!(l.instance.id);
            if let Some(c) = l.cold_start {
                e["cold_start_ms"] = json!((c.as_secs_f64() * 1e6).round() / 1e3);
            }
        }
        if let Some(err) = error {
            e["error"] = json!(err);
        }
        events.push("request", e);
    };
    let lease = match pool.acquire(QUEUE_WAIT).await {
        Ok(l) => l,
        Err(Unavailable::NoInstance) => {
            record(429, None, Some("no available instance".into()));
            return text(
                StatusCode::TOO_MANY_REQUESTS,
                "The request was aborted because there was no available instance.",
            );
        }
        Err(Unavailable::StartFailed(why)) => {
            record(503, None, Some(why));
            return text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
        }
        Err(Unavailable::Closed) => {
            record(503, None, Some("the revision is being removed".into()));
            return text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
        }
    };
    let headers = req.headers_mut();
    if !headers.contains_key("x-cloud-trace-context") {
        let id: u128 = rand::rng().random();
        let span: u64 = rand::rng().random();
        if let Ok(v) = HeaderValue::from_str(&format!("{id:032x}/{span};o=1")) {
            headers.insert("x-cloud-trace-context", v);
        }
    }
    headers.insert("x-forwarded-for", HeaderValue::from_static("127.0.0.1"));
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Ok(uri) = path.parse() {
        *req.uri_mut() = uri;
    }
    let instance = Arc::clone(&lease.instance);
    let mut sender = match instance.connection().await {
        Ok(s) => s,
        Err(e) => {
            record(
                503,
                Some(&lease),
                Some(format!("connect to the instance: {e}")),
            );
            return text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
        }
    };
    let limit = pool.spec.timeout;
    let sent = tokio::time::timeout(limit, sender.send(req)).await;
    match sent {
        Ok(Ok(resp)) => {
            record(resp.status().as_u16(), Some(&lease), None);
            resp.map(|body| {
                Held {
                    body,
                    back: Some((instance, sender)),
                    _lease: lease,
                }
                .boxed_unsync()
            })
        }
        Ok(Err(e)) => {
            record(
                503,
                Some(&lease),
                Some(format!("the instance's connection failed: {e}")),
            );
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "The request failed because either the HTTP response was malformed or connection to the instance had an error.",
            )
        }
        Err(_) => {
            record(
                504,
                Some(&lease),
                Some(format!(
                    "no response within the request timeout of {limit:?}"
                )),
            );
            text(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout")
        }
    }
}

/// A response body that holds its instance until it has been read, then gives the
/// connection back.
struct Held {
    body: Incoming,
    back: Option<(Arc<Instance>, Upstream)>,
    _lease: Lease,
}

impl Drop for Held {
    /// hyper stops polling a body once it reports its end (a known length read whole), so
    /// the connection is given back here too, when the whole response went through.
    fn drop(&mut self) {
        if self.body.is_end_stream()
            && let Some((i, s)) = self.back.take()
        {
            i.give_back(s);
        }
    }
}

impl Body for Held {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some((_, up)) = self.back.as_mut() {
            up.poll_conn(cx);
        }
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(None) = polled
            && let Some((i, s)) = self.back.take()
        {
            i.give_back(s);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}
