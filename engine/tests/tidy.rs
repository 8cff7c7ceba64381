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
