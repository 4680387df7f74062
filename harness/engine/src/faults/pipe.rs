//! One direction of one proxied connection: a reader that runs ahead of its writer, and the
//! writer that puts each chunk through the toxics in force (or the reader writing a chunk
//! itself when there are none).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rand::{Rng, rngs::StdRng};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::tcp::{OwnedReadHalf, OwnedWriteHalf},
    sync::mpsc,
    time::{Instant, sleep_until},
};

use super::{Decision, Inner, Link, Stream, Toxic, ToxicKind, bandwidth, clock};

/// What one direction of one connection knows of a toxic: whether it applies here, its
/// random source, and when it began to apply.
struct Applied {
    applies: bool,
    rng: StdRng,
    since: Instant,
}

struct Pipe {
    inner: Arc<Inner>,
    id: u64,
    stream: Stream,
    seen: HashMap<String, Applied>,
    pacer: bandwidth::Pacer,
}

impl Pipe {
    /// The toxics in force for this direction that apply to this connection, each decided
    /// once, the first time this direction sees it.
    fn active(&mut self, toxics: &[Toxic]) -> Vec<Toxic> {
        let mut out = Vec::new();
        for t in toxics.iter().filter(|t| t.stream == self.stream) {
            let entry = self.seen.entry(t.name.clone()).or_insert_with(|| {
                let mut rng =
                    self.inner
                        .decisions
                        .rng(&self.inner.name, self.id, &t.name, self.stream);
                let applies = t.toxicity >= 1.0 || rng.random_bool(t.toxicity.max(0.0));
                self.inner.decisions.record(Decision {
                    proxy: self.inner.name.clone(),
                    connection: self.id,
                    toxic: t.name.clone(),
                    stream: self.stream,
                    choice: if applies { "applies" } else { "skipped" }.into(),
                });
                Applied {
                    applies,
                    rng,
                    since: Instant::now(),
                }
            });
            if entry.applies {
                out.push(t.clone());
            }
        }
        // A toxic removed and added again is decided again.
        self.seen.retain(|name, _| {
            toxics
                .iter()
                .any(|t| &t.name == name && t.stream == self.stream)
        });
        out
    }

    fn note(&self, toxic: &str, choice: String) {
        self.inner.decisions.record(Decision {
            proxy: self.inner.name.clone(),
            connection: self.id,
            toxic: toxic.to_owned(),
            stream: self.stream,
            choice,
        });
    }
}

/// The first deadline among the active `timeout` and `reset_peer` toxics, and whether it
/// resets.
fn deadline(pipe: &Pipe, active: &[Toxic]) -> Option<(Instant, bool)> {
    active
        .iter()
        .filter_map(|t| {
            let since = pipe.seen.get(&t.name)?.since;
            match &t.kind {
                ToxicKind::Timeout(x) if x.timeout > 0 => {
                    Some((since + Duration::from_millis(x.timeout), false))
                }
                ToxicKind::ResetPeer(x) => Some((since + Duration::from_millis(x.timeout), true)),
                _ => None,
            }
        })
        .min_by_key(|(at, _)| *at)
}

/// What the two halves of one direction share: the socket they write to, how many chunks
/// wait for the writer, and the bytes written so far.
struct Out {
    to: tokio::sync::Mutex<OwnedWriteHalf>,
    queued: AtomicU64,
    sent: AtomicU64,
}

