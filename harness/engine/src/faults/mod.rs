//! A TCP fault proxy: put it in front of any address (a stack service, a scenario process, a
//! mock) and the system under test connects through it. Faults are Toxiproxy's "toxics", with
//! its names, attributes and units, one file per kind; they are added, changed and removed
//! while the connections they do not affect stay up. `down` takes the whole proxy away and
//! back.
//!
//! Every random choice (whether a toxic applies to a connection, per its toxicity; latency
//! jitter; slicer sizes) is drawn from the run's seed, per proxy, connection, toxic and
//! direction, so it does not depend on how tasks interleave, and each one is written to the
//! decision log: two runs with the same seed and the same traffic make the same decisions.

pub mod api;
mod bandwidth;
mod clock;
mod down;
mod http;
mod latency;
mod limit_data;
mod pipe;
mod reset_peer;
mod slicer;
mod slow_close;
mod timeout;

use std::{
    collections::HashMap,
    io,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use rand::{SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

pub use self::{
    bandwidth::Bandwidth, http::HttpFault, latency::Latency, limit_data::LimitData,
    reset_peer::ResetPeer, slicer::Slicer, slow_close::SlowClose, timeout::Timeout,
};

/// Which way data flows: `upstream` from the client to the service, `downstream` back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Upstream,
    #[default]
    Downstream,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// One fault on one direction of a proxy's connections.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Toxic {
    /// Unique per proxy (Toxiproxy's default: `<type>_<stream>`).
    pub name: String,
    #[serde(default)]
    pub stream: Stream,
    /// The chance that it applies to a connection, from 0 to 1 (default 1).
    #[serde(default = "always")]
    pub toxicity: f64,
    #[serde(flatten)]
    pub kind: ToxicKind,
}

fn always() -> f64 {
    1.0
}

/// The fault kinds, as Toxiproxy names them (`type`) with its attributes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "attributes", rename_all = "snake_case")]
pub enum ToxicKind {
    Latency(Latency),
    Bandwidth(Bandwidth),
    Timeout(Timeout),
    ResetPeer(ResetPeer),
    SlowClose(SlowClose),
    Slicer(Slicer),
    LimitData(LimitData),
}

impl ToxicKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            ToxicKind::Latency(_) => "latency",
            ToxicKind::Bandwidth(_) => "bandwidth",
            ToxicKind::Timeout(_) => "timeout",
            ToxicKind::ResetPeer(_) => "reset_peer",
            ToxicKind::SlowClose(_) => "slow_close",
            ToxicKind::Slicer(_) => "slicer",
            ToxicKind::LimitData(_) => "limit_data",
        }
    }
}

impl Toxic {
    /// A toxic with Toxiproxy's default name, on every connection.
    pub fn new(stream: Stream, kind: ToxicKind) -> Self {
        Toxic {
            name: format!("{}_{}", kind.type_name(), stream.name()),
            stream,
            toxicity: 1.0,
            kind,
        }
    }
}

/// Why a change to a proxy's toxics was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FaultError {
    #[error("toxic `{0}` already exists")]
    Exists(String),
    #[error("toxic `{0}` not found")]
    NotFound(String),
    #[error("toxicity must be between 0 and 1, found {0}")]
    Toxicity(String),
}

/// One random choice, as logged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub proxy: String,
    /// The connection, numbered from 0 in the order the proxy accepted them.
    pub connection: u64,
    pub toxic: String,
    pub stream: Stream,
    /// What was decided: `applies`, `skipped`, `delay 12ms`, `slices 3,5,4`.
    pub choice: String,
}

/// The seeded source of every random choice, and the log of what it decided.
#[derive(Debug)]
pub struct Decisions {
    seed: u64,
    log: Mutex<Vec<Decision>>,
}

/// Most decisions kept per connection and toxic (a long stream makes one per chunk).
const LOGGED_PER_TOXIC: usize = 64;

