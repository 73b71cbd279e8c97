use super::*;

#[test]
fn smoke() {
    let v = Verifier::new(Strictness::Balanced);
    assert!(v.verify("hi", "hi", 1.0).accept);
}
