//! Toxiproxy's HTTP control API over harness's fault proxies: `/proxies`,
//! `/proxies/{proxy}`, `/proxies/{proxy}/toxics`, `/proxies/{proxy}/toxics/{toxic}`,
//! `/populate`, `/reset` and `/version`, with Toxiproxy's JSON shapes, status codes, error
//! bodies (`{"error": …, "status": …}`) and toxic names, so toxiproxy-cli and the Toxiproxy
//! client libraries drive it unchanged.
//!
//! Where it differs, it is stricter and says so: a proxy listens on 127.0.0.1 only and
//! forwards to 127.0.0.1 only (an address elsewhere is a 400), and a toxicity outside 0..1 is
//! a 400 instead of being taken as "always" or "never".

use std::{
    collections::BTreeMap,
    io,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::{net::TcpListener, sync::Mutex, task::JoinHandle};

use super::{Decisions, FaultError, Proxy, Stream, Toxic, ToxicKind};

/// The Toxiproxy release whose API this one follows.
pub const TOXIPROXY_API: &str = "2.12.0";

/// The proxies the control API manages, by name.
pub struct Control {
    proxies: Mutex<BTreeMap<String, Proxy>>,
    decisions: Arc<Decisions>,
}

/// A Toxiproxy API error: its message and HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub message: String,
    pub status: StatusCode,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            message: message.into(),
            status,
        }
    }

    fn bad_body(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, format!("bad request body: {e}"))
    }

    fn proxy_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "proxy not found")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Toxiproxy writes its JSON error through Go's http.Error: text/plain, and a newline.
        let body = format!(
            "{}\n",
            json!({"error": self.message, "status": self.status.as_u16()})
        );
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response()
    }
}

impl From<FaultError> for ApiError {
    fn from(e: FaultError) -> Self {
        match e {
            FaultError::Exists(_) => Self::new(StatusCode::CONFLICT, "toxic already exists"),
            FaultError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "toxic not found"),
            FaultError::Toxicity(_) => Self::bad_body(e),
        }
    }
}

