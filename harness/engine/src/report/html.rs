//! The HTML report: one self-contained page (no script, no external file) with a timeline
//! per scenario drawn in SVG. Every step is a bar on one time axis; a restore drill adds its
//! writer's records as a strip of ticks (the lost ones in red), the moment of the disaster,
//! and the recovery time from it to the verdict. Any `harness run --report F.html` writes it.
//!
//! Times come from when the events arrive (a step's end, minus its duration, is its start),
//! on the wall clock the drill's records use too.

use std::{collections::BTreeMap, fmt::Write as _, path::PathBuf, time::SystemTime};

use super::{Destination, json::Collector};
use crate::run::events::{Event, Reporter, Status};

/// One step as drawn: offsets in ms from the scenario's start.
#[derive(Clone, Debug)]
struct Bar {
    start: f64,
    end: f64,
    name: String,
    kind: String,
    status: Status,
}

#[derive(Default)]
struct Timeline {
    started: Option<SystemTime>,
    bars: Vec<Bar>,
    end: f64,
}

/// Collects a run's events and writes the page on [`Reporter::finish`].
pub struct HtmlReport {
    destination: Destination,
    collector: Collector,
    timelines: BTreeMap<usize, Timeline>,
}

impl HtmlReport {
    /// Writes the page to `path` (parent folders are created).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        HtmlReport {
            destination: Destination::Path(path.into()),
            collector: Collector::default(),
            timelines: BTreeMap::new(),
        }
    }

    /// Writes the page to `writer`.
    pub fn to_writer(writer: Box<dyn std::io::Write + Send>) -> Self {
        HtmlReport {
            destination: Destination::Writer(writer),
            collector: Collector::default(),
            timelines: BTreeMap::new(),
        }
    }

    /// The page as it stands.
    pub fn page(&self) -> String {
        let doc = self.collector.document();
        let mut out = String::new();
        let _ = write!(
            out,
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>harness run {}</title><style>{CSS}</style></head><body>\n\
             <h1>harness run <code>{}</code></h1>\n<p class=\"totals\">seed {} · {} passed · \
             {} failed · {} errors · {:.3} s</p>\n",
            esc(&doc.run_id),
            esc(&doc.run_id),
            doc.seed,
            doc.passed,
            doc.failed,
            doc.errored,
            doc.duration_ms / 1000.0
        );
        for (i, s) in doc.scenarios.iter().enumerate() {
            let empty = Timeline::default();
            let t = self.timelines.get(&i).unwrap_or(&empty);
            let _ = write!(
                out,
                "<section><h2><span class=\"badge {}\">{}</span> {}</h2>\n<p class=\"file\">{}</p>\n",
                status_class(s.status),
                status_word(s.status),
                esc(&s.name),
                esc(&s.file)
            );
            if let Some(d) = &s.drill {
                let _ = writeln!(
                    out,
                    "<p class=\"drill {}\">{}</p>",
                    if d.met { "met" } else { "missed" },
                    esc(&d.line())
                );
            }
            if let Some(f) = &s.failed_step {
                let _ = writeln!(
                    out,
                    "<p class=\"failure\">{} at {}: {}</p>",
                    esc(&f.step),
                    esc(&f.failure.location.to_string()),
                    esc(&f.failure.message)
                );
            }
            out.push_str(&svg(t, s.drill.as_deref()));
            out.push_str("</section>\n");
        }
        out.push_str("</body></html>\n");
        out
    }
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}\
h1{font-size:20px}h2{font-size:16px;margin-bottom:0}.file{color:#666;margin-top:2px}\
.badge{border-radius:3px;padding:1px 6px;color:#fff;font-size:12px}.passed{background:#2e7d32}\
.failed{background:#c62828}.error{background:#6a1b9a}.skipped{background:#757575}\
.drill{font-family:monospace}.drill.missed{color:#c62828}.failure{color:#c62828}\
section{margin-bottom:2em}svg text{font:11px system-ui,sans-serif}";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Passed => "PASS",
        Status::Failed => "FAIL",
        Status::Error => "ERROR",
        Status::Skipped => "SKIP",
    }
}

fn status_class(s: Status) -> &'static str {
    match s {
        Status::Passed => "passed",
        Status::Failed => "failed",
        Status::Error => "error",
        Status::Skipped => "skipped",
    }
}

/// A step's colour: the drill's kinds each their own, the rest by status.
fn colour(bar: &Bar) -> &'static str {
    match (bar.kind.as_str(), bar.status) {
        (_, Status::Failed | Status::Error) => "#c62828",
        (_, Status::Skipped) => "#bdbdbd",
        ("backup", _) => "#1565c0",
        ("disaster", _) => "#ef6c00",
        ("restore", _) => "#6a1b9a",
        ("verify", _) => "#00838f",
        _ => "#66bb6a",
    }
}

