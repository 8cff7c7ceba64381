#![cfg(madsim)]
use tern_sim::plan::Scenario;
use tern_sim::run::run_seed_with;

#[test]
fn probe() {
    let a = run_seed_with(Scenario::SingleBrokerCrash, 0, None, false);
    let b = run_seed_with(Scenario::SingleBrokerCrash, 1, None, true);
    let c = run_seed_with(Scenario::SingleBrokerCrash, 1, None, true);
    let _ = a;
    let position = b.trace.dump.iter().zip(&c.trace.dump).position(|(x, y)| x != y);
    if let Some(i) = position {
        for j in i.saturating_sub(3)..i + 3 {
            println!("B {}", b.trace.dump.get(j).map(|s| &s[..s.len().min(300)]).unwrap_or(""));
            println!("C {}", c.trace.dump.get(j).map(|s| &s[..s.len().min(300)]).unwrap_or(""));
        }
    }
    println!("{:x} {:x}", b.trace.hash, c.trace.hash);
}