pub(super) async fn pipe(
    inner: Arc<Inner>,
    id: u64,
    link: Link,
    stream: Stream,
    mut from: OwnedReadHalf,
    to: OwnedWriteHalf,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let out = Arc::new(Out {
        to: tokio::sync::Mutex::new(to),
        queued: AtomicU64::new(0),
        sent: AtomicU64::new(0),
    });
    let cancel = link.cancel.clone();
    // Reading runs ahead of writing, so that delays shift a stream instead of slowing it.
    // With no toxic on this direction and nothing waiting for the writer, the reader writes
    // the chunk itself: one task and no hand-over, as a plain copy would.
    let reader = tokio::spawn({
        let out = Arc::clone(&out);
        let toxics = inner.toxics.subscribe();
        async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                let n = tokio::select! {
                    _ = cancel.cancelled() => break,
                    n = from.read(&mut buf) => n,
                };
                let n = match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let clean = !toxics.borrow().iter().any(|t| t.stream == stream);
                if clean && out.queued.load(Ordering::SeqCst) == 0 {
                    let mut to = out.to.lock().await;
                    let written = tokio::select! {
                        _ = cancel.cancelled() => break,
                        w = to.write_all(&buf[..n]) => w,
                    };
                    if written.is_err() {
                        cancel.cancel();
                        break;
                    }
                    out.sent.fetch_add(n as u64, Ordering::SeqCst);
                    continue;
                }
                out.queued.fetch_add(1, Ordering::SeqCst);
                if tx.send((Instant::now(), buf[..n].to_vec())).await.is_err() {
                    break;
                }
            }
            from
        }
    });
    let mut toxics = inner.toxics.subscribe();
    let mut p = Pipe {
        inner,
        id,
        stream,
        seen: HashMap::new(),
        pacer: bandwidth::Pacer::default(),
    };
    'chunks: loop {
        let list = toxics.borrow_and_update().clone();
        let active = p.active(&list);
        let ends = deadline(&p, &active);
        let item = tokio::select! {
            _ = link.cancel.cancelled() => break,
            _ = toxics.changed() => continue,
            _ = sleep_until(ends.map_or_else(far, |(at, _)| at)), if ends.is_some() => {
                link.reset.store(ends.is_some_and(|(_, reset)| reset), Ordering::SeqCst);
                link.cancel.cancel();
                break;
            }
            item = rx.recv() => item,
        };
        let Some((arrived, data)) = item else {
            // The other side closed.
            for t in &active {
                if let ToxicKind::SlowClose(s) = &t.kind {
                    tokio::select! {
                        _ = link.cancel.cancelled() => break 'chunks,
                        _ = tokio::time::sleep(Duration::from_millis(s.delay)) => {}
                    }
                }
            }
            let _ = out.to.lock().await.shutdown().await;
            break;
        };
        // Decided when the chunk is taken: the list may have changed while it waited.
        let active = p.active(&toxics.borrow_and_update().clone());
        let done = write_chunk(&mut p, &link, &out, &active, arrived, &data).await;
        out.queued.fetch_sub(1, Ordering::SeqCst);
        if done {
            break;
        }
    }
    let from = reader.await.ok();
    let Ok(out) = Arc::try_unwrap(out) else {
        return;
    };
    let to = out.to.into_inner();
    if link.reset.load(Ordering::SeqCst) {
        // Both sockets of the connection (each half reaches its whole socket) close with a
        // RST. A write half shuts its side down (a FIN) when dropped, which would reach the
        // peer first: it is forgotten instead, and the socket closes with its read half.
        let _ = to.as_ref().set_zero_linger();
        if let Some(from) = &from {
            let _ = from.as_ref().set_zero_linger();
        }
        to.forget();
    } else {
        drop(to);
    }
    drop(from);
}

/// Puts one chunk through the active toxics and writes what is left of it. Returns whether
/// the connection is done (cut, closed by `limit_data`, or the write failed).
async fn write_chunk(
    p: &mut Pipe,
    link: &Link,
    out: &Out,
    active: &[Toxic],
    arrived: Instant,
    data: &[u8],
) -> bool {
    if active
        .iter()
        .any(|t| matches!(t.kind, ToxicKind::Timeout(_)))
    {
        // Toxiproxy's timeout drops what arrives while it is in force.
        return false;
    }
    let mut at = arrived;
    let mut limit = None;
    let mut slicer = None;
    let mut bandwidth = None;
    for t in active {
        match &t.kind {
            ToxicKind::Latency(l) => {
                let Some(a) = p.seen.get_mut(&t.name) else {
                    continue;
                };
                let d = l.delay(&mut a.rng);
                if l.jitter > 0 {
                    p.note(&t.name, format!("delay {}ms", d.as_millis()));
                }
                at += d;
            }
            ToxicKind::LimitData(l) => limit = Some(*l),
            ToxicKind::Slicer(s) => slicer = Some((t.name.clone(), *s)),
            ToxicKind::Bandwidth(b) => bandwidth = Some(*b),
            _ => {}
        }
    }
    tokio::select! {
        _ = link.cancel.cancelled() => return true,
        _ = clock::sleep_until(at) => {}
    }
    let mut data = data;
    let mut close = false;
    if let Some(l) = limit {
        let (n, closes) = l.allow(out.sent.load(Ordering::SeqCst), data.len());
        data = &data[..n];
        close = closes;
    }
    let pieces = match &slicer {
        Some((name, s)) => {
            let Some(a) = p.seen.get_mut(name) else {
                return true;
            };
            let pieces = s.pieces(data.len(), &mut a.rng);
            let shown: Vec<String> = pieces.iter().map(usize::to_string).collect();
            p.note(name, format!("slices {}", shown.join(",")));
            pieces
        }
        None => vec![data.len()],
    };
    let gap = slicer.map(|(_, s)| Duration::from_micros(s.delay));
    let mut to = out.to.lock().await;
    let mut offset = 0;
    for (i, size) in pieces.into_iter().enumerate() {
        if i > 0
            && let Some(gap) = gap
            && !gap.is_zero()
        {
            clock::sleep_until(Instant::now() + gap).await;
        }
        let piece = &data[offset..offset + size];
        offset += size;
        // Bandwidth paces each piece in parts of at most 20 ms worth.
        let step = bandwidth.map_or(piece.len().max(1), |b| b.piece());
        for part in piece.chunks(step) {
            if let Some(b) = &bandwidth {
                let due = p.pacer.after(b, part.len());
                tokio::select! {
                    _ = link.cancel.cancelled() => return true,
                    _ = clock::sleep_until(due) => {}
                }
            }
            let written = tokio::select! {
                _ = link.cancel.cancelled() => return true,
                w = to.write_all(part) => w,
            };
            if written.is_err() {
                link.cancel.cancel();
                return true;
            }
            out.sent.fetch_add(part.len() as u64, Ordering::SeqCst);
        }
    }
    if close {
        let _ = to.flush().await;
        link.cancel.cancel();
        return true;
    }
    false
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}