impl Decisions {
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Decisions {
            seed,
            log: Mutex::new(Vec::new()),
        })
    }

    /// Everything decided so far, in order.
    pub fn log(&self) -> Vec<Decision> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The random source of one toxic on one direction of one connection: the same for the
    /// same seed whatever else runs.
    fn rng(&self, proxy: &str, connection: u64, toxic: &str, stream: Stream) -> StdRng {
        let mut h = mix(self.seed, connection);
        for b in proxy
            .bytes()
            .chain([0])
            .chain(toxic.bytes())
            .chain([stream as u8])
        {
            h = mix(h, b as u64);
        }
        StdRng::seed_from_u64(h)
    }

    fn record(&self, d: Decision) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let same = log
            .iter()
            .filter(|o| o.proxy == d.proxy && o.connection == d.connection && o.toxic == d.toxic)
            .count();
        if same < LOGGED_PER_TOXIC {
            log.push(d);
        }
    }
}

/// splitmix64 step over `h` and `v`.
fn mix(h: u64, v: u64) -> u64 {
    let mut z = h ^ v.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A running proxy. Dropping it closes its listener and connections.
pub struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    listen: SocketAddr,
    upstream: SocketAddr,
    toxics: watch::Sender<Arc<Vec<Toxic>>>,
    enabled: AtomicBool,
    accepting: Mutex<Option<JoinHandle<()>>>,
    links: Mutex<HashMap<u64, Link>>,
    next: AtomicU64,
    decisions: Arc<Decisions>,
    /// The HTTP fault in force, if any: new connections are then served as HTTP.
    http: watch::Sender<Option<HttpFault>>,
}

#[derive(Clone)]
struct Link {
    cancel: CancellationToken,
    reset: Arc<AtomicBool>,
}

impl Inner {
    /// Drops a connection that has ended from the list of open ones.
    fn forget(&self, id: u64) {
        self.links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// Ends every connection; with `reset`, each with a TCP RST.
    fn cut_all(&self, reset: bool) {
        let links: Vec<Link> = self
            .links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, l)| l)
            .collect();
        for l in links {
            l.reset.store(reset, Ordering::SeqCst);
            l.cancel.cancel();
        }
    }
}

