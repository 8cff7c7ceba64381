//! Style rules that a machine can check, so nobody has to remember them (TigerBeetle's tidy).
//!
//! - The I/O boundary: outside `engine/src/io/` (and the binary's `main.rs`) no code reads a
//!   clock, starts a thread, touches files or sockets through std, or draws OS randomness —
//!   the simulator could not see it.
//! - No `HashMap`/`HashSet` in the engine: their iteration order is random per process and
//!   would leak into behaviour (use `BTreeMap`/`BTreeSet`).
//! - Layers point down (`lib.rs`): the record batch view knows no other layer, the log knows
//!   no protocol and no broker, and so on (`LAYER_RULES`).
//! - Lines fit in 100 columns; functions in 70 lines.
//!
//! The simulator (`sim/`) is held to the same rules: its scenarios must replay from a seed, so
//! they may not read a clock or OS randomness either (its `main.rs`, the seed runner that
//! reports wall-clock time, excepted). A line that must break a rule on purpose (the
//! simulator's planted nondeterminism) says so with `tidy: allowed` and why.

use std::path::{Path, PathBuf};

const FORBIDDEN_OUTSIDE_IO: &[&str] = &[
    "Instant::now(",
    "SystemTime::now(",
    "thread::spawn(",
    "thread::Builder",
    "thread::sleep(",
    "std::fs::",
    "std::net::TcpStream",
    "std::net::TcpListener",
    "std::net::UdpSocket",
    "thread_rng(",
    "getrandom",
    "HashMap",
    "HashSet",
];

fn rust_files(directory: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(directory).expect("read source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
}

/// The workspace root: the engine crate's parent.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("engine/ has a parent").to_path_buf()
}

/// Sources under each of `directories` (relative to the workspace), sorted.
fn sources(directories: &[&str]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for directory in directories {
        let before = files.len();
        rust_files(&workspace().join(directory), &mut files);
        assert!(files.len() > before, "found sources in {directory}");
    }
    files.sort();
    files
}

fn engine_sources() -> Vec<PathBuf> {
    sources(&["engine/src"])
}

/// Everything the style rules cover: the engine and the simulator, its tests included.
fn styled_sources() -> Vec<PathBuf> {
    sources(&["engine/src", "sim/src", "sim/tests"])
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace()).unwrap_or(path).display().to_string()
}

/// Whether `code` holds `pattern` not followed by more of an identifier (`HashMap`, not
/// `HashMapOrder`).
fn contains_token(code: &str, pattern: &str) -> bool {
    code.match_indices(pattern).any(|(start, _)| {
        let next = code[start + pattern.len()..].chars().next();
        !next.is_some_and(|next| next.is_alphanumeric() || next == '_')
    })
}

/// A line that breaks a rule on purpose and says why.
fn is_allowed(line: &str) -> bool {
    line.contains("tidy: allowed")
}

#[test]
fn os_access_stays_inside_the_io_module() {
    let mut violations = Vec::new();
    for path in sources(&["engine/src", "sim/src"]) {
        let name = relative(&path);
        let exempt = ["engine/src/main.rs", "sim/src/main.rs"];
        if name.starts_with("engine/src/io/") || exempt.contains(&name.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read source");
        for (number, line) in text.lines().enumerate() {
            if is_allowed(line) {
                continue;
            }
            let code = line.split("//").next().unwrap_or("");
            for forbidden in FORBIDDEN_OUTSIDE_IO {
                if contains_token(code, forbidden) {
                    violations.push(format!(
                        "{name}:{}: `{forbidden}`: {}",
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(violations.is_empty(), "OS access outside engine/src/io:\n{}", violations.join("\n"));
}

/// Per layer (a path prefix under `engine/src/`), the layers it must not use. Layers from the
/// bottom: `io`, `record_batch`, `protocol`, `log`, `replication`, `broker` (see `lib.rs`).
const LAYER_RULES: &[(&str, &[&str])] = &[
    ("io/", &["record_batch", "protocol", "log", "replication", "broker"]),
    ("record_batch", &["io", "protocol", "log", "replication", "broker"]),
    ("protocol/", &["io", "log", "replication", "broker"]),
    ("log/", &["protocol", "replication", "broker"]),
    // The replica is pure (sans-IO): it never touches `io` either.
    ("replication/", &["io", "protocol", "broker"]),
];

#[test]
fn layers_point_down() {
    let mut violations = Vec::new();
    for path in engine_sources() {
        let name = relative(&path);
        let Some(module) = name.strip_prefix("engine/src/") else { continue };
        let Some((_, forbidden)) = LAYER_RULES.iter().find(|(layer, _)| module.starts_with(layer))
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path).expect("read source");
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for layer in *forbidden {
                if code.contains(&format!("crate::{layer}::"))
                    || code.contains(&format!("crate::{layer};"))
                {
                    violations.push(format!(
                        "{name}:{}: uses `{layer}`: {}",
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(violations.is_empty(), "a layer uses one above it:\n{}", violations.join("\n"));
}

#[test]
fn lines_fit_in_100_columns() {
    let mut violations = Vec::new();
    for path in styled_sources() {
        let text = std::fs::read_to_string(&path).expect("read source");
        for (number, line) in text.lines().enumerate() {
            if line.chars().count() > 100 {
                violations.push(format!("{}:{}", relative(&path), number + 1));
            }
        }
    }
    assert!(violations.is_empty(), "lines over 100 columns:\n{}", violations.join("\n"));
}

/// Functions short enough to see at once (TigerBeetle's limit): signature line to closing brace.
const FUNCTION_LINES_MAX: usize = 70;

fn function_start(line: &str) -> Option<usize> {
    let trimmed = line.trim_start();
    let indent = line.len() - trimmed.len();
    let mut rest = trimmed;
    for prefix in ["pub(crate) ", "pub(super) ", "pub ", "async ", "unsafe ", "const "] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    rest.starts_with("fn ").then_some(indent)
}

#[test]
fn functions_fit_in_70_lines() {
    let mut violations = Vec::new();
    for path in styled_sources() {
        let text = std::fs::read_to_string(&path).expect("read source");
        let lines: Vec<&str> = text.lines().collect();
        let mut index = 0;
        while index < lines.len() {
            let Some(indent) = function_start(lines[index]) else {
                index += 1;
                continue;
            };
            let closing = format!("{}}}", " ".repeat(indent));
            // A declaration without a body (a trait method) ends with `;` before any `{`.
            let signature_end = lines[index..]
                .iter()
                .position(|line| line.trim_end().ends_with('{') || line.trim_end().ends_with(';'));
            let Some(signature_end) = signature_end else { break };
            if lines[index + signature_end].trim_end().ends_with(';') {
                index += signature_end + 1;
                continue;
            }
            let Some(length) = lines[index..].iter().position(|line| *line == closing) else {
                break;
            };
            if length + 1 > FUNCTION_LINES_MAX {
                violations.push(format!(
                    "{}:{} ({} lines)",
                    relative(&path),
                    index + 1,
                    length + 1
                ));
            }
            index += length + 1;
        }
    }
    assert!(
        violations.is_empty(),
        "functions over {FUNCTION_LINES_MAX} lines:\n{}",
        violations.join("\n")
    );
}
