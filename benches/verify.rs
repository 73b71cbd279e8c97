//! Per-candidate cost of the false-hit verifier, the one-off cost of building it, and
//! the per-question cost of correcting misspellings before embedding (`cache.respell`).
//! `cargo bench --bench verify`. Pairs are hand-written (none from any evaluation set):
//! paraphrases that must be served and traps that must be refused, short and long.
use criterion::{criterion_group, criterion_main, Criterion};
use deja::cache::verify::{Strictness, Verifier};
use std::hint::black_box;

const PAIRS: &[(&str, &str)] = &[
    // paraphrases
    ("How do I reset my router password?", "how can i reset the password of my router"),
    ("Where can I buy a cheap laptop?", "Where can I purchase an inexpensive laptop?"),
    ("Can you please tell me how to close my savings account?", "How do I close my savings account"),
    ("Is it safe to drink tap water in Lisbon?", "Is tap water in Lisbon safe to drink?"),
    ("My parcel still hasn't arrived after ten days, what should I do?", "What do I do if my package has not arrived 10 days later?"),
    ("Did the board approve the merger?", "Was the merger approved by the board?"),
    ("What is the difference between a latte and a cappuccino?", "What's the difference between a cappuccino and a latte?"),
    ("Hi there! I was wondering whether you could explain how I update the billing address on my account, because I moved house last month and the old one is still showing on my invoices.", "How do I change the billing address on my account? I moved last month and my invoices still show the old address."),
    // traps
    ("Is it safe to take ibuprofen before surgery?", "Is it safe to take ibuprofen after surgery?"),
    ("Can I withdraw 500 euros a day?", "Can I withdraw 5000 euros a day?"),
    ("How do I make my sourdough less sour?", "How do I make my sourdough more sour?"),
    ("Did Alice call Bob?", "Did Bob call Alice?"),
    ("Should my dog eat grapes?", "Should my dog not eat grapes?"),
    ("Is the library open on Saturday?", "Is the library open on Sunday?"),
    ("How do I cook rice?", "How do I cook wild rice?"),
    ("Why did she quit the team?", "Why did he quit the team?"),
    ("Hi there! I was wondering whether you could explain how I update the billing address on my account, because I moved house last month and the old one is still showing on my invoices.", "Hi there! I was wondering whether you could explain how I update the shipping address on my account, because I moved house last month and the old one is still showing on my invoices."),
];

/// Questions with typing slips (corrected before embedding).
const MISSPELT: &[&str] = &[
    "How do I reset my passwrod?",
    "Can I chnage my shipping adress?",
    "Is Kevin Perez becoimng an accountant?",
    "Why was my crad declined after I updaetd my paymnet method?",
];

fn bench(c: &mut Criterion) {
    c.bench_function("Verifier::new", |b| {
        b.iter(|| black_box(Verifier::new(Strictness::Balanced)))
    });
    for strictness in [Strictness::Balanced, Strictness::Strict] {
        let v = Verifier::new(strictness);
        let name = format!(
            "verify/{strictness:?}/per-candidate (mix of {} pairs)",
            PAIRS.len()
        );
        c.bench_function(&name, |b| {
            let mut k = 0;
            b.iter(|| {
                let (x, y) = PAIRS[k % PAIRS.len()];
                k += 1;
                black_box(v.verify(black_box(x), black_box(y), 0.9))
            })
        });
    }
    let v = Verifier::new(Strictness::Balanced);
    let clean: Vec<&str> = PAIRS.iter().map(|p| p.0).collect();
    for (name, questions) in [("clean", &clean[..]), ("misspelt", MISSPELT)] {
        c.bench_function(&format!("embedding_text/{name} question"), |b| {
            let mut k = 0;
            b.iter(|| {
                k += 1;
                black_box(v.embedding_text(black_box(questions[k % questions.len()])))
            })
        });
    }
    let (x, y) = PAIRS[16];
    c.bench_function("verify/Balanced/long pair (~40 words)", |b| {
        b.iter(|| black_box(v.verify(black_box(x), black_box(y), 0.9)))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