/// The fields of a proxy in a request; each may be left out.
#[derive(Debug, Default, Deserialize)]
struct ProxyInput {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    listen: Option<String>,
    #[serde(default)]
    upstream: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct ToxicInput {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    toxicity: Option<f64>,
    #[serde(default)]
    attributes: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ToxicChange {
    #[serde(default)]
    toxicity: Option<f64>,
    #[serde(default)]
    attributes: Option<Value>,
}

/// The toxic types, as Toxiproxy names them.
pub const TOXIC_TYPES: [&str; 7] = [
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
];

/// The default toxic of a type, or `None` for a type Toxiproxy does not have.
fn default_kind(name: &str) -> Option<ToxicKind> {
    Some(match name {
        "latency" => ToxicKind::Latency(Default::default()),
        "bandwidth" => ToxicKind::Bandwidth(Default::default()),
        "slow_close" => ToxicKind::SlowClose(Default::default()),
        "timeout" => ToxicKind::Timeout(Default::default()),
        "reset_peer" => ToxicKind::ResetPeer(Default::default()),
        "slicer" => ToxicKind::Slicer(Default::default()),
        "limit_data" => ToxicKind::LimitData(Default::default()),
        _ => return None,
    })
}

/// `base` with the attributes a request gives laid over it, as Go's decoder does: a known
/// attribute replaces the one in `base`, an unknown one is ignored.
fn with_attributes(base: &ToxicKind, given: Option<&Value>) -> Result<ToxicKind, ApiError> {
    let mut whole = serde_json::to_value(base).map_err(ApiError::bad_body)?;
    match given {
        None | Some(Value::Null) => {}
        Some(Value::Object(given)) => {
            if let Some(Value::Object(attrs)) = whole.get_mut("attributes") {
                for (k, v) in given {
                    if attrs.contains_key(k) {
                        attrs.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        Some(other) => {
            return Err(ApiError::bad_body(format!(
                "attributes must be an object, found {other}"
            )));
        }
    }
    serde_json::from_value(whole).map_err(ApiError::bad_body)
}

fn parse_stream(s: &str) -> Option<Stream> {
    match s.to_ascii_lowercase().as_str() {
        "upstream" => Some(Stream::Upstream),
        "downstream" => Some(Stream::Downstream),
        _ => None,
    }
}

/// A listen address: on 127.0.0.1 (`localhost` and a bare `:PORT` are taken as 127.0.0.1).
fn listen_addr(s: &str) -> Result<SocketAddr, ApiError> {
    loopback(s, "listen", "harness proxies listen on 127.0.0.1 only")
}

/// An upstream address: on 127.0.0.1.
fn upstream_addr(s: &str) -> Result<SocketAddr, ApiError> {
    loopback(s, "upstream", "harness sends traffic to 127.0.0.1 only")
}

fn loopback(s: &str, field: &str, rule: &str) -> Result<SocketAddr, ApiError> {
    let bad = |why: String| ApiError::new(StatusCode::BAD_REQUEST, format!("{field} `{s}`: {why}"));
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| bad("expected HOST:PORT".into()))?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad(format!("`{port}` is not a port")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = match host {
        "" | "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        h => h
            .parse::<IpAddr>()
            .map_err(|_| bad(format!("{rule}, and `{h}` is not 127.0.0.1 or localhost")))?,
    };
    if ip != IpAddr::V4(Ipv4Addr::LOCALHOST) {
        return Err(bad(format!("{rule}, and {ip} is not 127.0.0.1")));
    }
    Ok(SocketAddr::new(ip, port))
}

/// A proxy as Toxiproxy shows it, with its toxics (upstream ones first, each stream in the
/// order they were added, as Toxiproxy lists them).
fn view(p: &Proxy, shown_listen: &str) -> Value {
    json!({
        "name": p.name(),
        "listen": shown_listen,
        "upstream": p.upstream().to_string(),
        "enabled": p.enabled(),
        "toxics": toxics_view(p),
    })
}

fn toxics_view(p: &Proxy) -> Value {
    let mut list = p.toxics();
    list.sort_by_key(|t| t.stream != Stream::Upstream);
    Value::Array(list.iter().map(toxic_view).collect())
}

fn toxic_view(t: &Toxic) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(ApiError::bad_body)
}

type Reply = Result<Response, ApiError>;

fn ok(status: StatusCode, v: Value) -> Reply {
    Ok((status, axum::Json(v)).into_response())
}

impl Control {
    /// An empty control: every random choice its proxies make draws from `seed`.
    pub fn new(seed: u64) -> Arc<Control> {
        Arc::new(Control {
            proxies: Mutex::new(BTreeMap::new()),
            decisions: Decisions::new(seed),
        })
    }

    pub fn decisions(&self) -> &Arc<Decisions> {
        &self.decisions
    }

    /// Creates a proxy (what `POST /proxies` does), returning it as the API shows it.
    pub async fn create(
        &self,
        name: &str,
        listen: &str,
        upstream: &str,
        enabled: bool,
    ) -> Result<Value, ApiError> {
        let mut proxies = self.proxies.lock().await;
        if proxies.contains_key(name) {
            return Err(ApiError::new(StatusCode::CONFLICT, "proxy already exists"));
        }
        let p = self.start(name, listen, upstream, enabled, &[]).await?;
        let shown = view(&p, &p.listen_addr().to_string());
        proxies.insert(name.to_owned(), p);
        Ok(shown)
    }

    async fn start(
        &self,
        name: &str,
        listen: &str,
        upstream: &str,
        enabled: bool,
        toxics: &[Toxic],
    ) -> Result<Proxy, ApiError> {
        let listen = listen_addr(listen)?;
        let upstream = upstream_addr(upstream)?;
        let p = Proxy::start(name, listen, upstream, Arc::clone(&self.decisions))
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("listen tcp {listen}: {e}"),
                )
            })?;
        for t in toxics {
            p.add(t.clone())?;
        }
        if !enabled {
            p.set_enabled(false).await.map_err(internal)?;
        }
        Ok(p)
    }

    /// Every proxy as the API shows it, by name.
    pub async fn list(&self) -> Value {
        let proxies = self.proxies.lock().await;
        Value::Object(
            proxies
                .iter()
                .map(|(n, p)| (n.clone(), view(p, &p.listen_addr().to_string())))
                .collect::<Map<_, _>>(),
        )
    }

    /// Brings every proxy up and removes every toxic (`POST /reset`).
    pub async fn reset(&self) -> Result<(), ApiError> {
        for p in self.proxies.lock().await.values() {
            p.reset().await.map_err(internal)?;
        }
        Ok(())
    }

    /// Serves the API on `listen` (127.0.0.1; port 0 for a free one) until the handle is
    /// dropped or aborted.
    pub async fn serve(self: &Arc<Self>, listen: SocketAddr) -> io::Result<ControlServer> {
        if !listen.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the control API listens on 127.0.0.1 only, not {}",
                    listen.ip()
                ),
            ));
        }
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let app = router(Arc::clone(self));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(ControlServer { addr, task })
    }

    async fn update(&self, name: &str, change: ProxyInput) -> Result<Value, ApiError> {
        let mut proxies = self.proxies.lock().await;
        let p = proxies.get(name).ok_or_else(ApiError::proxy_not_found)?;
        let enabled = change.enabled.unwrap_or(p.enabled());
        let moved = match (&change.listen, &change.upstream) {
            (None, None) => false,
            (l, u) => {
                let l = l.as_deref().map(listen_addr).transpose()?;
                let u = u.as_deref().map(upstream_addr).transpose()?;
                l.is_some_and(|l| l != p.listen_addr()) || u.is_some_and(|u| u != p.upstream())
            }
        };
        if moved {
            let listen = change
                .listen
                .clone()
                .unwrap_or_else(|| p.listen_addr().to_string());
            let upstream = change
                .upstream
                .clone()
                .unwrap_or_else(|| p.upstream().to_string());
            let toxics = p.toxics();
            // The old one lets its port go first, so the new one may take the same port.
            if let Some(old) = proxies.remove(name) {
                old.set_enabled(false).await.map_err(internal)?;
                drop(old);
            }
            let fresh = self
                .start(name, &listen, &upstream, enabled, &toxics)
                .await?;
            proxies.insert(name.to_owned(), fresh);
        } else if enabled != p.enabled() {
            p.set_enabled(enabled).await.map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("listen tcp {}: {e}", p.listen_addr()),
                )
            })?;
        }
        let p = proxies.get(name).ok_or_else(ApiError::proxy_not_found)?;
        Ok(view(p, &p.listen_addr().to_string()))
    }

    async fn with_proxy<T>(
        &self,
        name: &str,
        f: impl FnOnce(&Proxy) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let proxies = self.proxies.lock().await;
        let p = proxies.get(name).ok_or_else(ApiError::proxy_not_found)?;
        f(p)
    }
}

