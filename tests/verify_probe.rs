//! Ad-hoc probe (not run in CI): `VERIFY_PROBE=file.tsv cargo test --release --test verify_probe
//! -- --ignored --nocapture`; each line "request<TAB>candidate[<TAB>similarity]" is printed with
//! the balanced and strict verdicts.
use deja::cache::verify::{Strictness, Verifier};

#[test]
#[ignore]
fn probe() {
    let Ok(path) = std::env::var("VERIFY_PROBE") else {
        return;
    };
    let b = Verifier::new(Strictness::Balanced);
    let s = Verifier::new(Strictness::Strict);
    for l in std::fs::read_to_string(path).unwrap().lines() {
        let f: Vec<&str> = l.split('\t').collect();
        if f.len() < 2 {
            continue;
        }
        let sim = f.get(2).and_then(|x| x.parse().ok()).unwrap_or(0.95);
        println!(
            "{} | {}\n  balanced: {}\n  strict:   {}",
            f[0],
            f[1],
            b.verify(f[0], f[1], sim).detail,
            s.verify(f[0], f[1], sim).detail
        );
    }
}
