//! A scenario's own fault proxies: one in front of each port of every service the scenario
//! reaches through `${faults.SERVICE.…}`, started before its processes, cleared before its
//! rollbacks and stopped with it. Scenarios running side by side each have their own, so a
//! fault in one never touches another.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use harness_scenario::Service;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::{
    faults::{Decisions, Proxy},
    stack::{Endpoints, Fault, Stack},
};

/// The stack a run started, shared by its scenarios for process faults. Each service has a
/// lock: a scenario that pauses, stops or kills a service holds that service's for writing,
/// and every scenario holds the locks of the other services it uses for reading, so no
/// scenario sees another one's outage while those on other services go on.
pub struct StackHandle {
    stack: tokio::sync::Mutex<Option<Stack>>,
    locks: BTreeMap<Service, Arc<tokio::sync::RwLock<()>>>,
}

/// What a scenario holds of a shared stack while it runs ([`StackHandle::hold`]).
pub enum Held {
    Shared(tokio::sync::OwnedRwLockReadGuard<()>),
    Alone(tokio::sync::OwnedRwLockWriteGuard<()>),
}

impl StackHandle {
    pub fn new(stack: Stack) -> Arc<Self> {
        Arc::new(StackHandle {
            stack: tokio::sync::Mutex::new(Some(stack)),
            locks: Service::ALL.iter().map(|s| (*s, Arc::default())).collect(),
        })
    }

    /// The locks a scenario holds, in one order (`Service::ALL`'s, so two scenarios never
    /// wait on each other), each with whether it is held for writing: `takes` for writing,
    /// `uses` (none listed: every service) for reading.
    fn wanted<'a>(
        &'a self,
        uses: &'a [Service],
        takes: &'a BTreeSet<Service>,
    ) -> impl Iterator<Item = (Arc<tokio::sync::RwLock<()>>, bool)> + 'a {
        self.locks.iter().filter_map(move |(service, lock)| {
            let write = takes.contains(service);
            (write || uses.is_empty() || uses.contains(service)).then(|| (Arc::clone(lock), write))
        })
    }

    /// Waits until `uses` can be used and `takes` taken away.
    pub async fn hold(&self, uses: &[Service], takes: &BTreeSet<Service>) -> Vec<Held> {
        let mut held = Vec::new();
        for (lock, write) in self.wanted(uses, takes) {
            held.push(if write {
                Held::Alone(lock.write_owned().await)
            } else {
                Held::Shared(lock.read_owned().await)
            });
        }
        held
    }

    /// [`StackHandle::hold`] if it would not wait: `None` when a lock is taken.
    pub fn try_hold(&self, uses: &[Service], takes: &BTreeSet<Service>) -> Option<Vec<Held>> {
        self.wanted(uses, takes)
            .map(|(lock, write)| {
                Some(if write {
                    Held::Alone(lock.try_write_owned().ok()?)
                } else {
                    Held::Shared(lock.try_read_owned().ok()?)
                })
            })
            .collect()
    }

    /// The stack back, once the scenarios are done.
    pub async fn take(&self) -> Option<Stack> {
        self.stack.lock().await.take()
    }

    /// Where a service keeps its data: a folder of the native provider's, or the container
    /// that holds it (the Docker provider).
    pub async fn data_of(&self, service: Service) -> Option<DataAt> {
        let stack = self.stack.lock().await;
        let stack = stack.as_ref()?;
        let kind = super::session::kind(service);
        match stack.provider() {
            crate::stack::ProviderKind::Docker => {
                stack.container_id(kind).map(|id| DataAt::Container {
                    id,
                    run_id: stack.run_id().to_owned(),
                })
            }
            _ => Some(DataAt::Folder(
                stack.run_dir().join(kind.name()).join("data"),
            )),
        }
    }

    pub async fn fault(&self, service: Service, fault: Fault) -> Result<(), String> {
        let mut stack = self.stack.lock().await;
        let stack = stack.as_mut().ok_or("the stack has stopped")?;
        stack
            .fault(super::session::kind(service), fault)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Where a stack service keeps its data.
#[derive(Clone, Debug)]
pub enum DataAt {
    Folder(std::path::PathBuf),
    /// In the container `id` of the stack `run_id`.
    Container {
        id: String,
        run_id: String,
    },
}

/// What a process fault left that the end of the steps undoes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Left {
    Paused,
    Down,
}

