//! `tern-sim`: the seed runner. Interface (scripts rely on it):
//! `tern-sim run --scenario NAME --seeds N [--seed S] [--check-determinism] [--plant BUG]
//! [--verbose]` and `tern-sim list`. Seeds S..S+N run in order (S defaults to 0); one line per
//! seed, then `seeds: N, failed: K`; exit status 1 if any seed failed, 2 on bad usage.

#[cfg(madsim)]
fn main() {
    std::process::exit(cli::main(std::env::args().skip(1).collect()));
}

#[cfg(not(madsim))]
fn main() {
    eprintln!("tern-sim must be built with RUSTFLAGS=\"--cfg madsim\"");
    std::process::exit(2);
}

#[cfg(madsim)]
mod cli {
    use tern_sim::plan::{Plant, Scenario, SCENARIOS};
    use tern_sim::run::{run_seed_with, SeedOutcome};

    const USAGE: &str = "usage:
  tern-sim run --scenario NAME --seeds N [--seed S] [--check-determinism] [--verbose]
               [--plant ack-before-sync|drop-read|reuse-offset|hashmap-order|corrupt-tail
                        |no-dedup|commit-before-sync|serve-above-hwm|ack-before-durable
                        |commit-without-majority|vote-twice|serve-before-own-commit
                        |vote-without-log-check|no-producer-state-on-follower
                        |vote-before-sync|wiped-replica-votes]
  tern-sim list
environment: TERN_SIM_HISTORY=1 prints every client operation of each seed,
             TERN_SIM_LOG=1 every traced event (faults, broker log lines) to stderr";

    struct Arguments {
        scenario: Scenario,
        seeds: u64,
        seed_first: u64,
        plant: Option<Plant>,
        check_determinism: bool,
        verbose: bool,
    }

    fn parse(arguments: &[String]) -> Result<Arguments, String> {
        let mut parsed = Arguments {
            scenario: Scenario::SingleBrokerCrash,
            seeds: 1,
            seed_first: 0,
            plant: None,
            check_determinism: false,
            verbose: false,
        };
        let mut scenario_given = false;
        let mut index = 0;
        while index < arguments.len() {
            let flag = arguments[index].as_str();
            index += 1;
            match flag {
                "--verbose" => parsed.verbose = true,
                "--check-determinism" => parsed.check_determinism = true,
                _ => {
                    let value = arguments.get(index).ok_or(format!("{flag} needs a value"))?;
                    index += 1;
                    parse_valued(&mut parsed, flag, value)?;
                    scenario_given |= flag == "--scenario";
                }
            }
        }
        if !scenario_given {
            return Err("--scenario is required".to_string());
        }
        Ok(parsed)
    }

    fn parse_valued(parsed: &mut Arguments, flag: &str, value: &str) -> Result<(), String> {
        let bad = || format!("bad {flag} {value}");
        match flag {
            "--scenario" => parsed.scenario = Scenario::parse(value).ok_or_else(bad)?,
            "--seeds" => parsed.seeds = value.parse().map_err(|_| bad())?,
            "--seed" => parsed.seed_first = value.parse().map_err(|_| bad())?,
            "--plant" => parsed.plant = Some(Plant::parse(value).ok_or_else(bad)?),
            _ => return Err(format!("unknown flag {flag}")),
        }
        Ok(())
    }

    pub fn main(arguments: Vec<String>) -> i32 {
        match arguments.first().map(String::as_str) {
            Some("list") => {
                for name in SCENARIOS {
                    println!("{name}");
                }
                0
            }
            Some("run") => match parse(&arguments[1..]) {
                Ok(arguments) => run(&arguments),
                Err(message) => {
                    eprintln!("{message}\n{USAGE}");
                    2
                }
            },
            _ => {
                eprintln!("{USAGE}");
                2
            }
        }
    }

    /// Totals over the seeds of one invocation.
    #[derive(Default)]
    struct Totals {
        failed: u64,
        simulated_ms: u64,
        acknowledged: usize,
        workload_ms: u64,
        anomalies: usize,
        detected_loss: usize,
    }

    fn run(arguments: &Arguments) -> i32 {
        // Wall-clock time only measures the runner's own speed, outside every simulation.
        let started = std::time::Instant::now();
        let mut totals = Totals::default();
        for seed in arguments.seed_first..arguments.seed_first + arguments.seeds {
            // A panic (an assertion of the broker or the harness) fails the seed, not the run
            // of seeds (in the dev profile: the release profile aborts on panic).
            let run = || run_seed_with(arguments.scenario, seed, arguments.plant, false);
            let Ok(outcome) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) else {
                println!("seed={seed} scenario={} PANICKED", arguments.scenario.name());
                println!("  replay: {}", replay_command(arguments, seed));
                totals.failed += 1;
                continue;
            };
            let mut failed = outcome.failed();
            println!("{}", outcome.line());
            if arguments.check_determinism {
                let again = run_seed_with(arguments.scenario, seed, arguments.plant, false);
                if again.trace.hash != outcome.trace.hash {
                    println!(
                        "  nondeterministic: trace-hash={:016x} then {:016x}",
                        outcome.trace.hash, again.trace.hash
                    );
                    failed = true;
                }
            }
            report(arguments, &outcome, failed);
            totals.failed += u64::from(failed);
            totals.simulated_ms += outcome.simulated_ms;
            totals.acknowledged += outcome.report.acknowledged;
            totals.workload_ms += outcome.plan.workload_ms;
            totals.anomalies += outcome.report.anomaly_count();
            totals.detected_loss += outcome.report.detected_loss;
        }
        let wall_s = started.elapsed().as_secs_f64().max(1e-9);
        println!("seeds: {}, failed: {}", arguments.seeds, totals.failed);
        println!(
            "totals: acked={} anomalies={} detected-loss={} committed/s={:.0} \
             speed={:.0} seeds/min, {:.0} simulated s per wall-clock s",
            totals.acknowledged,
            totals.anomalies,
            totals.detected_loss,
            totals.acknowledged as f64 * 1000.0 / totals.workload_ms.max(1) as f64,
            arguments.seeds as f64 * 60.0 / wall_s,
            totals.simulated_ms as f64 / 1000.0 / wall_s
        );
        i32::from(totals.failed > 0)
    }

    fn replay_command(arguments: &Arguments, seed: u64) -> String {
        let plant = arguments.plant.map(|plant| format!(" --plant {}", plant.name()));
        format!(
            "RUSTFLAGS=\"--cfg madsim\" cargo run -p tern-sim --target-dir target/sim -- run \
             --scenario {} --seeds 1 --seed {seed}{}",
            arguments.scenario.name(),
            plant.unwrap_or_default()
        )
    }

    fn report(arguments: &Arguments, outcome: &SeedOutcome, failed: bool) {
        if failed || arguments.verbose {
            for (property, examples) in &outcome.report.examples {
                for example in examples {
                    println!("  {property}: {example}");
                }
            }
        }
        if std::env::var_os("TERN_SIM_HISTORY").is_some() {
            for op in &outcome.history.ops {
                println!("  op {:>12} {}", op.time_ns, op.describe());
            }
        }
        if arguments.verbose {
            for line in &outcome.trace.fault_lines {
                println!("  fault {line}");
            }
        }
        if failed {
            println!("  replay: {}", outcome.replay_command());
        }
    }
}