fn internal(e: io::Error) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// A running control API; aborting or dropping it stops serving (the proxies live on in
/// their [`Control`]).
pub struct ControlServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl ControlServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn router(control: Arc<Control>) -> Router {
    Router::new()
        .route("/reset", post(reset))
        .route("/version", get(version))
        .route("/populate", post(populate))
        .route("/proxies", get(proxy_index).post(proxy_create))
        .route(
            "/proxies/{proxy}",
            get(proxy_show)
                .post(proxy_update)
                .patch(proxy_update)
                .delete(proxy_delete),
        )
        .route(
            "/proxies/{proxy}/toxics",
            get(toxic_index).post(toxic_create),
        )
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(toxic_show)
                .post(toxic_update)
                .patch(toxic_update)
                .delete(toxic_delete),
        )
        .fallback(not_found)
        .layer(middleware::from_fn(no_browsers))
        .with_state(control)
}

/// As Toxiproxy: a browser's request is refused, so a web page cannot reach the API.
async fn no_browsers(req: Request, next: Next) -> Response {
    let browser = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.starts_with("Mozilla/"));
    if browser {
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "User agent not allowed\n",
        )
            .into_response();
    }
    next.run(req).await
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 page not found\n",
    )
        .into_response()
}

async fn version() -> Response {
    let mut r = format!("{{\"version\": \"{TOXIPROXY_API}\"}}\n").into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    r
}