/// A scenario's process faults in force, and the pending ends of those given a `for`.
#[derive(Default)]
pub struct ProcessFaults {
    /// By target: a stack service, or `process NAME` (its process group).
    left: Mutex<BTreeMap<Target, Left>>,
    /// The ends of faults given a `for`, and the faults of schedules still to come.
    timers: Mutex<Vec<JoinHandle<()>>>,
    /// Faults being applied or undone by a timer that went off: they run to their end, and
    /// the end of the steps waits for them, so none is cut half-way (a container paused
    /// with nothing noted to unpause it).
    begun: Mutex<Vec<JoinHandle<()>>>,
    /// Scheduled faults that could not be applied, each with where it is written.
    failures: Mutex<Vec<(String, harness_scenario::Span)>>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Service(Service),
    Process(String, u32),
}

impl ProcessFaults {
    pub fn note(&self, target: Target, left: Option<Left>) {
        let mut m = self.left.lock().unwrap_or_else(|e| e.into_inner());
        match left {
            Some(l) => {
                m.insert(target, l);
            }
            None => {
                m.remove(&target);
            }
        }
    }

    /// The targets noted for a scenario process, whatever its process group was.
    pub fn targets_named(&self, name: &str) -> Vec<Target> {
        self.left
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .filter(|t| matches!(t, Target::Process(n, _) if n == name))
            .cloned()
            .collect()
    }

    pub fn left(&self, target: &Target) -> Option<Left> {
        self.left
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(target)
            .copied()
    }

    pub fn after(&self, task: JoinHandle<()>) {
        self.timers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }

    /// Runs `work` to its end, even once the timers are stopped.
    pub fn begin(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let task = tokio::spawn(work);
        self.begun
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }

    pub fn failed(&self, message: String, at: harness_scenario::Span) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((message, at));
    }

    /// The scheduled faults that could not be applied, in the order they failed.
    pub fn take_failures(&self) -> Vec<(String, harness_scenario::Span)> {
        std::mem::take(&mut *self.failures.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Stops what is still to come: the ends of `for`, and the faults of schedules.
    pub fn stop_timers(&self) {
        abort_all(&self.timers);
    }

    /// Stops the timers, and waits for the faults they had begun to apply or undo.
    pub async fn settle(&self) {
        self.stop_timers();
        let begun: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.begun.lock().unwrap_or_else(|e| e.into_inner()));
        for task in begun {
            let _ = task.await;
        }
    }

    /// Undoes every process fault still in force: a paused target is unpaused, a stopped
    /// or killed service started again (a scenario process stays down: it is stopped with
    /// the scenario anyway). Returns what could not be undone.
    pub async fn undo_all(&self, stack: Option<&StackHandle>) -> Vec<String> {
        self.settle().await;
        let left: Vec<(Target, Left)> =
            std::mem::take(&mut *self.left.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .collect();
        let mut problems = Vec::new();
        for (target, state) in left {
            if let Err(e) = undo(&target, state, stack).await {
                problems.push(e);
            }
        }
        problems
    }
}

/// Aborts every pending task of a list, and empties it.
fn abort_all(tasks: &Mutex<Vec<JoinHandle<()>>>) {
    for t in tasks.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
        t.abort();
    }
}

/// Brings one target back from what a fault left.
pub async fn undo(target: &Target, state: Left, stack: Option<&StackHandle>) -> Result<(), String> {
    match target {
        Target::Service(s) => {
            let stack = stack.ok_or("no stack")?;
            let fault = match state {
                Left::Paused => Fault::Unpause,
                Left::Down => Fault::Start,
            };
            stack
                .fault(*s, fault)
                .await
                .map_err(|e| format!("bring {} back: {e}", s.name()))
        }
        Target::Process(name, pgid) => {
            if state == Left::Paused {
                signal_group(*pgid, nix::sys::signal::Signal::SIGCONT)
                    .map_err(|e| format!("unpause process {name}: {e}"))?;
            }
            Ok(())
        }
    }
}

pub fn signal_group(pgid: u32, signal: nix::sys::signal::Signal) -> Result<(), String> {
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid as i32), signal)
        .map_err(|e| e.to_string())
}