const LEFT: f64 = 260.0;
const WIDTH: f64 = 720.0;
const ROW: f64 = 18.0;

/// The scenario's timeline as SVG.
fn svg(t: &Timeline, drill: Option<&crate::drills::DrillReport>) -> String {
    let start_ms = t
        .started
        .and_then(|s| s.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let strip: Vec<(f64, bool)> = drill
        .map(|d| {
            d.records
                .iter()
                .map(|r| (r.committed_unix_ms - start_ms, r.lost))
                .collect()
        })
        .unwrap_or_default();
    let disaster = drill.and_then(|d| d.disaster_unix_ms).map(|d| d - start_ms);
    let total = strip
        .iter()
        .map(|(x, _)| *x)
        .chain([t.end, 1.0])
        .fold(0.0_f64, f64::max);
    let x = |ms: f64| LEFT + (ms.max(0.0) / total) * WIDTH;
    let rows = t.bars.len() + usize::from(!strip.is_empty());
    let height = 30.0 + ROW * rows as f64 + 24.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" role=\"img\">\n",
        LEFT + WIDTH + 100.0
    );
    // The axis, with about eight ticks.
    let step = nice(total / 8.0);
    let mut tick = 0.0;
    while tick <= total + 0.5 {
        let _ = writeln!(
            s,
            "<line x1=\"{0:.1}\" y1=\"18\" x2=\"{0:.1}\" y2=\"{1:.1}\" stroke=\"#eee\"/>\
             <text x=\"{0:.1}\" y=\"12\" text-anchor=\"middle\">{2}</text>",
            x(tick),
            height - 20.0,
            label(tick)
        );
        tick += step;
    }
    for (i, b) in t.bars.iter().enumerate() {
        let y = 22.0 + ROW * i as f64;
        let w = (x(b.end) - x(b.start)).max(1.5);
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\">\
             <title>{} ({}): {:.1} ms</title></rect>",
            LEFT - 6.0,
            y + 11.0,
            esc(&short(&b.name, 38)),
            x(b.start),
            ROW - 5.0,
            colour(b),
            esc(&b.name),
            esc(&b.kind),
            b.end - b.start
        );
    }
    if !strip.is_empty() {
        let y = 22.0 + ROW * t.bars.len() as f64;
        let lost = strip.iter().filter(|(_, l)| *l).count();
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">writer: {} records, {lost} lost</text>",
            LEFT - 6.0,
            y + 11.0,
            strip.len()
        );
        for (at, is_lost) in &strip {
            let _ = writeln!(
                s,
                "<line x1=\"{0:.1}\" y1=\"{1:.1}\" x2=\"{0:.1}\" y2=\"{2:.1}\" stroke=\"{3}\" class=\"{4}\"/>",
                x(*at),
                y,
                y + ROW - 5.0,
                if *is_lost { "#c62828" } else { "#2e7d32" },
                if *is_lost { "lost" } else { "kept" }
            );
        }
    }
    if let Some(d) = disaster {
        let _ = writeln!(
            s,
            "<line x1=\"{0:.1}\" y1=\"18\" x2=\"{0:.1}\" y2=\"{1:.1}\" stroke=\"#ef6c00\" \
             stroke-dasharray=\"4 3\" class=\"disaster\"/>",
            x(d),
            height - 20.0
        );
        if let Some(rto) = drill.and_then(|r| r.rto_ms) {
            let y = height - 10.0;
            let _ = writeln!(
                s,
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#6a1b9a\" \
                 stroke-width=\"3\" class=\"rto\"/><text x=\"{:.1}\" y=\"{:.1}\">RTO {}</text>",
                x(d),
                x(d + rto),
                x(d + rto) + 4.0,
                y + 4.0,
                label(rto)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// 1, 2 or 5 times a power of ten.
fn nice(raw: f64) -> f64 {
    let raw = raw.max(0.001);
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|v| *v >= raw)
        .unwrap_or(10.0 * p)
}

fn label(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

impl Reporter for HtmlReport {
    fn event(&mut self, event: &Event) {
        self.collector.event(event);
        let now = SystemTime::now();
        match event {
            Event::ScenarioStarted { scenario, .. } => {
                self.timelines.entry(*scenario).or_default().started = Some(now);
            }
            Event::StepFinished {
                scenario,
                name,
                kind,
                duration_ms,
                status,
                ..
            } => {
                let t = self.timelines.entry(*scenario).or_default();
                let started = *t.started.get_or_insert(now);
                let end = now
                    .duration_since(started)
                    .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
                t.end = t.end.max(end);
                t.bars.push(Bar {
                    start: (end - duration_ms).max(0.0),
                    end,
                    name: name.clone(),
                    kind: kind.clone(),
                    status: *status,
                });
            }
            _ => {}
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        let page = self.page();
        self.destination.write_all(page.as_bytes())
    }
}
