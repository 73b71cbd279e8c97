//! Behaviour tests with hand-written examples (none taken from the dev set).
use super::*;
use std::sync::OnceLock;

fn balanced() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| Verifier::new(Strictness::Balanced))
}

fn strict() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| Verifier::new(Strictness::Strict))
}

#[track_caller]
fn refuses(v: &Verifier, a: &str, b: &str, reason: RefusalReason) {
    for (x, y) in [(a, b), (b, a)] {
        let d = v.verify(x, y, 0.95);
        assert!(
            !d.accept,
            "expected refusal ({reason:?}) for {x:?} vs {y:?}, got {d:?}"
        );
        assert_eq!(d.reason, Some(reason), "{x:?} vs {y:?}: {}", d.detail);
        assert!(d.detail.starts_with(reason.as_str()), "{}", d.detail);
    }
}

#[track_caller]
fn accepts(v: &Verifier, a: &str, b: &str) {
    for (x, y) in [(a, b), (b, a)] {
        let d = v.verify(x, y, 0.95);
        assert!(
            d.accept,
            "expected accept for {x:?} vs {y:?}, got {}",
            d.detail
        );
        assert_eq!(d.reason, None);
    }
}

#[test]
fn negation_refused() {
    let v = balanced();
    refuses(
        v,
        "Is it safe to drink coffee while pregnant?",
        "Is it not safe to drink coffee while pregnant?",
        RefusalReason::Negation,
    );
    refuses(
        v,
        "Can I travel abroad with an expired passport?",
        "Can I travel abroad without an expired passport?",
        RefusalReason::Negation,
    );
    refuses(
        v,
        "Why does my laptop charge?",
        "Why doesn't my laptop charge?",
        RefusalReason::Negation,
    );
    refuses(
        v,
        "Should I ever reboot the router?",
        "Should I never reboot the router?",
        RefusalReason::Negation,
    );
}

#[test]
fn double_reversal_is_a_paraphrase() {
    let v = balanced();
    // negation + antonym cancel out
    accepts(
        v,
        "How do I stay a patient person?",
        "How do I stay a person who is not impatient?",
    );
    accepts(
        v,
        "Is the tap water safe to drink?",
        "Is the tap water not dangerous to drink?",
    );
    accepts(
        v,
        "Why can't I remember my password?",
        "Why do I forget my password?",
    );
}

#[test]
fn antonyms_refused() {
    let v = balanced();
    refuses(
        v,
        "Is it legal to record a phone call?",
        "Is it illegal to record a phone call?",
        RefusalReason::Antonym,
    );
    refuses(
        v,
        "How do I enable notifications on my watch?",
        "How do I disable notifications on my watch?",
        RefusalReason::Antonym,
    );
    refuses(
        v,
        "Is a careful driver rewarded by insurers?",
        "Is a careless driver rewarded by insurers?",
        RefusalReason::Antonym,
    );
    refuses(
        v,
        "Which foods are safe for parrots?",
        "Which foods are dangerous for parrots?",
        RefusalReason::Antonym,
    );
}

#[test]
fn comparatives_refused() {
    let v = balanced();
    refuses(
        v,
        "How do I make my bread more crusty?",
        "How do I make my bread less crusty?",
        RefusalReason::Comparative,
    );
    refuses(
        v,
        "Which phone plan gives more data?",
        "Which phone plan gives less data?",
        RefusalReason::Comparative,
    );
    refuses(
        v,
        "Which laptop is better for gaming?",
        "Which laptop is worse for gaming?",
        RefusalReason::Comparative,
    );
}

