//! `tern-sim`: runs Tern's broker code on madsim under injected faults.
//!
//! Build with `RUSTFLAGS="--cfg madsim"`; see docs/simulation.md. The scenarios, workload and
//! checker arrive with the simulator issue; this binary already builds in both configurations.

fn main() {
    if cfg!(madsim) {
        println!("tern-sim: no scenarios yet");
    } else {
        eprintln!("tern-sim must be built with RUSTFLAGS=\"--cfg madsim\"");
        std::process::exit(2);
    }
}