pub struct ScenarioFaults {
    /// Each target's proxies, one per port of its endpoint.
    proxies: BTreeMap<Service, Vec<Arc<Proxy>>>,
    /// The endpoints as `${faults.…}` shows them: the stack's, with each proxied port
    /// replaced by its proxy's.
    pub endpoints: Value,
    /// Faults given a `for`: their removal, pending.
    timers: Mutex<Vec<JoinHandle<()>>>,
    pub decisions: Arc<Decisions>,
    /// The proxies (by name) in front of an HTTP endpoint, which take HTTP faults.
    http: BTreeSet<String>,
    /// The proxies of scenario processes and mocks, by `processes.NAME` / `mocks.NAME`.
    named: Mutex<BTreeMap<String, Arc<Proxy>>>,
}

impl ScenarioFaults {
    pub async fn start(
        endpoints: &Endpoints,
        targets: &BTreeSet<Service>,
        seed: u64,
    ) -> Result<ScenarioFaults, String> {
        let decisions = Decisions::new(seed);
        let all = serde_json::to_value(endpoints).unwrap_or(Value::Null);
        let mut shown = serde_json::Map::new();
        let mut proxies = BTreeMap::new();
        let mut http = BTreeSet::new();
        for &service in targets {
            let name = service.name();
            let Some(endpoint) = all.get(name) else {
                return Err(format!("{name} is not running in this stack"));
            };
            let mut map = BTreeMap::new();
            let mut list = Vec::new();
            for (port, proxy_name) in proxy_names(name, endpoint) {
                if speaks_http(endpoint, port) {
                    http.insert(proxy_name.clone());
                }
                let upstream = SocketAddr::from(([127, 0, 0, 1], port));
                let proxy = Proxy::start(
                    proxy_name,
                    SocketAddr::from(([127, 0, 0, 1], 0)),
                    upstream,
                    Arc::clone(&decisions),
                )
                .await
                .map_err(|e| format!("could not start the fault proxy of {name}: {e}"))?;
                map.insert(port, proxy.listen_addr().port());
                list.push(Arc::new(proxy));
            }
            shown.insert(name.to_owned(), rewrite(endpoint, &map));
            proxies.insert(service, list);
        }
        Ok(ScenarioFaults {
            proxies,
            endpoints: Value::Object(shown),
            timers: Mutex::new(Vec::new()),
            decisions,
            http,
            named: Mutex::new(BTreeMap::new()),
        })
    }

    /// Puts a proxy in front of a scenario process or mock (`kind` is `processes` or
    /// `mocks`) listening on 127.0.0.1:`port`; it speaks HTTP.
    pub async fn front(&self, kind: &str, name: &str, port: u16) -> Result<u16, String> {
        let key = format!("{kind}.{name}");
        let proxy = Proxy::start(
            key.clone(),
            SocketAddr::from(([127, 0, 0, 1], 0)),
            SocketAddr::from(([127, 0, 0, 1], port)),
            Arc::clone(&self.decisions),
        )
        .await
        .map_err(|e| format!("could not start the fault proxy of {key}: {e}"))?;
        let listen = proxy.listen_addr().port();
        self.named
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, Arc::new(proxy));
        Ok(listen)
    }

    /// The proxy of a process or mock, by `processes.NAME` / `mocks.NAME`.
    pub fn named(&self, key: &str) -> Option<Arc<Proxy>> {
        self.named
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// The proxies of a target, shared.
    pub fn shared_of(&self, service: Service) -> Vec<Arc<Proxy>> {
        self.proxies.get(&service).cloned().unwrap_or_default()
    }

    /// The proxies of a target that front an HTTP endpoint.
    pub fn http_of(&self, service: Service) -> Vec<Arc<Proxy>> {
        self.shared_of(service)
            .into_iter()
            .filter(|p| self.http.contains(p.name()))
            .collect()
    }

    pub fn after(&self, task: JoinHandle<()>) {
        self.timers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }

    /// Removes every fault and brings every proxy up (the end of the steps).
    pub async fn clear_all(&self) {
        abort_all(&self.timers);
        for p in self.proxies.values().flatten() {
            let _ = p.reset().await;
        }
        let named: Vec<Arc<Proxy>> = self
            .named
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for p in named {
            let _ = p.reset().await;
        }
    }
}