#[test]
fn numbers_units_dates_refused() {
    let v = balanced();
    refuses(
        v,
        "Can I withdraw 500 dollars a day?",
        "Can I withdraw 300 dollars a day?",
        RefusalReason::Number,
    );
    refuses(
        v,
        "Is 3 hours of sleep enough?",
        "Is three minutes of sleep enough?",
        RefusalReason::Number,
    );
    refuses(
        v,
        "How far is 10 km?",
        "How far is 10 miles?",
        RefusalReason::Number,
    );
    refuses(
        v,
        "Is the museum open on Monday?",
        "Is the museum open on Sunday?",
        RefusalReason::Number,
    );
    refuses(
        v,
        "What happened in 1969?",
        "What happened in 1989?",
        RefusalReason::Number,
    );
    // the same number written differently is fine
    accepts(
        v,
        "Can I bring two bags on board?",
        "Can I bring 2 bags on board?",
    );
    accepts(
        v,
        "Is a 1,000 dollar loan expensive?",
        "Is a 1000 dollar loan expensive?",
    );
    // words that are numbers only in some uses
    accepts(
        v,
        "How do I pair my headphones with my laptop?",
        "How can I pair my headphones with my laptop?",
    );
    refuses(
        v,
        "Can I book a room for a couple of nights?",
        "Can I book a room for three nights?",
        RefusalReason::Number,
    );
    refuses(
        v,
        "Is the pool open between one and three?",
        "Is the pool open between one and four?",
        RefusalReason::Number,
    );
}

#[test]
fn number_words_are_read_as_people_write_them() {
    let lex = &balanced().lex;
    let numbers = |text: &str| -> Vec<String> {
        let mut out: Vec<String> = text::tokenize(text, lex, 64)
            .into_iter()
            .filter_map(|t| t.number)
            .collect();
        out.dedup();
        out
    };
    assert_eq!(numbers("twenty five apples"), ["25"]);
    assert_eq!(numbers("two hundred and five"), ["205"]);
    assert_eq!(numbers("three thousand four hundred"), ["3400"]);
    assert_eq!(numbers("between one and three pm"), ["1", "3"]);
    assert_eq!(numbers("a couple of days"), ["2"]);
    assert_eq!(numbers("half an hour"), ["50"]);
    assert!(numbers("pair with my phone").is_empty());
    assert!(numbers("I broke it in half").is_empty());
    assert!(numbers("a happy couple").is_empty());
}

#[test]
fn temporal_and_spatial_order_refused() {
    let v = balanced();
    refuses(
        v,
        "Should I stretch before running?",
        "Should I stretch after running?",
        RefusalReason::TemporalOrder,
    );
    refuses(
        v,
        "What did people eat earlier in history?",
        "What did people eat later in history?",
        RefusalReason::TemporalOrder,
    );
    refuses(
        v,
        "Is the attic above the garage?",
        "Is the attic below the garage?",
        RefusalReason::SpatialOrder,
    );
    refuses(
        v,
        "Should the spare key go inside the house?",
        "Should the spare key go outside the house?",
        RefusalReason::SpatialOrder,
    );
}

#[test]
fn role_swaps_refused() {
    let v = balanced();
    refuses(
        v,
        "Did Google acquire Fitbit?",
        "Did Fitbit acquire Google?",
        RefusalReason::RoleSwap,
    );
    refuses(
        v,
        "Is a cheetah faster than a horse?",
        "Is a horse faster than a cheetah?",
        RefusalReason::RoleSwap,
    );
    refuses(
        v,
        "How do I convert euros to yen?",
        "How do I convert yen to euros?",
        RefusalReason::RoleSwap,
    );
    refuses(
        v,
        "Did the teacher praise the student?",
        "Was the teacher praised by the student?",
        RefusalReason::RoleSwap,
    );
    // light verbs that are filler elsewhere ("I'd like to know", "find out") still pivot roles
    refuses(
        v,
        "Did the landlord like the tenant?",
        "Was the landlord liked by the tenant?",
        RefusalReason::RoleSwap,
    );
    refuses(
        v,
        "Was the clinic needed by Laura?",
        "Did the clinic need Laura?",
        RefusalReason::RoleSwap,
    );
}

#[test]
fn passive_and_coordination_keep_roles() {
    let v = balanced();
    accepts(
        v,
        "Did the committee approve the budget?",
        "Was the budget approved by the committee?",
    );
    accepts(
        v,
        "Did the auditor find the error?",
        "Was the error found by the auditor?",
    );
    accepts(
        v,
        "Is pasta with tomatoes and basil tasty?",
        "Is pasta with basil and tomatoes tasty?",
    );
    accepts(
        v,
        "What is the difference between a virus and a bacterium?",
        "What is the difference between a bacterium and a virus?",
    );
}

