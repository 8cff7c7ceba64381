//! Style rules that a machine can check, so nobody has to remember them (TigerBeetle's tidy).
//!
//! - The I/O boundary: outside `engine/src/io/` (and the binary's `main.rs`) no code reads a
//!   clock, starts a thread, touches files or sockets through std, or draws OS randomness —
//!   the simulator could not see it.
//! - No `HashMap`/`HashSet` in the engine: their iteration order is random per process and
//!   would leak into behaviour (use `BTreeMap`/`BTreeSet`).
//! - Lines fit in 100 columns.

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

fn engine_sources() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    files.sort();
    assert!(files.len() > 10, "found the engine sources");
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(path).display().to_string()
}

#[test]
fn os_access_stays_inside_the_io_module() {
    let mut violations = Vec::new();
    for path in engine_sources() {
        let name = relative(&path);
        if name.starts_with("src/io/") || name == "src/main.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read source");
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for forbidden in FORBIDDEN_OUTSIDE_IO {
                if code.contains(forbidden) {
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

#[test]
fn lines_fit_in_100_columns() {
    let mut violations = Vec::new();
    for path in engine_sources() {
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
    for path in engine_sources() {
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
