//! `tern-sim`: the seed runner. Interface (scripts rely on it):
//! `tern-sim run --scenario NAME --seeds N [--seed S] [--plant BUG] [--verbose]` and
//! `tern-sim list`. One line per seed, then `seeds: N, failed: K`; exit 1 if any seed failed.

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
    use tern_sim::run::run_seed_with;

    const USAGE: &str = "usage: tern-sim run --scenario NAME --seeds N [--seed S] \
                         [--plant ack-before-sync|drop-read|reuse-offset|hashmap-order] [--verbose]\n       tern-sim list";

    struct Arguments {
        scenario: Scenario,
        seeds: u64,
        seed_first: u64,
        plant: Option<Plant>,
        verbose: bool,
    }

    fn parse(arguments: &[String]) -> Result<Arguments, String> {
        let mut scenario = None;
        let mut seeds = None;
        let mut seed_first = None;
        let mut plant = None;
        let mut verbose = false;
        let mut index = 0;
        while index < arguments.len() {
            let flag = arguments[index].as_str();
            if flag == "--verbose" {
                verbose = true;
                index += 1;
                continue;
            }
            let value = arguments.get(index + 1).ok_or(format!("{flag} needs a value"))?;
            match flag {
                "--scenario" => {
                    scenario =
                        Some(Scenario::parse(value).ok_or(format!("unknown scenario {value}"))?)
                }
                "--seeds" => {
                    seeds = Some(value.parse().map_err(|_| format!("bad --seeds {value}"))?)
                }
                "--seed" => {
                    seed_first = Some(value.parse().map_err(|_| format!("bad --seed {value}"))?)
                }
                "--plant" => {
                    plant = Some(Plant::parse(value).ok_or(format!("unknown plant {value}"))?)
                }
                _ => return Err(format!("unknown flag {flag}")),
            }
            index += 2;
        }
        let scenario = scenario.ok_or("--scenario is required")?;
        // `--seed S` alone runs that one seed; `--seeds N` alone runs seeds 0..N.
        let seeds = seeds.unwrap_or(1);
        Ok(Arguments { scenario, seeds, seed_first: seed_first.unwrap_or(0), plant, verbose })
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

    fn run(arguments: &Arguments) -> i32 {
        // Wall-clock time only measures the runner's own speed, outside every simulation.
        let started = std::time::Instant::now();
        let mut failed = 0;
        let mut simulated_ms_total = 0;
        for seed in arguments.seed_first..arguments.seed_first + arguments.seeds {
            let dump = std::env::var_os("TERN_SIM_DUMP").is_some();
            let outcome = run_seed_with(arguments.scenario, seed, arguments.plant, dump);
            for item in &outcome.trace.dump {
                if !item.starts_with("op ")
                    && !item.starts_with("producer")
                    && !item.starts_with("consumer")
                {
                    println!("  trace {}", &item[..item.len().min(400)]);
                }
            }
            simulated_ms_total += outcome.simulated_ms;
            println!("{}", outcome.line());
            if outcome.failed() || arguments.verbose {
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
            if outcome.failed() {
                failed += 1;
                println!("  replay: {}", outcome.replay_command());
            }
        }
        let wall_s = started.elapsed().as_secs_f64();
        println!("seeds: {}, failed: {failed}", arguments.seeds);
        println!(
            "speed: {:.1} seeds/min, {:.1} simulated s per wall-clock s",
            arguments.seeds as f64 * 60.0 / wall_s,
            simulated_ms_total as f64 / 1000.0 / wall_s
        );
        i32::from(failed > 0)
    }
}