#[test]
fn pronouns_and_gender_refused() {
    let v = balanced();
    refuses(
        v,
        "Why did he leave the band?",
        "Why did she leave the band?",
        RefusalReason::Pronoun,
    );
    refuses(
        v,
        "Can I borrow his charger?",
        "Can I borrow their charger?",
        RefusalReason::Pronoun,
    );
    refuses(
        v,
        "Should my husband get a flu shot?",
        "Should my wife get a flu shot?",
        RefusalReason::Antonym,
    );
    refuses(
        v,
        "Can you help me?",
        "Can I help you?",
        RefusalReason::Pronoun,
    );
    // generic "you" and "I" ask the same how-to question (balanced); strict refuses
    accepts(
        v,
        "How do I reset my password?",
        "How do you reset your password?",
    );
    assert!(
        !strict()
            .verify(
                "How do I reset my password?",
                "How do you reset your password?",
                0.95
            )
            .accept
    );
}

#[test]
fn a_possessive_alone_changing_person_changes_whose_thing_it_is() {
    let v = balanced();
    refuses(
        v,
        "how do you say your name",
        "how do you say my name",
        RefusalReason::Pronoun,
    );
    refuses(
        v,
        "Can I see my booking?",
        "Can I see your booking?",
        RefusalReason::Pronoun,
    );
    // the "you" of a request frame is no person asked about
    refuses(
        v,
        "tell me what your name is",
        "can you tell me what my name is",
        RefusalReason::Pronoun,
    );
    // a change of perspective moves every person word: the generic "you"
    accepts(
        v,
        "How do I reset my password?",
        "How do you reset your password?",
    );
}

#[test]
fn entities_refused() {
    let v = balanced();
    refuses(
        v,
        "What is the capital of Peru?",
        "What is the capital of Chile?",
        RefusalReason::Entity,
    );
    refuses(
        v,
        "Can my cat eat grapes?",
        "Can my rabbit eat grapes?",
        RefusalReason::Entity,
    );
    refuses(
        v,
        "Does Maria Lopez speak French?",
        "Does Anna Novak speak French?",
        RefusalReason::Entity,
    );
}

#[test]
fn added_modifiers_refused() {
    let v = balanced();
    refuses(
        v,
        "Is Tom a pilot?",
        "Is Tom a retired pilot?",
        RefusalReason::AddedModifier,
    );
    refuses(
        v,
        "How do I cook rice?",
        "How do I cook brown rice?",
        RefusalReason::AddedModifier,
    );
    refuses(
        v,
        "Is the river frozen?",
        "Is the river becoming frozen?",
        RefusalReason::AddedModifier,
    );
}

#[test]
fn a_replaced_verb_in_a_short_question_is_a_different_question() {
    let v = balanced();
    // one content word shared is enough to stand on when one word replaces another
    refuses(
        v,
        "How do I delete my account?",
        "How do I create my account?",
        RefusalReason::Entity,
    );
    refuses(
        v,
        "how to cancel my order",
        "how to track my order",
        RefusalReason::Entity,
    );
    // synonyms and inflections still align
    accepts(
        v,
        "How do I erase my account?",
        "How do I delete my account?",
    );
    accepts(v, "how to cancel my order", "how do I cancel my orders");
    // a hyphenated "non-" negates the word it is attached to
    refuses(
        v,
        "Is this ticket non-refundable?",
        "Is this ticket refundable?",
        RefusalReason::Negation,
    );
}

#[test]
fn logic_refused() {
    let v = balanced();
    refuses(
        v,
        "Do the kids need hats or gloves?",
        "Do the kids need hats and gloves?",
        RefusalReason::Logic,
    );
    refuses(
        v,
        "Are all mushrooms edible?",
        "Are some mushrooms edible?",
        RefusalReason::Logic,
    );
}