/// The proxies that front a service: one per port its endpoint names, each named by what
/// the port is (the service's name, or `SERVICE.FIELD` when it has several), not by its
/// number, which changes every run; so seeded decisions replay.
pub fn proxy_names(service: &str, endpoint: &Value) -> Vec<(u16, String)> {
    let mut ports = BTreeMap::new();
    collect_ports(endpoint, "", &mut ports);
    let single = ports.len() == 1;
    ports
        .into_iter()
        .map(|(port, field)| {
            let name = if single {
                service.to_owned()
            } else {
                format!("{service}.{field}")
            };
            (port, name)
        })
        .collect()
}

/// Whether an endpoint names `port` in an `http://` URL.
fn speaks_http(v: &Value, port: u16) -> bool {
    match v {
        Value::Object(m) => m.values().any(|v| speaks_http(v, port)),
        Value::Array(a) => a.iter().any(|v| speaks_http(v, port)),
        Value::String(s) => ["http://127.0.0.1:", "http://localhost:"].iter().any(|h| {
            s.strip_prefix(h).is_some_and(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse() == Ok(port)
            })
        }),
        _ => false,
    }
}

/// The ports on 127.0.0.1 an endpoint names (`port` fields, and `HOST:PORT` in its URLs),
/// each with the first field that names it.
fn collect_ports(v: &Value, field: &str, out: &mut BTreeMap<u16, String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "port"
                    && let Some(p) = v.as_u64().and_then(|p| u16::try_from(p).ok())
                {
                    out.entry(p).or_insert_with(|| k.clone());
                }
                collect_ports(v, k, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_ports(v, field, out)),
        Value::String(s) => {
            for host in ["127.0.0.1:", "localhost:"] {
                for (at, _) in s.match_indices(host) {
                    let digits: String = s[at + host.len()..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    if let Ok(p) = digits.parse() {
                        out.entry(p).or_insert_with(|| field.to_owned());
                    }
                }
            }
        }
        _ => {}
    }
}

/// The endpoint with each proxied port replaced by its proxy's.
fn rewrite(v: &Value, ports: &BTreeMap<u16, u16>) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v.as_u64()) {
                        ("port", Some(p)) => u16::try_from(p)
                            .ok()
                            .and_then(|p| ports.get(&p))
                            .map_or_else(|| v.clone(), |p| Value::from(*p)),
                        _ => rewrite(v, ports),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| rewrite(v, ports)).collect()),
        Value::String(s) => {
            let mut out = s.clone();
            for (from, to) in ports {
                for host in ["127.0.0.1:", "localhost:"] {
                    out = replace_port(&out, host, *from, *to);
                }
            }
            Value::String(out)
        }
        other => other.clone(),
    }
}

/// `HOST:FROM` → `HOST:TO`, only where FROM is the whole port.
fn replace_port(s: &str, host: &str, from: u16, to: u16) -> String {
    let needle = format!("{host}{from}");
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find(&needle) {
        let end = at + needle.len();
        let whole = !rest[end..].starts_with(|c: char| c.is_ascii_digit());
        out.push_str(&rest[..at]);
        out.push_str(&if whole {
            format!("{host}{to}")
        } else {
            needle.clone()
        });
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_in_urls_and_port_fields_are_found_and_replaced_whole() {
        let v = serde_json::json!({
            "url": "postgres://u:p@127.0.0.1:5432/db",
            "host": "127.0.0.1",
            "port": 5432,
            "other": "http://127.0.0.1:54321/",
        });
        let mut ports = BTreeMap::new();
        collect_ports(&v, "", &mut ports);
        assert_eq!(
            ports.into_iter().collect::<Vec<_>>(),
            [(5432, "port".to_owned()), (54321, "other".to_owned())]
        );
        let map = BTreeMap::from([(5432, 7000)]);
        let r = rewrite(&v, &map);
        assert_eq!(r["url"], "postgres://u:p@127.0.0.1:7000/db");
        assert_eq!(r["port"], 7000);
        assert_eq!(r["other"], "http://127.0.0.1:54321/", "another port kept");
    }
}
