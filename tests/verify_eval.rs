//! Measurement harness (not run in CI): `VERIFY_EVAL_DIR=/tmp/verify-work cargo test --release
//! --test verify_eval -- --ignored --nocapture`. The directory holds scratch TSVs with cosine
//! similarities from the real embedding model:
//! - pairs_sim.tsv: capability, test, q1, q2, duplicate, cosine
//! - intent_<name>.tsv: query, intent, then (neighbour, intent, cosine) x k, nearest first
//!
//! Env: VERIFY_THRESHOLDS (comma list), VERIFY_STRICTNESS (strict|balanced), VERIFY_HALF
//! (0|1: only test groups whose index parity matches, for hold-out), VERIFY_DUMP (print refusals).
use deja::cache::verify::{Strictness, Verifier};
use std::collections::BTreeMap;

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|s| !s.is_empty())
}

#[test]
#[ignore]
fn evaluate() {
    let Some(dir) = env("VERIFY_EVAL_DIR") else {
        return;
    };
    let strict = match env("VERIFY_STRICTNESS").as_deref() {
        Some("strict") => Strictness::Strict,
        _ => Strictness::Balanced,
    };
    let v = Verifier::new(strict);
    let ths: Vec<f32> = env("VERIFY_THRESHOLDS")
        .unwrap_or("0.75,0.8,0.85".into())
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    let dump = env("VERIFY_DUMP");
    let text = std::fs::read_to_string(format!("{dir}/pairs_sim.tsv")).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut groups: Vec<&str> = rows.iter().map(|r| r[1]).collect();
    groups.sort();
    groups.dedup();
    let half = env("VERIFY_HALF").map(|h| h.parse::<usize>().unwrap());
    let t0 = std::time::Instant::now();
    let verdicts: Vec<_> = rows
        .iter()
        .map(|r| v.verify(r[2], r[3], r[5].parse().unwrap()))
        .collect();
    eprintln!("{} pairs verified in {:?}", rows.len(), t0.elapsed());
    for &th in &ths {
        // group -> (dup, n, served_thr, served_ver)
        let mut g: BTreeMap<(&str, &str), (usize, usize, usize)> = BTreeMap::new();
        for (r, vd) in rows.iter().zip(&verdicts) {
            let gi = groups.iter().position(|x| *x == r[1]).unwrap();
            if half.is_some_and(|h| gi % 2 != h) {
                continue;
            }
            let above = r[5].parse::<f32>().unwrap() >= th;
            let e = g.entry((r[4], r[1])).or_default();
            e.0 += 1;
            e.1 += usize::from(above);
            e.2 += usize::from(above && vd.accept);
            if above && dump.as_deref() == Some(r[4]) && (vd.accept == (r[4] == "0")) {
                println!(
                    "DUMP\t{}\t{}\t{}\t{}\t{}",
                    r[1], r[2], r[3], r[5], vd.detail
                );
            }
        }
        println!("\n== threshold {th} ({strict:?})\ndup  group                                                         n   thr-only  +verifier");
        let mut tot = [(0, 0, 0); 2];
        for ((d, name), (n, a, b)) in &g {
            let k = usize::from(*d == "1");
            tot[k].0 += n;
            tot[k].1 += a;
            tot[k].2 += b;
            println!(
                "{d}    {:<60} {n:>5}  {:>6.1}%  {:>6.1}%",
                &name[..name.len().min(60)],
                100.0 * *a as f64 / *n as f64,
                100.0 * *b as f64 / *n as f64
            );
        }
        let pct = |x: usize, n: usize| 100.0 * x as f64 / n.max(1) as f64;
        let worst = g
            .iter()
            .filter(|((d, _), _)| *d == "0")
            .map(|((_, name), (n, a, b))| (pct(*b, *n), pct(*a, *n), *name))
            .fold((0.0, 0.0, ""), |m, x| if x.0 > m.0 { x } else { m });
        println!(
            "worst dup=0 group served with verifier: {:.1}% ({}; threshold alone {:.1}%)",
            worst.0, worst.2, worst.1
        );
        println!(
            "wrong-answer rate (dup=0 served): {:.1}% -> {:.1}%",
            pct(tot[0].1, tot[0].0),
            pct(tot[0].2, tot[0].0)
        );
        println!(
            "duplicate recall (dup=1 served):  {:.1}% -> {:.1}%",
            pct(tot[1].1, tot[1].0),
            pct(tot[1].2, tot[1].0)
        );
        for name in ["banking77", "clinc150", "clinc150_oos"] {
            let Ok(t) = std::fs::read_to_string(format!("{dir}/intent_{name}.tsv")) else {
                continue;
            };
            let (mut n, mut hit_t, mut hit_v, mut wrong_t, mut wrong_v, mut any_t, mut any_v) =
                (0, 0, 0, 0, 0, 0, 0);
            let mut why: BTreeMap<&str, usize> = BTreeMap::new();
            let mut num_diff = 0;
            for l in t.lines() {
                let f: Vec<&str> = l.split('\t').collect();
                n += 1;
                let (q, qi, nt, ni, c) = (f[0], f[1], f[2], f[3], f[4].parse::<f32>().unwrap());
                if c < th {
                    continue;
                }
                let same = qi == ni && !name.ends_with("oos");
                let vd = v.verify(q, nt, c);
                let ok = vd.accept;
                if same && !ok {
                    *why.entry(vd.reason.map_or("", |r| r.as_str())).or_default() += 1;
                }
                if same && vd.reason == Some(deja::cache::verify::RefusalReason::Number) {
                    num_diff += 1;
                }
                any_t += 1;
                any_v += usize::from(ok);
                if same {
                    hit_t += 1;
                    hit_v += usize::from(ok);
                } else {
                    wrong_t += 1;
                    wrong_v += usize::from(ok);
                }
                if dump.as_deref() == Some(name) && same && !ok {
                    println!("DUMP\t{q}\t{nt}\t{c}\t{}", v.verify(q, nt, c).detail);
                }
            }
            println!(
                "{name:<13} n={n}: served {:.1}% -> {:.1}%; correct hit {:.1}% -> {:.1}% (kept {:.1}%); wrong-intent served {:.1}% -> {:.1}%",
                pct(any_t, n), pct(any_v, n), pct(hit_t, n), pct(hit_v, n), pct(hit_v, hit_t), pct(wrong_t, n), pct(wrong_v, n)
            );
            println!(
                "  kept excluding correct hits whose numbers differ: {:.1}%",
                pct(hit_v, hit_t - num_diff)
            );
            if !why.is_empty() {
                println!("  correct hits refused by reason: {why:?}");
            }
        }
    }
}