#[test]
fn paraphrases_accepted() {
    let v = balanced();
    // casing, punctuation, contractions, politeness, filler
    accepts(v, "how do i CHANGE my pin", "How do I change my PIN?");
    accepts(
        v,
        "What's the fee for a wire transfer?",
        "What is the fee for a wire transfer",
    );
    accepts(
        v,
        "Can you please tell me how to close my account?",
        "How to close my account?",
    );
    accepts(
        v,
        "Is this spider really dangerous?",
        "Is this spider actually dangerous?",
    );
    accepts(
        v,
        "Hi, I was wondering how I can update my address",
        "how can I update my address",
    );
    accepts(
        v,
        "How come my refund is still pending?",
        "Why is my refund still pending?",
    );
    // an expletive is emphasis, not a restriction; what it leaves still has to match
    accepts(
        v,
        "How do I delete the bloody account?",
        "How do I delete the account?",
    );
    accepts(
        v,
        "why is my damn parcel so freaking late",
        "why is my parcel so late",
    );
    refuses(
        v,
        "How do I enable the bloody notifications?",
        "How do I disable the notifications?",
        RefusalReason::Antonym,
    );
    // synonyms (WordNet and the small table)
    accepts(
        v,
        "Where can I buy a cheap laptop?",
        "Where can I purchase an inexpensive laptop?",
    );
    accepts(v, "How do I start a podcast?", "How do I begin a podcast?");
    accepts(
        v,
        "What is a good film for kids?",
        "What is a good movie for children?",
    );
    // inflection
    accepts(
        v,
        "How is a password changed?",
        "How are passwords changed?",
    );
    // typos
    accepts(
        v,
        "How do I recieve a refund?",
        "How do I receive a refund?",
    );
    accepts(
        v,
        "Which vegetables are healthiest for toddlers",
        "Which vegtables are healthiest for toddlers",
    );
}

#[test]
fn typo_tolerance_does_not_merge_real_words() {
    let v = balanced();
    refuses(
        v,
        "Can I keep a horse in the garden?",
        "Can I keep a house in the garden?",
        RefusalReason::Entity,
    );
}

#[test]
fn off_accepts_everything() {
    let v = Verifier::new(Strictness::Off);
    assert!(v.verify("Is it safe?", "Is it not safe?", 0.99).accept);
}

#[test]
fn strict_refuses_broad_unexplained_differences() {
    let s = strict();
    let a = "What documents do I need to open a savings account?";
    let b = "Which papers are required for opening a checking account online quickly?";
    assert!(!s.verify(a, b, 0.85).accept);
    assert!(
        s.verify("How do I change my pin?", "how do i change my PIN", 0.85)
            .accept
    );
    assert!(
        !s.verify("Was the store open?", "Is the store open?", 0.97)
            .accept
    );
}

#[test]
fn reasons_are_snake_case_and_distinct() {
    let mut seen = std::collections::HashSet::new();
    for r in RefusalReason::ALL {
        let s = r.as_str();
        assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s}");
        assert!(seen.insert(s), "duplicate {s}");
        assert_eq!(
            serde_json::to_value(r).unwrap(),
            serde_json::Value::String(s.to_string())
        );
    }
    assert_eq!(
        serde_json::to_string(&Strictness::Balanced).unwrap(),
        "\"balanced\""
    );
    let s: Strictness = serde_json::from_str("\"strict\"").unwrap();
    assert_eq!(s, Strictness::Strict);
}

#[test]
fn weird_inputs_never_panic() {
    let long = "word ".repeat(20_000);
    let long2 = format!("{long} extra tail");
    let inputs = [
        "",
        " ",
        "?",
        "!!!",
        "'",
        "n't",
        "'s",
        "can't",
        "''''",
        "$",
        "%%",
        "1,2,3",
        "1.",
        ".5",
        "0.000",
        "99999999999999999999999999999",
        "one hundred and",
        "hundred",
        "million billion",
        "🙂",
        "👩‍👩‍👧‍👦🔥❄️",
        "é",
        "ÉCOLE",
        "İstanbul",
        "straße",
        "日本語の質問ですか",
        "مرحبا كيف حالك",
        "\u{0}\u{1}\u{7f}",
        "\u{200b}\u{feff}",
        "a\tb\nc\r\n",
        "by",
        "was by",
        "is it by by by",
        "x by y",
        "the the the",
        "not not not",
        long.as_str(),
        long2.as_str(),
    ];
    for v in [balanced(), strict()] {
        for a in inputs {
            for b in inputs {
                for sim in [f32::NAN, -1.0, 0.0, 0.9, 1.0, 2.0] {
                    let d = v.verify(a, b, sim);
                    assert_eq!(d.accept, d.reason.is_none());
                }
            }
        }
    }
    // identical long texts are accepted; long texts differing at the end are not
    assert!(balanced().verify(&long, &long, 1.0).accept);
    assert!(!balanced().verify(&long, &long2, 1.0).accept);
}