async fn reset(State(c): State<Arc<Control>>) -> Reply {
    c.reset().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn proxy_index(State(c): State<Arc<Control>>) -> Reply {
    ok(StatusCode::OK, c.list().await)
}

async fn proxy_create(State(c): State<Arc<Control>>, body: Bytes) -> Reply {
    let input: ProxyInput = parse(&body)?;
    let name = input
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "missing required field: name"))?;
    let upstream = input.upstream.filter(|u| !u.is_empty()).ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "missing required field: upstream")
    })?;
    let listen = input.listen.unwrap_or_default();
    let listen = if listen.is_empty() {
        "127.0.0.1:0".to_owned()
    } else {
        listen
    };
    let shown = c
        .create(&name, &listen, &upstream, input.enabled.unwrap_or(true))
        .await?;
    ok(StatusCode::CREATED, shown)
}

async fn populate(State(c): State<Arc<Control>>, body: Bytes) -> Reply {
    let input: Vec<ProxyInput> = parse(&body)?;
    for (i, p) in input.iter().enumerate() {
        if p.name.as_deref().is_none_or(str::is_empty) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("missing required field: name at proxy {}", i + 1),
            ));
        }
        if p.upstream.as_deref().is_none_or(str::is_empty) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("missing required field: upstream at proxy {}", i + 1),
            ));
        }
    }
    let mut shown = Vec::new();
    for p in input {
        let name = p.name.unwrap_or_default();
        let upstream = p.upstream.unwrap_or_default();
        let listen = p.listen.filter(|l| !l.is_empty());
        let enabled = p.enabled.unwrap_or(true);
        let same = {
            let proxies = c.proxies.lock().await;
            match proxies.get(&name) {
                None => None,
                Some(old) => {
                    let l = listen.as_deref().map(listen_addr).transpose()?;
                    let u = upstream_addr(&upstream)?;
                    Some(l.is_none_or(|l| l == old.listen_addr()) && u == old.upstream())
                }
            }
        };
        match same {
            Some(true) => {}
            Some(false) => {
                let old = c.proxies.lock().await.remove(&name);
                if let Some(old) = old {
                    old.set_enabled(false).await.map_err(internal)?;
                }
                let listen = listen.unwrap_or_else(|| "127.0.0.1:0".into());
                c.create(&name, &listen, &upstream, enabled).await?;
            }
            None => {
                let listen = listen.unwrap_or_else(|| "127.0.0.1:0".into());
                c.create(&name, &listen, &upstream, enabled).await?;
            }
        }
        let v = c
            .with_proxy(&name, |p| Ok(view(p, &p.listen_addr().to_string())))
            .await?;
        shown.push(v);
    }
    ok(StatusCode::CREATED, json!({ "proxies": shown }))
}

async fn proxy_show(State(c): State<Arc<Control>>, Path(name): Path<String>) -> Reply {
    let v = c
        .with_proxy(&name, |p| Ok(view(p, &p.listen_addr().to_string())))
        .await?;
    ok(StatusCode::OK, v)
}

