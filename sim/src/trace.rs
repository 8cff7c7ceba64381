//! The trace of a run and its hash: every frame delivered between clients and the broker, every
//! client operation, every fault (and every other `tracing` event at INFO or above, which
//! catches nondeterminism inside the broker early). Never the configuration: two seeds with
//! the same fault rates must still hash apart.
//!
//! A simulation runs on one thread, so the state is thread-local; [`begin`] resets it and
//! [`finish`] takes it. The [`TraceLayer`] feeds `tracing` events in; faults are the events
//! with a `fault` field (the disk's own, and the injector's).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Fault lines kept for a failing seed's report (the count and the hash cover all of them).
const FAULT_LINES_MAX: usize = 400;

#[derive(Default)]
struct State {
    active: bool,
    hash: u64,
    events: u64,
    fault_lines: Vec<String>,
    fault_counts: BTreeMap<String, u64>,
    /// Items as hashed, when dumping (to find where two runs of one seed diverge).
    dump: Option<Vec<String>>,
    /// `TERN_SIM_LOG` is set: every event (the broker's log lines too) goes to stderr.
    print_events: bool,
}

/// Items kept when dumping: enough to reach the first divergence of a short run.
const DUMP_ITEMS_MAX: usize = 2_000_000;

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// What a finished run's trace amounted to.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub hash: u64,
    pub events: u64,
    pub fault_lines: Vec<String>,
    pub fault_counts: BTreeMap<String, u64>,
    /// Every hashed item, if [`begin`] was asked to dump.
    pub dump: Vec<String>,
}

const HASH_SEED: u64 = 0xcbf2_9ce4_8422_2325;
/// FxHash's multiplier: one multiply per 8 bytes. The trace hashes every frame of a run (the
/// reference workload moves ~200 MB per seed), so byte-at-a-time FNV cost a third of the run.
const HASH_MULTIPLIER: u64 = 0x517c_c1b7_2722_0a95;

fn mix_word(hash: &mut u64, word: u64) {
    *hash = (hash.rotate_left(5) ^ word).wrapping_mul(HASH_MULTIPLIER);
}

fn mix(hash: &mut u64, bytes: &[u8]) {
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        mix_word(hash, u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    mix_word(hash, u64::from_le_bytes(tail));
    // The length, so ("ab", "c") and ("a", "bc") hash apart.
    mix_word(hash, bytes.len() as u64);
}

/// Starts a fresh trace on this thread; `dump` keeps every hashed item too.
pub fn begin(dump: bool) {
    STATE.with(|state| {
        *state.borrow_mut() = State {
            active: true,
            hash: HASH_SEED,
            dump: dump.then(Vec::new),
            print_events: std::env::var_os("TERN_SIM_LOG").is_some(),
            ..State::default()
        };
    });
}

fn dump_item(state: &mut State, item: impl FnOnce() -> String) {
    if let Some(dump) = state.dump.as_mut() {
        if dump.len() < DUMP_ITEMS_MAX {
            dump.push(item());
        }
    }
}

/// Stops adding to the trace (the run is over; what follows is teardown).
pub fn pause() {
    STATE.with(|state| state.borrow_mut().active = false);
}

/// Ends the trace and returns it.
pub fn finish() -> Trace {
    STATE.with(|state| {
        let state = std::mem::take(&mut *state.borrow_mut());
        Trace {
            hash: state.hash,
            events: state.events,
            fault_lines: state.fault_lines,
            fault_counts: state.fault_counts,
            dump: state.dump.unwrap_or_default(),
        }
    })
}

/// Adds `bytes` under `tag` (e.g. a frame a client sent or received).
pub fn record(tag: &str, bytes: &[u8]) {
    STATE.with(|state| {
        let mut state = state.borrow_mut();
        if !state.active {
            return;
        }
        state.events += 1;
        mix(&mut state.hash, tag.as_bytes());
        mix(&mut state.hash, bytes);
        dump_item(&mut state, || format!("{tag} {}", String::from_utf8_lossy(bytes)));
    });
}

fn record_event(line: &str, fault: Option<&str>, time_ns: u64) {
    STATE.with(|state| {
        let mut state = state.borrow_mut();
        if !state.active {
            return;
        }
        state.events += 1;
        mix(&mut state.hash, line.as_bytes());
        dump_item(&mut state, || format!("{time_ns} {line}"));
        if state.print_events {
            eprintln!("{:>10.6}s {line}", time_ns as f64 / 1e9);
        }
        if let Some(fault) = fault {
            *state.fault_counts.entry(fault.to_string()).or_insert(0) += 1;
            if state.fault_lines.len() < FAULT_LINES_MAX {
                let seconds = time_ns as f64 / 1e9;
                state.fault_lines.push(format!("{seconds:>10.6}s {line}"));
            }
        }
    });
}

/// A `tracing` layer feeding events at INFO and above into the trace.
pub struct TraceLayer {
    /// Simulated nanoseconds since the run began (the layer cannot reach the runtime itself).
    pub now_ns: fn() -> u64,
}

struct LineVisitor {
    line: String,
    fault: Option<String>,
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "fault" {
            self.fault = Some(value.to_string());
        }
        let _ = write!(self.line, " {}={}", field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.line, " {}={:?}", field.name(), value);
    }
}

impl<S: Subscriber> Layer<S> for TraceLayer {
    fn enabled(&self, metadata: &Metadata<'_>, _context: Context<'_, S>) -> bool {
        *metadata.level() <= Level::INFO
    }

    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        if *event.metadata().level() > Level::INFO {
            return;
        }
        let mut visitor = LineVisitor { line: event.metadata().target().to_string(), fault: None };
        event.record(&mut visitor);
        record_event(&visitor.line, visitor.fault.as_deref(), (self.now_ns)());
    }
}
