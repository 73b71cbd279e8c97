//! `deja eval-pairs` on a sample of the development pairs, through the serving path, with
//! assertions on its numbers: the verifier must keep wrong answers rare where the
//! threshold alone serves most different-meaning pairs, and still serve most paraphrases.
//! The pairs are tests/data/pairs/checklist-dev-every40.tsv: every 40th development pair
//! (the sample `--every 40` takes from the full checklist-dev.tsv), all 17 groups.

use serde_json::Value;
use std::process::Command;

fn eval(strictness: &str) -> Value {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/pairs/checklist-dev-every40.tsv"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_deja"))
        .args([
            "eval-pairs",
            file,
            "--thresholds",
            "0.75",
            "--json",
            "--strictness",
            strictness,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0].clone()
}

fn rate(st: &Value, num: &str, den: &str) -> f64 {
    st[num].as_f64().unwrap() / st[den].as_f64().unwrap().max(1.0)
}

#[test]
fn verifier_cuts_wrong_answers_and_keeps_paraphrases() {
    let base = eval("off");
    let ver = eval("balanced");
    let (b, v) = (&base["overall"], &ver["overall"]);
    assert_eq!(b["pairs"], v["pairs"]);
    assert!(v["pairs"].as_u64().unwrap() > 600);
    let (wrong_base, wrong_ver) = (
        rate(b, "wrong", "non_duplicates"),
        rate(v, "wrong", "non_duplicates"),
    );
    let (recall_base, recall_ver) = (
        rate(b, "served_duplicates", "duplicates"),
        rate(v, "served_duplicates", "duplicates"),
    );
    // The threshold alone answers most different-meaning pairs with the other's reply...
    assert!(
        wrong_base > 0.5,
        "threshold alone: wrong-answer rate {wrong_base:.3}"
    );
    // ...the verifier almost none, while most true paraphrases are still served.
    assert!(
        wrong_ver <= 0.03,
        "with the verifier: wrong-answer rate {wrong_ver:.3}"
    );
    assert!(
        recall_ver >= 0.6,
        "with the verifier: duplicates served {recall_ver:.3}"
    );
    assert!(recall_ver <= recall_base + 1e-9);
    for (group, st) in ver["groups"].as_object().unwrap() {
        let w = rate(st, "wrong", "non_duplicates");
        assert!(w <= 0.2, "{group}: wrong-answer rate {w:.3}");
    }
}