async fn proxy_update(
    State(c): State<Arc<Control>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Reply {
    c.with_proxy(&name, |_| Ok(())).await?;
    let change: ProxyInput = parse(&body)?;
    ok(StatusCode::OK, c.update(&name, change).await?)
}

async fn proxy_delete(State(c): State<Arc<Control>>, Path(name): Path<String>) -> Reply {
    let p = c
        .proxies
        .lock()
        .await
        .remove(&name)
        .ok_or_else(ApiError::proxy_not_found)?;
    p.set_enabled(false).await.map_err(internal)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn toxic_index(State(c): State<Arc<Control>>, Path(name): Path<String>) -> Reply {
    let v = c.with_proxy(&name, |p| Ok(toxics_view(p))).await?;
    ok(StatusCode::OK, v)
}

async fn toxic_create(
    State(c): State<Arc<Control>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Reply {
    c.with_proxy(&name, |_| Ok(())).await?;
    let input: ToxicInput = parse(&body)?;
    let stream_name = input.stream.unwrap_or_else(|| "downstream".into());
    let stream = parse_stream(&stream_name).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "stream was invalid, can be either upstream or downstream",
        )
    })?;
    let type_name = input.kind.unwrap_or_default();
    let toxic_name = input
        .name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("{type_name}_{stream_name}"));
    let base = default_kind(&type_name)
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "invalid toxic type"))?;
    let toxic = c
        .with_proxy(&name, |p| {
            if p.toxics().iter().any(|t| t.name == toxic_name) {
                return Err(FaultError::Exists(toxic_name.clone()).into());
            }
            let toxic = Toxic {
                name: toxic_name.clone(),
                stream,
                toxicity: input.toxicity.unwrap_or(1.0),
                kind: with_attributes(&base, input.attributes.as_ref())?,
            };
            p.add(toxic.clone())?;
            Ok(toxic)
        })
        .await?;
    ok(StatusCode::OK, toxic_view(&toxic))
}

fn find(p: &Proxy, toxic: &str) -> Result<Toxic, ApiError> {
    p.toxics()
        .into_iter()
        .find(|t| t.name == toxic)
        .ok_or_else(|| FaultError::NotFound(toxic.to_owned()).into())
}

async fn toxic_show(
    State(c): State<Arc<Control>>,
    Path((name, toxic)): Path<(String, String)>,
) -> Reply {
    let t = c.with_proxy(&name, |p| find(p, &toxic)).await?;
    ok(StatusCode::OK, toxic_view(&t))
}

async fn toxic_update(
    State(c): State<Arc<Control>>,
    Path((name, toxic)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    let t = c
        .with_proxy(&name, |p| {
            let mut t = find(p, &toxic)?;
            let change: ToxicChange = parse(&body)?;
            t.kind = with_attributes(&t.kind, change.attributes.as_ref())?;
            if let Some(x) = change.toxicity {
                t.toxicity = x;
            }
            p.update(t.clone())?;
            Ok(t)
        })
        .await?;
    ok(StatusCode::OK, toxic_view(&t))
}

async fn toxic_delete(
    State(c): State<Arc<Control>>,
    Path((name, toxic)): Path<(String, String)>,
) -> Reply {
    c.with_proxy(&name, |p| Ok(p.remove(&toxic)?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_off_this_machine_are_refused_with_the_rule() {
        assert_eq!(
            listen_addr("localhost:0").ok(),
            Some(SocketAddr::from(([127, 0, 0, 1], 0)))
        );
        assert_eq!(
            listen_addr(":8080").ok(),
            Some(SocketAddr::from(([127, 0, 0, 1], 8080)))
        );
        let e = listen_addr("0.0.0.0:5000").expect_err("refused");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("127.0.0.1 only"), "{}", e.message);
        let e = upstream_addr("example.com:80").expect_err("refused");
        assert!(
            e.message.contains("upstream `example.com:80`"),
            "{}",
            e.message
        );
        assert!(upstream_addr("127.0.0.1").is_err(), "no port");
    }

    #[test]
    fn attributes_are_laid_over_the_toxic_as_gos_decoder_does() {
        let base = default_kind("latency").expect("valid");
        let k = with_attributes(&base, Some(&json!({"latency": 100, "other": 1}))).expect("valid");
        assert_eq!(
            serde_json::to_value(&k).expect("valid")["attributes"],
            json!({"latency": 100, "jitter": 0})
        );
        let k = with_attributes(&k, Some(&json!({"jitter": 5}))).expect("valid");
        assert_eq!(
            serde_json::to_value(&k).expect("valid")["attributes"],
            json!({"latency": 100, "jitter": 5})
        );
        let e = with_attributes(&base, Some(&json!({"latency": "soon"}))).expect_err("refused");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(default_kind("noise").is_none());
    }
}