#[test]
fn elaborations_are_not_restrictions() {
    let v = balanced();
    // a modifier inside a possessive phrase describes the one thing the asker has
    accepts(
        v,
        "When will my parcel be delivered?",
        "When will my new parcel be delivered?",
    );
    // an extra clause or sentence elaborates the same question
    accepts(
        v,
        "Why was my transfer rejected?",
        "Why was my transfer rejected? I tried it again this morning.",
    );
    accepts(
        v,
        "Who should I call to find out why my payment failed?",
        "Find out why my payment failed",
    );
    // an added verb in front of an article is not a modifier of the noun
    accepts(
        v,
        "Can I pay the deposit by card?",
        "Can I pay the deposit by using a card?",
    );
    // but an added restricting modifier on a kind of thing is still refused
    refuses(
        v,
        "Can I freeze bread?",
        "Can I freeze sliced bread?",
        RefusalReason::AddedModifier,
    );
}

#[test]
fn reworded_negation_is_left_to_the_threshold() {
    let v = balanced();
    // the negated word itself differs: the wording changed, not the question
    accepts(
        v,
        "I bought a lamp and the price was not right, can you check?",
        "I bought a lamp then noticed the price was wrong, can you check?",
    );
    // the negator scopes over a shared word: refused
    refuses(
        v,
        "Does the tracking page work for my order?",
        "Does the tracking page not work for my order?",
        RefusalReason::Negation,
    );
}

#[test]
fn order_words_must_replace_each_other() {
    let v = balanced();
    // "from" and "into" in different places of a reworded question are no swap
    accepts(
        v,
        "how would i convert from litres to gallons",
        "how can i convert litres into gallons",
    );
    refuses(
        v,
        "Should I water the plants before sunrise?",
        "Should I water the plants after sunrise?",
        RefusalReason::TemporalOrder,
    );
}

#[test]
fn indirect_and_graded_antonyms_refused() {
    let v = balanced();
    // WordNet lists "warm" / "cool" and "cold" / "hot" but not "warm" / "cold"
    refuses(
        v,
        "Should I serve the soup warm?",
        "Should I serve the soup cold?",
        RefusalReason::Antonym,
    );
    // comparatives and superlatives of opposed adjectives
    refuses(
        v,
        "How can I keep my greenhouse warmer at night?",
        "How can I keep my greenhouse colder at night?",
        RefusalReason::Antonym,
    );
    refuses(
        v,
        "Which is the wettest month in Lisbon?",
        "Which is the driest month in Lisbon?",
        RefusalReason::Antonym,
    );
    // synonyms stay synonyms
    accepts(
        v,
        "How do I keep my tea warm for longer?",
        "How do I keep my tea hot for longer?",
    );
}

#[test]
fn yes_no_question_tense_refused_wh_question_tense_left_to_threshold() {
    let v = balanced();
    refuses(
        v,
        "Is the ferry running on holidays?",
        "Was the ferry running on holidays?",
        RefusalReason::Tense,
    );
    refuses(
        v,
        "Does the museum charge for parking?",
        "Did the museum charge for parking?",
        RefusalReason::Tense,
    );
    refuses(
        v,
        "Is Marie Curie a chemist?",
        "Was Marie Curie a chemist?",
        RefusalReason::Tense,
    );
    // same tense, other auxiliary
    accepts(
        v,
        "Is my parcel delivered?",
        "Has my parcel been delivered?",
    );
    // the auxiliary is not the only difference: the wording changed, not just the time
    accepts(
        v,
        "Why was my transfer rejected?",
        "Why is my transfer rejected?",
    );
}