impl Proxy {
    /// Listens on `listen` (port 0: a free port on that address) and forwards each
    /// connection to `upstream`.
    pub async fn start(
        name: impl Into<String>,
        listen: SocketAddr,
        upstream: SocketAddr,
        decisions: Arc<Decisions>,
    ) -> io::Result<Proxy> {
        let listener = TcpListener::bind(listen).await?;
        let listen = listener.local_addr()?;
        let inner = Arc::new(Inner {
            name: name.into(),
            listen,
            upstream,
            toxics: watch::Sender::new(Arc::new(Vec::new())),
            enabled: AtomicBool::new(true),
            accepting: Mutex::new(None),
            links: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            decisions,
            http: watch::Sender::new(None),
        });
        let task = tokio::spawn(accept(inner.clone(), listener));
        *inner.accepting.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(Proxy { inner })
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Where clients connect.
    pub fn listen_addr(&self) -> SocketAddr {
        self.inner.listen
    }

    pub fn upstream(&self) -> SocketAddr {
        self.inner.upstream
    }

    /// The seeded source this proxy draws from, and its log.
    pub fn decisions(&self) -> &Arc<Decisions> {
        &self.inner.decisions
    }

    pub fn enabled(&self) -> bool {
        self.inner.enabled.load(Ordering::SeqCst)
    }

    /// The toxics in force, in the order they were added.
    pub fn toxics(&self) -> Vec<Toxic> {
        self.inner.toxics.borrow().as_ref().clone()
    }

    /// Adds a toxic; open connections get it too.
    pub fn add(&self, toxic: Toxic) -> Result<(), FaultError> {
        check(&toxic)?;
        let mut result = Ok(());
        self.inner.toxics.send_modify(|list| {
            if list.iter().any(|t| t.name == toxic.name) {
                result = Err(FaultError::Exists(toxic.name.clone()));
            } else {
                Arc::make_mut(list).push(toxic.clone());
            }
        });
        result
    }

    /// Replaces the toxic of the same name.
    pub fn update(&self, toxic: Toxic) -> Result<(), FaultError> {
        check(&toxic)?;
        let mut result = Err(FaultError::NotFound(toxic.name.clone()));
        self.inner.toxics.send_modify(|list| {
            if let Some(t) = Arc::make_mut(list)
                .iter_mut()
                .find(|t| t.name == toxic.name)
            {
                *t = toxic.clone();
                result = Ok(());
            }
        });
        result
    }

    pub fn remove(&self, name: &str) -> Result<(), FaultError> {
        let mut result = Err(FaultError::NotFound(name.to_owned()));
        self.inner.toxics.send_modify(|list| {
            let before = list.len();
            Arc::make_mut(list).retain(|t| t.name != name);
            if list.len() != before {
                result = Ok(());
            }
        });
        result
    }

    /// `down` (false) or up again (true). Once it returns false, connecting is refused.
    pub async fn set_enabled(&self, enabled: bool) -> io::Result<()> {
        let was = self.inner.enabled.swap(enabled, Ordering::SeqCst);
        match (was, enabled) {
            (true, false) => down::stop_and_wait(&self.inner).await,
            (false, true) => {
                if let Err(e) = down::listen(&self.inner, self.inner.listen).await {
                    self.inner.enabled.store(false, Ordering::SeqCst);
                    return Err(e);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Sets an HTTP fault (or clears it with `None`). Setting one closes the open
    /// connections, so that every later request meets it.
    pub fn set_http(&self, fault: Option<HttpFault>) -> Result<(), FaultError> {
        if let Some(f) = &fault
            && !(0.0..=1.0).contains(&f.rate)
        {
            return Err(FaultError::Toxicity(f.rate.to_string()));
        }
        let set = fault.is_some();
        self.inner.http.send_replace(fault);
        if set {
            self.inner.cut_all(false);
        }
        Ok(())
    }

    /// The HTTP fault in force.
    pub fn http(&self) -> Option<HttpFault> {
        *self.inner.http.borrow()
    }

    /// Removes every toxic and brings the proxy up (Toxiproxy's `/reset`).
    pub async fn reset(&self) -> io::Result<()> {
        self.inner.http.send_replace(None);
        self.inner
            .toxics
            .send_modify(|list| Arc::make_mut(list).clear());
        self.set_enabled(true).await
    }

    /// How many connections are open.
    pub fn connections(&self) -> usize {
        self.inner
            .links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        down::stop(&self.inner);
    }
}

fn check(t: &Toxic) -> Result<(), FaultError> {
    if !(0.0..=1.0).contains(&t.toxicity) {
        return Err(FaultError::Toxicity(t.toxicity.to_string()));
    }
    Ok(())
}

async fn accept(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(_) => {
                // Out of descriptors, say: try again shortly rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let id = inner.next.fetch_add(1, Ordering::SeqCst);
        let link = Link {
            cancel: CancellationToken::new(),
            reset: Arc::new(AtomicBool::new(false)),
        };
        inner
            .links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, link.clone());
        tokio::spawn(connect(inner.clone(), id, link, client));
    }
}

async fn connect(inner: Arc<Inner>, id: u64, link: Link, client: TcpStream) {
    if inner.http.borrow().is_some() {
        http::serve(Arc::clone(&inner), id, link, client).await;
        inner.forget(id);
        return;
    }
    let upstream = tokio::select! {
        _ = link.cancel.cancelled() => None,
        s = TcpStream::connect(inner.upstream) => s.ok(),
    };
    let Some(upstream) = upstream else {
        // The service is not there: the client sees its connection closed.
        inner.forget(id);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    let up = tokio::spawn(pipe::pipe(
        inner.clone(),
        id,
        link.clone(),
        Stream::Upstream,
        cr,
        uw,
    ));
    let down = tokio::spawn(pipe::pipe(
        inner.clone(),
        id,
        link.clone(),
        Stream::Downstream,
        ur,
        cw,
    ));
    let _ = tokio::join!(up, down);
    inner.forget(id);
}