#[test]
fn a_misspelling_does_not_hide_the_difference_that_matters() {
    let v = balanced();
    // the word that changes the meaning is itself misspelt (letters swapped, missing,
    // doubled, wrong)
    for request in [
        "Is Kevin Perez becoimng an accountant?",
        "Is Kevin Perez becomig an accountant?",
        "Is Kevin Perez becomming an accountant?",
        "Is Kevin Perez becominh an accountant?",
    ] {
        refuses(
            v,
            "Is Kevin Perez an accountant?",
            request,
            RefusalReason::AddedModifier,
        );
    }
    // a misspelling elsewhere would be a second place of difference hiding the first
    refuses(
        v,
        "Can I feed my owl tuna?",
        "Can I feed my goat utna?",
        RefusalReason::Entity,
    );
    refuses(
        v,
        "Can I feed my squirrel meat?",
        "Can I feed my dog maet?",
        RefusalReason::Entity,
    );
    refuses(
        v,
        "Did Jordan like the paper?",
        "Was Jordan likde by the paper?",
        RefusalReason::RoleSwap,
    );
    // ... and the same misspellings in a true duplicate are still served
    accepts(
        v,
        "Is Kevin Perez becoming an accountant?",
        "Is Kevin Perez becomming an accountant?",
    );
    accepts(v, "Can I feed my goat tuna?", "Can I feed my goat utna?");
}

#[test]
fn corrections_take_the_one_plausible_word_or_none() {
    let lex = Lexicon::build();
    let c = |w: &str| text::correct(w, &lex);
    assert_eq!(c("becoimng").as_deref(), Some("becoming"));
    assert_eq!(c("likde").as_deref(), Some("liked"));
    // a listed word beats an inflection of a rare one ("feded" from "fed")
    assert_eq!(c("feedd").as_deref(), Some("feed"));
    // the clearly commoner base among inflections ("becking", "decoing")
    assert_eq!(c("becoing").as_deref(), Some("becoming"));
    // function words are words too ("abuot" -> "about")
    assert_eq!(c("abuot").as_deref(), Some("about"));
    // ambiguous: left as written
    assert_eq!(c("maet"), None);
    // real words, inflected ones and comparatives are never corrected
    assert_eq!(c("driest"), None);
    assert_eq!(c("needed"), None);
    // words written with capitals are names: the tokenizer keeps them as written
    let t = text::tokenize("Is yRan Robinson here?", &lex, 10);
    assert_eq!(t[1].norm, "yran");
}

#[test]
fn respelling_rewrites_only_standalone_misspelt_words() {
    let lex = Lexicon::build();
    let r = |t: &str| text::respell(t, &lex, MAX_WORDS);
    assert_eq!(
        r("Is Kevin Perez becoimng an accountant?").as_deref(),
        Some("Is Kevin Perez becoming an accountant?")
    );
    // the text around the words is kept as written, sentence punctuation included
    assert_eq!(
        r("  Can I feed my goat utna?\n(asking for a freind.)").as_deref(),
        Some("  Can I feed my goat tuna?\n(asking for a friend.)")
    );
    // clean text, names, ambiguous slips and short words: nothing to rewrite
    assert_eq!(r("Is Kevin Perez becoming an accountant?"), None);
    assert_eq!(r("Is Keivn Perez an accountant?"), None);
    assert_eq!(r("Is the maet fresh?"), None);
    // a capital opening a sentence is no name
    assert_eq!(
        r("Cancle my order. Waht is the fee? Ask Perez").as_deref(),
        Some("Cancel my order. What is the fee? Ask Perez")
    );
    // parts of larger tokens are never rewritten: addresses, identifiers, contractions
    assert_eq!(r("Mail freind@example.com or see www.freind.org"), None);
    assert_eq!(r("call get_freind or freind-list, it's freind's"), None);
    // words past the limit are left as written
    let long = format!("{} freind", "word ".repeat(MAX_WORDS));
    assert_eq!(r(&long), None);
    let e = balanced().embedding_text("my freind");
    assert_eq!(e, "my friend");
}

#[test]
fn words_run_together_are_split_where_one_split_is_plain() {
    let lex = Lexicon::build();
    let u = |w: &str| text::unglue(w, &lex, &text::slips(w, &lex));
    let pair = |x: &str, y: &str| Some((x.to_owned(), y.to_owned()));
    assert_eq!(u("tocancel"), pair("to", "cancel"));
    assert_eq!(u("reimbursementof"), pair("reimbursement", "of"));
    assert_eq!(u("mypassword"), pair("my", "password"));
    // a slip reaching only an inflection of a rare word ("torest" from "tor") loses
    assert_eq!(u("toreset"), pair("to", "reset"));
    assert_eq!(u("theorder"), pair("the", "order"));
    // a word, a slip ("atack": "attack" or "stack", never "a tack"), or nothing plain:
    // left alone
    assert_eq!(u("cancel"), None);
    assert_eq!(u("atack"), None);
    assert_eq!(u("xqzvbnm"), None);
    let r = |t: &str| text::respell(t, &lex, MAX_WORDS);
    assert_eq!(
        r("i need help tocancel order 123").as_deref(),
        Some("i need help to cancel order 123")
    );
    assert_eq!(
        r("I expect a reimbursementof $299").as_deref(),
        Some("I expect a reimbursement of $299")
    );
    // a slip that reads as several words ("attack", "stack") is left as written, not
    // split into "a tack"
    assert_eq!(r("how do I atack the problem"), None);
    // the verifier reads the two words: a run-together word hides no difference
    let v = balanced();
    accepts(v, "help me tocancel my order", "help me to cancel my order");
    refuses(
        v,
        "is it possible tocancel my order?",
        "is it possible to place my order?",
        RefusalReason::Entity,
    );
}

#[test]
fn a_negator_ending_the_question_negates_what_it_leaves_unsaid() {
    let v = balanced();
    refuses(
        v,
        "How can I become a ___ person?",
        "How can I become a person who is not ___?",
        RefusalReason::Negation,
    );
    refuses(
        v,
        "Is my order eligible for a refund?",
        "Is my order eligible for a refund or is it not?",
        RefusalReason::Negation,
    );
    // "or not" offers the alternative: the same yes/no question
    accepts(
        v,
        "Should I renew my passport early?",
        "Should I renew my passport early or not?",
    );
}

#[test]
fn a_symmetric_relation_may_swap_its_sides() {
    let v = balanced();
    accepts(v, "Is Emma married to James?", "Is James married to Emma?");
    accepts(
        v,
        "Is Laura friends with Omar?",
        "Is Omar friends with Laura?",
    );
    accepts(v, "Did Emma meet James?", "Did James meet Emma?");
    // asymmetric relations, and symmetric ones whose sides are not the two swapped
    for (a, b) in [
        ("Is Emma proud of James?", "Is James proud of Emma?"),
        (
            "Is Emma married to James's brother?",
            "Is James married to Emma's brother?",
        ),
        (
            "Is Emma married to the brother of James?",
            "Is James married to the brother of Emma?",
        ),
    ] {
        refuses(v, a, b, RefusalReason::RoleSwap);
    }
}

#[test]
fn an_ambiguous_misspelling_is_read_as_any_of_its_words() {
    let v = balanced();
    let lex = Lexicon::build();
    // "wnted": wanted or wonted; "wated": a slip from too many words to say
    let t = text::tokenize("wnted wated", &lex, 5);
    assert!(
        t[0].readings.contains(&"want".to_string()),
        "{:?}",
        t[0].readings
    );
    assert!(t[1].readings.is_empty(), "{:?}", t[1].readings);
    // a wrong active/passive swap whose participle is misspelt is still a swap
    for (a, b) in [
        (
            "Did Zachary want the newspaper?",
            "Was Zachary wnted by the newspaper?",
        ),
        (
            "Did Nicole find the factory?",
            "Was Nicole foynd by the factory?",
        ),
        (
            "Did Jessica destroy the house?",
            "Was Jessica destroye by the house?",
        ),
    ] {
        refuses(v, a, b, RefusalReason::RoleSwap);
    }
    // "becming" (becoming or beaming) may be the change of state
    refuses(
        v,
        "Is Hannah Adams an academic?",
        "Is Hannah Adams becming an academic?",
        RefusalReason::AddedModifier,
    );
    // and the right reading still pairs with the word it stands for
    accepts(
        v,
        "Was the newspaper wanted by Zachary?",
        "Was the newspaper wnted by Zachary?",
    );
}
