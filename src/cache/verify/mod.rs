//! False-hit verifier: the stage between "nearest cache entry above the cosine threshold"
//! and "serve it".
//!
//! Sentence embeddings place "Is it safe to smoke before surgery?" and "... after
//! surgery?" closer together than many true paraphrases, so a cosine threshold alone
//! cannot keep a different question from getting a cached answer. [`Verifier::verify`]
//! compares the request text with the candidate entry's text and refuses when the
//! difference between them is one that changes the answer.
//!
//! How it works:
//! 1. Both texts are normalised (case, accents, quotes, contractions: "isn't" -> "is not")
//!    and tokenised; each word gets its candidate base forms (light lemmatiser + WordNet
//!    irregular forms) and numbers get values ("twenty five" = "25"). An unknown
//!    lowercase word one typing slip from a single plausible known word is read as that
//!    word ("becoimng" -> "becoming"; `text::correct`), so a misspelling neither hides
//!    the word that changes the meaning nor adds a second place of difference; one that
//!    runs a function word into the next word is read as both ("tocancel";
//!    `text::unglue`).
//! 2. The word sequences are aligned (longest common subsequence). Two words align when
//!    they share a base form, are WordNet synonyms, or one is a misspelling of the other
//!    (edit distance 1-2, from four letters, where at least one is not a known word).
//! 3. What is left unaligned is classified with closed-class lexicons (`lexicon.rs`):
//!    - numbers, units and dates must match;
//!    - polarity: negators plus antonym swaps (WordNet antonyms plus graded opposites it
//!      only links indirectly, "warm" / "cold"; comparatives and superlatives of opposed
//!      adjectives, "warmer" / "colder"; un-/in-/dis- prefixes, -ful/-less) must flip
//!      an even number of times ("a positive person" = "a person who is not negative",
//!      but "safe" != "not safe");
//!    - order words (before/after, above/below, more/less, and/or, all/some) must not swap;
//!    - pronouns must keep person and gender;
//!    - content words moved across a verb or role preposition are a role swap
//!      ("A hired B" vs "B hired A"), with active/passive normalised first;
//!    - a different proper noun is a different entity;
//!    - when the texts are otherwise the same, any leftover content word that is not filler
//!      (politeness, hedges, intensifiers) is an added restriction or a different thing.
//! 4. Balanced refuses only on *specific evidence* of a changed meaning, located at one
//!    place, because true paraphrases (FAQ and intent data) differ in many words while
//!    traps differ in one:
//!    - a lone negator must scope over a word both texts share ("is it [not] safe");
//!    - opposed order words and antonyms must replace each other in the same gap between
//!      aligned words (or the wordings must be close);
//!    - a role swap needs content words exchanging places around a shared pivot with
//!      at least 90% of content words shared; a pronoun swap needs two persons exchanging
//!      places around a shared word ("can I help you" / "can you help me");
//!    - a capitalised word replaced by another capitalised word is a different entity;
//!    - an added or replaced content word counts only when it is the single place of
//!      difference, nothing else (pronoun, question word, clause) differs, and an added
//!      word is a modifier in front of a shared word outside a possessive phrase
//!      ("a retired pilot", not "my new card"); extra clauses are elaborations. One word
//!      replacing another needs one shared content word around it ("delete" / "create
//!      my account"), two words changed need two; expletives ("the bloody account") are
//!      filler;
//!    - a question-word change counts only when every content word is shared;
//!    - a tense change counts in a yes/no question whose leading auxiliary is the only
//!      difference ("Is X a lawyer?" / "Was X a lawyer?");
//!    - numbers, units and dates must always match: "1 week" vs "2 weeks" changes the answer.
//! 5. [`Strictness::Strict`] applies every check wherever it fires, and also refuses changes
//!    of tense, question word, and large unexplained content differences when the cosine
//!    similarity is only moderately high.
//!
//! Default: [`Strictness::Balanced`] with a cosine threshold of 0.75 (see the verify branch
//! report for measurements). `Verifier::new` parses the compiled-in WordNet tables
//! (~10 ms); build one at start-up and share it.

mod lexicon;
mod text;

use lexicon::{Axis, Lexicon};
use serde::{Deserialize, Serialize};
use std::fmt;
use text::Token;

/// How hard the verifier looks for meaning-changing differences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strictness {
    /// Also refuse tense changes, question-word changes, person swaps (I/you) and large
    /// unexplained content differences at moderate similarity.
    Strict,
    /// Refuse the differences known to change the answer.
    #[default]
    Balanced,
    /// Accept every candidate (threshold only).
    Off,
}

/// Why a candidate was refused. Low cardinality: used in a header and a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    Negation,
    Number,
    Comparative,
    Antonym,
    TemporalOrder,
    SpatialOrder,
    RoleSwap,
    Entity,
    Pronoun,
    AddedModifier,
    ContentMismatch,
    /// "and" vs "or", "all" vs "some"
    Logic,
    /// "was" vs "is", "will" (strict only)
    Tense,
    /// "why" vs "how" (strict, or when nothing else differs)
    QuestionWord,
}

impl RefusalReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            RefusalReason::Negation => "negation",
            RefusalReason::Number => "number",
            RefusalReason::Comparative => "comparative",
            RefusalReason::Antonym => "antonym",
            RefusalReason::TemporalOrder => "temporal_order",
            RefusalReason::SpatialOrder => "spatial_order",
            RefusalReason::RoleSwap => "role_swap",
            RefusalReason::Entity => "entity",
            RefusalReason::Pronoun => "pronoun",
            RefusalReason::AddedModifier => "added_modifier",
            RefusalReason::ContentMismatch => "content_mismatch",
            RefusalReason::Logic => "logic",
            RefusalReason::Tense => "tense",
            RefusalReason::QuestionWord => "question_word",
        }
    }

    /// Every reason, for metric pre-registration.
    pub const ALL: [RefusalReason; 14] = [
        RefusalReason::Negation,
        RefusalReason::Number,
        RefusalReason::Comparative,
        RefusalReason::Antonym,
        RefusalReason::TemporalOrder,
        RefusalReason::SpatialOrder,
        RefusalReason::RoleSwap,
        RefusalReason::Entity,
        RefusalReason::Pronoun,
        RefusalReason::AddedModifier,
        RefusalReason::ContentMismatch,
        RefusalReason::Logic,
        RefusalReason::Tense,
        RefusalReason::QuestionWord,
    ];
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request's text tokenized for [`Verifier::verify_prepared`].
#[derive(Debug, Clone)]
pub struct Prepared<'a> {
    text: &'a str,
    tokens: Vec<text::Token>,
}

/// The decision for one (request, candidate) pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub accept: bool,
    pub reason: Option<RefusalReason>,
    /// Human explanation, e.g. "negation: 'not' only in request".
    pub detail: String,
}

impl Verdict {
    fn accept(detail: impl Into<String>) -> Self {
        Verdict {
            accept: true,
            reason: None,
            detail: detail.into(),
        }
    }
    fn refuse(reason: RefusalReason, detail: impl Into<String>) -> Self {
        Verdict {
            accept: false,
            reason: Some(reason),
            detail: format!("{}: {}", reason.as_str(), detail.into()),
        }
    }
}

/// Words compared per text; longer texts must match exactly past this point.
const MAX_WORDS: usize = 160;
/// Below this cosine similarity, Strict refuses any unexplained content difference.
const STRICT_CONTENT_SIM: f32 = 0.92;
/// Balanced applies negation/pronoun/entity/added-word checks only when at least this
/// share of content words align; below it the wordings differ too much for a word diff
/// to locate what changed, and the cosine threshold decides.
const CLOSE_OVERLAP: f32 = 0.75;

/// Balanced reports a role swap only when at least this share of content words is
/// shared: a swap exchanges the places of the same words.
const ROLE_OVERLAP: f32 = 0.9;

/// Relations that hold both ways: their two sides may swap ("is A married to B").
const SYMMETRIC: &[&str] = &[
    "married",
    "marry",
    "wed",
    "engaged",
    "divorced",
    "divorce",
    "related",
    "friends",
    "friend",
    "neighbours",
    "neighbors",
    "neighbour",
    "neighbor",
    "relationship",
    "dating",
    "siblings",
    "sibling",
    "cousins",
    "cousin",
    "partners",
    "roommates",
    "teammates",
    "colleagues",
    "classmates",
    "similar",
    "identical",
    "same",
    "different",
    "equal",
    "equivalent",
    "compatible",
    "meet",
    "met",
];

/// The verifier. Build once (lexicons are compiled in `new`) and share.
pub struct Verifier {
    strictness: Strictness,
    lex: Lexicon,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("strictness", &self.strictness)
            .finish()
    }
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier::new(Strictness::default())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Req,
    Cand,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Req => "request",
            Side::Cand => "candidate",
        }
    }
}

/// One check: `Some(verdict)` stops verification.
type Check = fn(&Verifier, &mut Pair, f32) -> Option<Verdict>;

struct Pair<'a> {
    a: &'a [Token],
    b: &'a [Token],
    /// aligned index pairs, increasing
    aligned: Vec<(usize, usize)>,
    a_aligned: Vec<bool>,
    b_aligned: Vec<bool>,
    /// unaligned tokens already explained by a check that accepted them
    a_explained: Vec<bool>,
    b_explained: Vec<bool>,
    /// share of content words aligned (0..=1): how close the wordings are
    overlap: f32,
    /// `same_word(a[i], b[j])` at `i * b.len() + j`
    eq: Vec<bool>,
}

impl Verifier {
    pub fn new(strictness: Strictness) -> Self {
        Verifier {
            strictness,
            lex: Lexicon::build(),
        }
    }

    pub fn strictness(&self) -> Strictness {
        self.strictness
    }

    /// What to embed for a question `text`: the text with its misspelt words corrected
    /// ([`text::respell`]), so a typo does not push a paraphrase below the similarity
    /// threshold. Independent of the strictness.
    pub fn embedding_text(&self, text: &str) -> String {
        text::respell(text, &self.lex, MAX_WORDS).unwrap_or_else(|| text.to_owned())
    }

    /// Decide whether `candidate`'s cached answer may be served for `request`.
    /// `similarity` is their cosine similarity (the caller already applied its threshold).
    pub fn verify(&self, request: &str, candidate: &str, similarity: f32) -> Verdict {
        self.verify_prepared(&self.prepare(request), candidate, similarity)
    }

    /// The request's side of [`Verifier::verify`], done once per request (and, on the
    /// serving path, while its embedding is computed) for every candidate it is
    /// compared with.
    pub fn prepare<'a>(&self, request: &'a str) -> Prepared<'a> {
        let tokens = if self.strictness == Strictness::Off {
            Vec::new()
        } else {
            text::tokenize(request, &self.lex, MAX_WORDS + 1)
        };
        Prepared {
            text: request,
            tokens,
        }
    }

    /// [`Verifier::verify`] with the request already [prepared](Verifier::prepare).
    pub fn verify_prepared(
        &self,
        request: &Prepared<'_>,
        candidate: &str,
        similarity: f32,
    ) -> Verdict {
        if self.strictness == Strictness::Off {
            return Verdict::accept("verifier off");
        }
        let a = &request.tokens;
        let b = text::tokenize(candidate, &self.lex, MAX_WORDS + 1);
        if a.len() > MAX_WORDS || b.len() > MAX_WORDS {
            let ta = tail_words(request.text);
            let tb = tail_words(candidate);
            if ta != tb {
                return Verdict::refuse(
                    RefusalReason::ContentMismatch,
                    "long texts differ past the compared prefix",
                );
            }
        }
        let a = &a[..a.len().min(MAX_WORDS)];
        let b = &b[..b.len().min(MAX_WORDS)];
        if a.iter().map(|t| &t.norm).eq(b.iter().map(|t| &t.norm)) {
            return Verdict::accept("same words");
        }
        let mut p = self.align(a, b);
        let checks: [Check; 9] = [
            Verifier::check_numbers,
            Verifier::check_polarity,
            Verifier::check_order,
            Verifier::check_pronouns,
            Verifier::check_roles,
            Verifier::check_entities,
            Verifier::check_question_word,
            Verifier::check_tense,
            Verifier::check_content,
        ];
        for check in checks {
            if let Some(v) = check(self, &mut p, similarity) {
                return v;
            }
        }
        Verdict::accept("differences do not change the meaning")
    }

    // ---- classification helpers ----

    fn is_content(&self, t: &Token) -> bool {
        let w = t.norm.as_str();
        // a misspelling that may be a filler word ("wnted": wanted) counts as one
        !(t.forms
            .iter()
            .chain(&t.readings)
            .any(|f| self.lex.filler.contains(f.as_str()))
            || self.lex.pronouns.contains_key(w)
            || self.lex.negators.contains(w)
            || self.lex.wh.contains_key(w)
            || matches!(self.lex.order.get(w), Some((Axis::Logic, _)))
            || (w.len() == 1 && w.as_bytes()[0].is_ascii_punctuation()))
    }

    fn antonyms(&self, x: &Token, y: &Token) -> bool {
        for fx in &x.forms {
            for fy in &y.forms {
                if self.lex.antonyms.contains(&(fx.as_str(), fy.as_str())) || prefix_antonym(fx, fy)
                {
                    return true;
                }
            }
        }
        // two comparatives (or two superlatives) of opposed adjectives: "warmer" /
        // "colder" (the forms keep comparatives whole: "bigger" is not "big")
        for suffix in ["er", "est"] {
            if !(x.norm.ends_with(suffix) && y.norm.ends_with(suffix)) {
                continue;
            }
            let bx = text::degree_bases(&x.norm, suffix);
            let by = text::degree_bases(&y.norm, suffix);
            if bx.iter().any(|u| {
                by.iter()
                    .any(|v| self.lex.antonyms.contains(&(u.as_str(), v.as_str())))
            }) {
                return true;
            }
        }
        false
    }

    fn same_word(&self, x: &Token, y: &Token) -> bool {
        match (&x.number, &y.number) {
            (Some(u), Some(v)) => return u == v,
            (Some(_), None) | (None, Some(_)) => return false,
            _ => {}
        }
        if x.norm == y.norm {
            return true;
        }
        // a shared base form, or a shared synonym group (open-class words, and order
        // words on the same side of their axis: "start" / "begin"), or (open-class words)
        // a misspelling; then an antonym pair is never the same word
        let synonyms_apply = || {
            if !x.closed && !y.closed {
                return true;
            }
            let order = |t: &Token| self.lex.order.get(t.norm.as_str()).copied();
            match (order(x), order(y)) {
                (Some((ax, sx)), Some((ay, sy))) => ax != ay || sx == sy,
                (Some(_), None) => !y.closed,
                (None, Some(_)) => !x.closed,
                (None, None) => false,
            }
        };
        let positive = x.forms.iter().any(|f| y.forms.contains(f))
            || x.readings.iter().any(|f| y.forms.contains(f))
            || y.readings.iter().any(|f| x.forms.contains(f))
            || (sorted_overlap(&x.syn, &y.syn) && synonyms_apply())
            || (!x.closed && !y.closed && self.typo(x, y));
        positive && !self.antonyms(x, y)
    }

    /// One is a misspelling of the other: close in edit distance, and at least one of
    /// them is not a known word (so "house"/"horse" are never typos of each other).
    fn typo(&self, x: &Token, y: &Token) -> bool {
        if x.known && y.known {
            return false;
        }
        let (a, b) = (x.norm.as_str(), y.norm.as_str());
        // four letters: any one slip ("maet" / "meat", "ricw" / "rice", "lver" /
        // "liver"), typos that a correction leaves as written when one edit reaches
        // several real words
        let (la, lb) = (a.chars().count(), b.chars().count());
        if la.min(lb) < 4
            || la.abs_diff(lb) > 2
            || !a.chars().all(char::is_alphabetic)
            || !b.chars().all(char::is_alphabetic)
        {
            return false;
        }
        let max = if la.min(lb) >= 8 { 2 } else { 1 };
        strsim::osa_distance(a, b) <= max
    }

    fn align<'a>(&self, a: &'a [Token], b: &'a [Token]) -> Pair<'a> {
        let (n, m) = (a.len(), b.len());
        let mut eq = vec![false; n * m];
        for i in 0..n {
            for j in 0..m {
                eq[i * m + j] = self.same_word(&a[i], &b[j]);
            }
        }
        // LCS table (n+1) x (m+1), filled from the end
        let w = m + 1;
        let mut dp = vec![0u16; (n + 1) * w];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                dp[i * w + j] = if eq[i * m + j] {
                    dp[(i + 1) * w + j + 1] + 1
                } else {
                    dp[(i + 1) * w + j].max(dp[i * w + j + 1])
                };
            }
        }
        let mut aligned = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < n && j < m {
            if eq[i * m + j] && dp[i * w + j] == dp[(i + 1) * w + j + 1] + 1 {
                aligned.push((i, j));
                i += 1;
                j += 1;
            } else if dp[(i + 1) * w + j] >= dp[i * w + j + 1] {
                i += 1;
            } else {
                j += 1;
            }
        }
        let mut a_aligned = vec![false; n];
        let mut b_aligned = vec![false; m];
        for &(i, j) in &aligned {
            a_aligned[i] = true;
            b_aligned[j] = true;
        }
        // bag-of-words overlap of content words (moved words count as shared)
        let content = |ts: &[Token]| ts.iter().filter(|t| self.is_content(t)).count();
        let mut used = vec![false; m];
        let mut shared = 0;
        for i in (0..n).filter(|&i| self.is_content(&a[i])) {
            if let Some(j) = (0..m).find(|&j| !used[j] && eq[i * m + j]) {
                used[j] = true;
                shared += 1;
            }
        }
        let (ca, cb) = (content(a), content(b));
        let overlap = if ca.max(cb) == 0 {
            1.0
        } else {
            shared as f32 / ca.max(cb) as f32
        };
        Pair {
            a,
            b,
            aligned,
            a_aligned,
            b_aligned,
            a_explained: vec![false; n],
            b_explained: vec![false; m],
            overlap,
            eq,
        }
    }

    /// Word-level checks that need the two wordings to be close enough for the diff to
    /// locate the difference (Balanced); Strict always applies them.
    fn close(&self, p: &Pair) -> bool {
        self.strictness == Strictness::Strict || p.overlap >= CLOSE_OVERLAP
    }

    // ---- checks; each returns Some(verdict) to stop ----

    fn check_numbers(&self, p: &mut Pair, _sim: f32) -> Option<Verdict> {
        let runs = |ts: &[Token]| {
            let mut v: Vec<(String, bool)> = Vec::new();
            let mut last: Option<&str> = None;
            for t in ts {
                match &t.number {
                    Some(n) if last != Some(n.as_str()) => {
                        let weak = n == "1" && !t.norm.starts_with(|c: char| c.is_ascii_digit());
                        v.push((n.clone(), weak));
                        last = Some(n);
                    }
                    Some(_) => {}
                    None => last = None,
                }
            }
            v
        };
        let (ra, rb) = (runs(p.a), runs(p.b));
        let only = |x: &[(String, bool)], y: &[(String, bool)]| -> Option<String> {
            x.iter()
                .find(|(n, weak)| !weak && !y.iter().any(|(m, _)| m == n))
                .map(|(n, _)| n.clone())
        };
        if let Some(n) = only(&ra, &rb) {
            return Some(Verdict::refuse(
                RefusalReason::Number,
                format!("'{n}' only in request"),
            ));
        }
        if let Some(n) = only(&rb, &ra) {
            return Some(Verdict::refuse(
                RefusalReason::Number,
                format!("'{n}' only in candidate"),
            ));
        }
        // units, currencies, dates among the unaligned words
        let units = |ts: &[Token], al: &[bool]| -> Vec<&'static str> {
            ts.iter()
                .zip(al)
                .filter(|(_, &x)| !x)
                .filter_map(|(t, _)| self.lex.units.get(t.norm.as_str()).copied())
                .collect()
        };
        let (ua, ub) = (units(p.a, &p.a_aligned), units(p.b, &p.b_aligned));
        if let Some(u) = ua.iter().find(|u| !ub.contains(u)) {
            if !ub.is_empty() || !ra.is_empty() {
                return Some(Verdict::refuse(
                    RefusalReason::Number,
                    format!("unit/date '{u}' only in request"),
                ));
            }
        }
        if let Some(u) = ub.iter().find(|u| !ua.contains(u)) {
            if !ua.is_empty() || !rb.is_empty() {
                return Some(Verdict::refuse(
                    RefusalReason::Number,
                    format!("unit/date '{u}' only in candidate"),
                ));
            }
        }
        None
    }

    fn check_polarity(&self, p: &mut Pair, _sim: f32) -> Option<Verdict> {
        let negs = |ts: &[Token]| {
            ts.iter()
                .filter(|t| self.lex.negators.contains(t.norm.as_str()))
                .count()
        };
        let (na, nb) = (negs(p.a), negs(p.b));
        // antonym swaps among unaligned words (not temporal/spatial order: those never cancel)
        let mut flips = Vec::new();
        let mut used_b = vec![false; p.b.len()];
        for (i, x) in p.a.iter().enumerate() {
            // negators are counted above ("ever"/"never" is one reversal, not two);
            // order words never cancel a reversal and are reported by `check_order`
            let skip = |t: &Token| {
                self.lex.negators.contains(t.norm.as_str())
                    || self.is_order(t, &[Axis::Temporal, Axis::Spatial, Axis::Logic])
            };
            if p.a_aligned[i] || skip(x) {
                continue;
            }
            for (j, y) in p.b.iter().enumerate() {
                if p.b_aligned[j] || used_b[j] || skip(y) {
                    continue;
                }
                if self.antonyms(x, y) {
                    used_b[j] = true;
                    flips.push((i, j));
                    break;
                }
            }
        }
        let neg_flip = na.abs_diff(nb) % 2 == 1;
        let total = na.abs_diff(nb) + flips.len();
        // a lone negator is evidence when it negates something both texts share
        // ("is it [not] safe"); when the negated word itself differs too ("not correct"
        // vs "wrong", "don't have" vs "out of") the wording changed, not necessarily
        // the meaning, and balanced leaves it to the threshold. A negator that ends its
        // text negates something left unsaid ("a person who is not ___?"), which is
        // evidence too, unless it offers the alternative ("should I go or not?").
        let scoped = || {
            let (ts, other) = if na > nb { (p.a, p.b) } else { (p.b, p.a) };
            ts.iter().enumerate().any(|(i, t)| {
                self.lex.negators.contains(t.norm.as_str())
                    && match (i + 1..ts.len())
                        .find(|&k| !matches!(ts[k].norm.as_str(), "a" | "an" | "the"))
                    {
                        Some(k) => other.iter().any(|o| self.same_word(&ts[k], o)),
                        None => i > 0 && ts[i - 1].norm != "or",
                    }
            })
        };
        let flip_here = flips.iter().any(|&(i, j)| same_block(p, i, j)) || self.close(p);
        let evidence = (flips.len() % 2 == 1 && flip_here)
            || (self.close(p) && (self.strictness == Strictness::Strict || scoped()));
        if total % 2 == 1 && evidence {
            if neg_flip {
                let (side, ts) = if na > nb {
                    (Side::Req, p.a)
                } else {
                    (Side::Cand, p.b)
                };
                let w = ts
                    .iter()
                    .find(|t| self.lex.negators.contains(t.norm.as_str()))
                    .map(|t| t.norm.as_str())
                    .unwrap_or("not");
                return Some(Verdict::refuse(
                    RefusalReason::Negation,
                    format!("'{w}' only in {}", side.name()),
                ));
            }
            let (i, j) = flips[0];
            let (x, y) = (&p.a[i].norm, &p.b[j].norm);
            let reason = if self.is_order(&p.a[i], &[Axis::Comparative])
                || self.is_order(&p.b[j], &[Axis::Comparative])
            {
                RefusalReason::Comparative
            } else {
                RefusalReason::Antonym
            };
            return Some(Verdict::refuse(
                reason,
                format!("'{x}' in request vs '{y}' in candidate"),
            ));
        }
        // an even number of flips cancels out ("not negative" = "positive")
        for (i, j) in flips {
            p.a_explained[i] = true;
            p.b_explained[j] = true;
        }
        if na != nb {
            for (i, t) in p.a.iter().enumerate() {
                if self.lex.negators.contains(t.norm.as_str()) {
                    p.a_explained[i] = true;
                }
            }
            for (j, t) in p.b.iter().enumerate() {
                if self.lex.negators.contains(t.norm.as_str()) {
                    p.b_explained[j] = true;
                }
            }
        }
        None
    }

    fn is_order(&self, t: &Token, axes: &[Axis]) -> bool {
        matches!(self.lex.order.get(t.norm.as_str()), Some((ax, _)) if axes.contains(ax))
    }

    fn check_order(&self, p: &mut Pair, _sim: f32) -> Option<Verdict> {
        let collect = |ts: &[Token], al: &[bool], ex: &[bool]| -> Vec<(Axis, i8, String, usize)> {
            ts.iter()
                .enumerate()
                .filter(|(i, _)| !al[*i] && !ex[*i])
                .filter_map(|(i, t)| {
                    self.lex
                        .order
                        .get(t.norm.as_str())
                        .map(|&(ax, s)| (ax, s, t.norm.clone(), i))
                })
                .collect()
        };
        let oa = collect(p.a, &p.a_aligned, &p.a_explained);
        let ob = collect(p.b, &p.b_aligned, &p.b_explained);
        // balanced: the opposed word must stand in the other's place ("before" replaced
        // by "after"); order words scattered through a reworded text are no evidence
        let anywhere = self.strictness == Strictness::Strict;
        for (ax, s, w, i) in &oa {
            for (bx, t, v, j) in &ob {
                if ax == bx && s != t && (anywhere || same_block(p, *i, *j)) {
                    let reason = match ax {
                        Axis::Temporal => RefusalReason::TemporalOrder,
                        Axis::Spatial => RefusalReason::SpatialOrder,
                        Axis::Comparative => RefusalReason::Comparative,
                        Axis::Logic => RefusalReason::Logic,
                    };
                    return Some(Verdict::refuse(
                        reason,
                        format!("'{w}' in request vs '{v}' in candidate"),
                    ));
                }
            }
        }
        None
    }

    fn check_pronouns(&self, p: &mut Pair, _sim: f32) -> Option<Verdict> {
        if !self.close(p) {
            return None;
        }
        let class = |t: &Token| {
            self.lex
                .pronouns
                .get(t.norm.as_str())
                .copied()
                .or_else(|| self.lex.gendered.get(t.norm.as_str()).copied())
        };
        if let Some(v) = self.person_swap(p) {
            return Some(v);
        }
        let mut dirs: Vec<(&str, &str)> = Vec::new();
        // first and second person words left unaligned on each side: one on each side is
        // no change of perspective ("how do I reset my PIN" / "how do you reset your PIN")
        // (not the "you" of a request frame: "can you tell me ...")
        let frame = |ts: &[Token], i: usize| {
            ts[i].norm == "you"
                && i >= 1
                && matches!(ts[i - 1].norm.as_str(), "can" | "could" | "would" | "will")
                && (0..i - 1).all(|k| self.lex.filler.contains(ts[k].norm.as_str()))
        };
        let speakers = |ts: &[Token], al: &[bool]| {
            (0..ts.len())
                .filter(|&i| {
                    !al[i] && matches!(class(&ts[i]), Some("1sg" | "1pl" | "2")) && !frame(ts, i)
                })
                .count()
        };
        let lone = speakers(p.a, &p.a_aligned) == 1 && speakers(p.b, &p.b_aligned) == 1;
        // a possessive in front of a shared word: whose thing it is
        let owner = |ts: &[Token], al: &[bool], i: usize| {
            matches!(ts[i].norm.as_str(), "my" | "our" | "your" | "ur")
                && i + 1 < ts.len()
                && al[i + 1]
                && self.is_content(&ts[i + 1])
        };
        for (ra, rb) in blocks(p) {
            let ca: Vec<(&str, &str, usize)> = ra
                .clone()
                .filter_map(|i| class(&p.a[i]).map(|c| (c, p.a[i].norm.as_str(), i)))
                .collect();
            let cb: Vec<(&str, &str, usize)> = rb
                .clone()
                .filter_map(|j| class(&p.b[j]).map(|c| (c, p.b[j].norm.as_str(), j)))
                .collect();
            if ra.len() > 2 || rb.len() > 2 {
                continue;
            }
            for (k, &(x, wx, i)) in ca.iter().enumerate() {
                let Some(&(y, wy, j)) = cb.get(k.min(cb.len().saturating_sub(1))) else {
                    break;
                };
                if x == y || x == "3n" || y == "3n" {
                    continue;
                }
                let generic = matches!(
                    (x, y),
                    ("1sg", "2")
                        | ("2", "1sg")
                        | ("1pl", "2")
                        | ("2", "1pl")
                        | ("1sg", "1pl")
                        | ("1pl", "1sg")
                );
                // "how do you say your name" / "... my name": the same speaker asking
                // about someone else's thing, not the generic "you"
                let other_owner =
                    lone && owner(p.a, &p.a_aligned, i) && owner(p.b, &p.b_aligned, j);
                if generic && self.strictness != Strictness::Strict && !other_owner {
                    dirs.push((x, y));
                    continue;
                }
                return Some(Verdict::refuse(
                    RefusalReason::Pronoun,
                    format!("'{wx}' in request vs '{wy}' in candidate"),
                ));
            }
        }
        // "can you help me" vs "can I help you": first/second person swapped both ways
        if dirs.iter().any(|&(x, y)| dirs.contains(&(y, x))) {
            return Some(Verdict::refuse(
                RefusalReason::Pronoun,
                "first and second person swapped",
            ));
        }
        None
    }

    /// "Can I help you?" / "Can you help me?": the same two persons on opposite sides of
    /// a shared content word (who does what to whom).
    fn person_swap(&self, p: &Pair) -> Option<Verdict> {
        let persons = |ts: &[Token]| -> Vec<(usize, &'static str)> {
            ts.iter()
                .enumerate()
                .filter_map(|(i, t)| {
                    self.lex
                        .pronouns
                        .get(t.norm.as_str())
                        .filter(|c| **c != "3n")
                        .map(|c| (i, *c))
                })
                .collect()
        };
        let (pa, pb) = (persons(p.a), persons(p.b));
        let ([(a0, x0), (a1, x1)], [(b0, y0), (b1, y1)]) = (pa.as_slice(), pb.as_slice()) else {
            return None;
        };
        if x0 == x1 || x0 != y1 || x1 != y0 {
            return None;
        }
        let shared_between = (a0 + 1..*a1).any(|i| {
            let t = &p.a[i];
            !matches!(t.norm.as_str(), "a" | "an" | "the")
                && !self.lex.pronouns.contains_key(t.norm.as_str())
                && (b0 + 1..*b1).any(|j| self.same_word(t, &p.b[j]))
        });
        shared_between.then(|| {
            Verdict::refuse(
                RefusalReason::Pronoun,
                format!("'{}' and '{}' swap roles", p.a[*a0].norm, p.a[*a1].norm),
            )
        })
    }

    fn check_entities(&self, p: &mut Pair, _sim: f32) -> Option<Verdict> {
        // a proper noun replaced by another at the same place is a different entity,
        // however differently the rest is worded
        let name = |t: &Token| t.cap && t.number.is_none() && t.norm != "i" && self.is_content(t);
        for (ra, rb) in blocks(p) {
            let x = ra.clone().find(|&i| !p.a_explained[i] && name(&p.a[i]));
            let y = rb.clone().find(|&j| !p.b_explained[j] && name(&p.b[j]));
            if let (Some(i), Some(j)) = (x, y) {
                return Some(Verdict::refuse(
                    RefusalReason::Entity,
                    format!(
                        "'{}' in request vs '{}' in candidate",
                        p.a[i].norm, p.b[j].norm
                    ),
                ));
            }
        }
        if !self.close(p) {
            return None;
        }
        let cap = |ts: &[Token], al: &[bool], ex: &[bool]| -> Option<String> {
            ts.iter()
                .enumerate()
                .find(|(i, t)| !al[*i] && !ex[*i] && t.cap && self.is_content(t) && t.norm != "i")
                .map(|(_, t)| t.norm.clone())
        };
        if let Some(w) = cap(p.a, &p.a_aligned, &p.a_explained) {
            return Some(Verdict::refuse(
                RefusalReason::Entity,
                format!("'{w}' only in request"),
            ));
        }
        if let Some(w) = cap(p.b, &p.b_aligned, &p.b_explained) {
            return Some(Verdict::refuse(
                RefusalReason::Entity,
                format!("'{w}' only in candidate"),
            ));
        }
        None
    }

    fn check_question_word(&self, p: &mut Pair, _sim: f32) -> Option<Verdict> {
        if !self.close(p) {
            return None;
        }
        for (ra, rb) in blocks(p) {
            let wa = ra.clone().find_map(|i| {
                self.lex
                    .wh
                    .get(p.a[i].norm.as_str())
                    .map(|c| (*c, &p.a[i].norm))
            });
            let wb = rb.clone().find_map(|j| {
                self.lex
                    .wh
                    .get(p.b[j].norm.as_str())
                    .map(|c| (*c, &p.b[j].norm))
            });
            if let (Some((x, wx)), Some((y, wy))) = (wa, wb) {
                let lenient = matches!((x, y), ("what", "how") | ("how", "what"));
                // balanced: only when every content word is shared, so the question
                // word is what changed ("how come" vs "tell me why" is the same ask)
                let same_rest = p.overlap >= 0.99;
                if x != y && (self.strictness == Strictness::Strict || (!lenient && same_rest)) {
                    return Some(Verdict::refuse(
                        RefusalReason::QuestionWord,
                        format!("'{wx}' in request vs '{wy}' in candidate"),
                    ));
                }
            }
        }
        None
    }

    fn check_tense(&self, p: &mut Pair, _sim: f32) -> Option<Verdict> {
        if self.strictness != Strictness::Strict {
            return self.yes_no_tense(p);
        }
        let tense = |ts: &[Token]| -> Vec<&str> {
            let mut v: Vec<&str> = ts
                .iter()
                .filter_map(|t| self.lex.tense.get(t.norm.as_str()).copied())
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let (ta, tb) = (tense(p.a), tense(p.b));
        if ta != tb {
            return Some(Verdict::refuse(
                RefusalReason::Tense,
                format!("{ta:?} in request vs {tb:?} in candidate"),
            ));
        }
        None
    }

    /// Balanced: a yes/no question asks about the time its leading auxiliary names, so
    /// "Is Obama a lawyer?" and "Was Obama a lawyer?" have different answers. Evidence
    /// only when that auxiliary is the single difference (every other word aligned);
    /// in wh-questions ("why was my card declined" / "why is ...") the tense is left to
    /// the threshold.
    fn yes_no_tense(&self, p: &Pair) -> Option<Verdict> {
        let (x, y) = (p.a.first()?, p.b.first()?);
        let (tx, ty) = (aux_tense(&x.norm)?, aux_tense(&y.norm)?);
        let rest_aligned = |al: &[bool], ex: &[bool]| (1..al.len()).all(|i| al[i] || ex[i]);
        if tx == ty
            || p.a_aligned[0]
            || p.b_aligned[0]
            || !rest_aligned(&p.a_aligned, &p.a_explained)
            || !rest_aligned(&p.b_aligned, &p.b_explained)
        {
            return None;
        }
        Some(Verdict::refuse(
            RefusalReason::Tense,
            format!(
                "'{}' ({tx}) in request vs '{}' ({ty}) in candidate",
                x.norm, y.norm
            ),
        ))
    }

    /// Role swap: shared content words that sit on different sides of a shared verb or
    /// role preposition ("A hired B" / "B hired A", "from A to B" / "from B to A").
    /// A passive ("B was hired by A") is rewritten to active order first.
    fn check_roles(&self, p: &mut Pair, _sim: f32) -> Option<Verdict> {
        let a = self.role_order(p.a);
        let b = self.role_order(p.b);
        // shared items: content words or role prepositions appearing exactly once on each side
        let mut items: Vec<(usize, usize, bool)> = Vec::new(); // (pos in a, pos in b, is_pivot)
        for (ia, &xa) in a.iter().enumerate() {
            let ta = &p.a[xa];
            let pivot_prep = self.lex.role_preps.contains(ta.norm.as_str());
            let function = matches!(
                ta.norm.as_str(),
                "a" | "an"
                    | "the"
                    | "is"
                    | "are"
                    | "am"
                    | "was"
                    | "were"
                    | "be"
                    | "been"
                    | "do"
                    | "does"
                    | "did"
                    | "by"
                    | "of"
                    | "and"
                    | "or"
            );
            // filler verbs ("liked", "needed", "found") still pivot roles: check every form
            if function
                || !(self.is_content(ta)
                    || pivot_prep
                    || ta
                        .forms
                        .iter()
                        .chain(&ta.readings)
                        .any(|f| self.lex.filler.contains(f.as_str()))
                    || self.lex.order.contains_key(ta.norm.as_str()))
            {
                continue;
            }
            // matches in b come from the alignment matrix; only then count matches in a
            let m = p.b.len();
            let mb: Vec<usize> = b
                .iter()
                .enumerate()
                .filter(|(_, &y)| p.eq[xa * m + y])
                .map(|(k, _)| k)
                .collect();
            if mb.len() != 1 {
                continue;
            }
            let ma = a
                .iter()
                .filter(|&&x| x == xa || self.same_word(&p.a[x], ta))
                .count();
            if ma == 1 {
                items.push((ia, mb[0], pivot_prep));
            }
        }
        // the swapped words must be role bearers (content words, not filler); in balanced
        // mode the wordings must also be close, or a reordered paraphrase would count
        let bearer = |k: usize| {
            let t = &p.a[a[k]];
            self.is_content(t) && !self.lex.filler.contains(t.norm.as_str())
        };
        let close = self.strictness == Strictness::Strict || p.overlap >= ROLE_OVERLAP;
        for (k, &(xa, xb, _)) in items.iter().enumerate() {
            for &(ya, yb, _) in items.iter().skip(k + 1) {
                if (xa < ya) == (xb < yb) || !close || !bearer(xa) || !bearer(ya) {
                    continue;
                }
                // swapped pair: is there a pivot between them on both sides?
                let (lo_a, hi_a) = (xa.min(ya), xa.max(ya));
                let (lo_b, hi_b) = (xb.min(yb), xb.max(yb));
                let between = |&&(pa, pb, _): &&(usize, usize, bool)| {
                    pa > lo_a && pa < hi_a && pb > lo_b && pb < hi_b
                };
                if self.symmetric_relation(p, &a, &b, &items, (hi_a, hi_b), between) {
                    continue;
                }
                let pivot = items.iter().find(between);
                if let Some(&(pa, _, _)) = pivot {
                    let wx = &p.a[a[xa]].norm;
                    let wy = &p.a[a[ya]].norm;
                    let wp = &p.a[a[pa]].norm;
                    return Some(Verdict::refuse(
                        RefusalReason::RoleSwap,
                        format!("'{wx}' and '{wy}' swap sides of '{wp}'"),
                    ));
                }
            }
        }
        // moved words explained as a reordering
        for &(xa, xb, _) in &items {
            p.a_explained[a[xa]] = true;
            p.b_explained[b[xb]] = true;
        }
        None
    }

    /// Whether the shared words between two swapped ones (`between`) state a symmetric
    /// relation ("is A married to B" is "is B married to A", as are "friends with",
    /// "related to", "the same as") that the second of them ends (`hi`: its positions
    /// in `a` and `b`; in "married to B's brother" the relation is not A's and B's).
    fn symmetric_relation(
        &self,
        p: &Pair,
        a: &[usize],
        b: &[usize],
        items: &[(usize, usize, bool)],
        hi: (usize, usize),
        between: impl Fn(&&(usize, usize, bool)) -> bool,
    ) -> bool {
        let symmetric = |t: &Token| t.forms.iter().any(|f| SYMMETRIC.contains(&f.as_str()));
        let pivots: Vec<&Token> = items
            .iter()
            .filter(between)
            .map(|&(pa, _, _)| &p.a[a[pa]])
            .collect();
        let relation = pivots.iter().any(|t| symmetric(t))
            && pivots
                .iter()
                .all(|t| symmetric(t) || matches!(t.norm.as_str(), "to" | "with" | "from" | "as"));
        let ends = |ts: &[Token], order: &[usize], hi: usize| {
            order[hi + 1..].iter().all(|&k| !self.is_content(&ts[k]))
        };
        relation && ends(p.a, a, hi.0) && ends(p.b, b, hi.1)
    }

    /// Token indices in "active" order: for a passive with a by-agent
    /// ("[was] X verb-ed by Y"), the agent Y is moved before X.
    fn role_order(&self, ts: &[Token]) -> Vec<usize> {
        let idx: Vec<usize> = (0..ts.len()).collect();
        let Some(by) = ts.iter().position(|t| t.norm == "by") else {
            return idx;
        };
        if by == 0 || by + 1 >= ts.len() {
            return idx;
        }
        let verb = by - 1;
        // a misspelt verb is a participle when one of its readings is ("wnted", "foynd")
        let participle = std::iter::once(&ts[verb].norm)
            .chain(&ts[verb].readings)
            .any(|v| {
                v.ends_with("ed")
                    || v.ends_with("en")
                    || (v != &ts[verb].norm || ts[verb].forms.len() > 1)
                        && self.lex.irregular.contains_key(v.as_str())
            });
        let Some(be) = ts[..verb]
            .iter()
            .rposition(|t| self.lex.be_forms.contains(t.norm.as_str()))
        else {
            return idx;
        };
        if !participle {
            return idx;
        }
        // agent runs to the end of the clause
        let end = ts[by + 1..]
            .iter()
            .position(|t| {
                matches!(
                    t.norm.as_str(),
                    "and" | "or" | "but" | "if" | "when" | "because" | "while"
                ) || t.norm.len() == 1 && !t.norm.chars().all(char::is_alphanumeric)
            })
            .map(|k| by + 1 + k)
            .unwrap_or(ts.len());
        // patient: words between the be-form... and the verb, or before the be-form in a statement
        let mut out: Vec<usize> = (0..=be).collect();
        out.extend(by + 1..end);
        out.push(verb);
        out.extend(be + 1..verb);
        out.extend(end..ts.len());
        out
    }

    fn check_content(&self, p: &mut Pair, sim: f32) -> Option<Verdict> {
        let left = |ts: &[Token], al: &[bool], ex: &[bool]| -> Vec<usize> {
            (0..ts.len())
                .filter(|&i| !al[i] && !ex[i] && self.is_content(&ts[i]) && ts[i].number.is_none())
                .collect()
        };
        let ca = left(p.a, &p.a_aligned, &p.a_explained);
        let cb = left(p.b, &p.b_aligned, &p.b_explained);
        if ca.is_empty() && cb.is_empty() {
            return None;
        }
        let shared = p
            .aligned
            .iter()
            .filter(|&&(i, _)| self.is_content(&p.a[i]))
            .count();
        let diff = ca.len() + cb.len();
        let words = |ts: &[Token], ix: &[usize]| {
            ix.iter()
                .map(|&i| format!("'{}'", ts[i].norm))
                .collect::<Vec<_>>()
                .join(" ")
        };
        // near-identical texts (one place of difference, at most two content words there,
        // the rest shared): every leftover content word matters
        let sites = blocks(p)
            .iter()
            .filter(|(ra, rb)| {
                ra.clone().any(|i| ca.contains(&i)) || rb.clone().any(|j| cb.contains(&j))
            })
            .count();
        // ... and nothing else differs: no unaligned pronoun, question word, clause word
        // (only filler and punctuation may come and go). An extra clause or sentence is an
        // elaboration of the same question, not a restriction of it.
        let other = |ts: &[Token], al: &[bool], ex: &[bool], own: &[usize]| {
            (0..ts.len()).any(|i| {
                let w = ts[i].norm.as_str();
                !al[i]
                    && !ex[i]
                    && !own.contains(&i)
                    && !self.lex.filler.contains(w)
                    && w.chars().any(char::is_alphanumeric)
            })
        };
        let rest_same = !other(p.a, &p.a_aligned, &p.a_explained, &ca)
            && !other(p.b, &p.b_aligned, &p.b_explained, &cb);
        // one word replaced by another ("delete" / "create my account") needs one
        // shared content word to stand on; two words changed need two
        let needed = if ca.len() == 1 && cb.len() == 1 {
            1
        } else {
            diff.max(2)
        };
        let minimal = diff <= 2 && sites == 1 && shared >= needed && rest_same;
        let strict_broad = self.strictness == Strictness::Strict && sim < STRICT_CONTENT_SIM;
        if !(minimal || strict_broad) {
            return None;
        }
        if ca.is_empty() || cb.is_empty() {
            let (side, ts, ix, al) = if cb.is_empty() {
                (Side::Req, p.a, &ca, &p.a_aligned)
            } else {
                (Side::Cand, p.b, &cb, &p.b_aligned)
            };
            // balanced: only a restricting modifier, i.e. an added word attached in front
            // of a shared word ("a retired pilot", "becoming frozen"); an added verb or
            // adverb elsewhere ("contact", "around") elaborates the same question
            if !strict_broad && self.strictness != Strictness::Strict {
                // a change-of-state copula ("is X" vs "is becoming X") always restricts
                let change = ix.iter().any(|&i| {
                    std::iter::once(&ts[i].norm)
                        .chain(&ts[i].readings)
                        .any(|w| matches!(w.as_str(), "become" | "becomes" | "becoming" | "became"))
                });
                // a pre-nominal modifier sits right before its (shared) head word; a word
                // followed by an article or anything unshared is a verb or an adverb
                let last = *ix.iter().max().unwrap_or(&0);
                let head = last + 1;
                let attached = head < ts.len() && al[head] && self.is_content(&ts[head]);
                if !change && !attached {
                    return None;
                }
                // inside a possessive phrase ("my new card", "your chase bank account")
                // the modifier describes the one thing the asker already has rather than
                // picking out a kind of thing: not a restriction
                let first = *ix.iter().min().unwrap_or(&0);
                let possessive = first > 0
                    && matches!(
                        ts[first - 1].norm.as_str(),
                        "my" | "your" | "our" | "his" | "her" | "their" | "its"
                    );
                if possessive && !change {
                    return None;
                }
            }
            return Some(Verdict::refuse(
                RefusalReason::AddedModifier,
                format!("{} only in {}", words(ts, ix), side.name()),
            ));
        }
        let reason = if minimal {
            RefusalReason::Entity
        } else {
            RefusalReason::ContentMismatch
        };
        Some(Verdict::refuse(
            reason,
            format!(
                "{} in request vs {} in candidate",
                words(p.a, &ca),
                words(p.b, &cb)
            ),
        ))
    }
}

/// The tense an auxiliary that can open a yes/no question marks.
fn aux_tense(w: &str) -> Option<&'static str> {
    Some(match w {
        "is" | "are" | "am" | "do" | "does" | "has" | "have" => "present",
        "was" | "were" | "did" | "had" => "past",
        "will" | "shall" => "future",
        _ => return None,
    })
}

/// Two sorted id lists share an element.
fn sorted_overlap(a: &[u32], b: &[u32]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Equal => return true,
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
        }
    }
    false
}

/// Unaligned token `i` of the request and `j` of the candidate sit in the same gap
/// between aligned words, i.e. one replaced the other.
fn same_block(p: &Pair, i: usize, j: usize) -> bool {
    let before_a = p.aligned.iter().filter(|&&(x, _)| x < i).count();
    let before_b = p.aligned.iter().filter(|&&(_, y)| y < j).count();
    before_a == before_b
}

/// Unaligned regions between consecutive aligned words: (range in a, range in b).
fn blocks(p: &Pair) -> Vec<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let (mut pa, mut pb) = (0, 0);
    for &(i, j) in p
        .aligned
        .iter()
        .chain(std::iter::once(&(p.a.len(), p.b.len())))
    {
        if i > pa || j > pb {
            out.push((pa..i, pb..j));
        }
        pa = i + 1;
        pb = j + 1;
    }
    out
}

/// Morphological antonyms: un-/in-/im-/ir-/il-/dis-/non- prefixes, -ful/-less.
fn prefix_antonym(x: &str, y: &str) -> bool {
    const PREFIXES: [&str; 8] = ["un", "in", "im", "ir", "il", "dis", "non", "non-"];
    for (s, t) in [(x, y), (y, x)] {
        for pre in PREFIXES {
            if let Some(rest) = s.strip_prefix(pre) {
                if rest.len() >= 4 && rest == t {
                    return true;
                }
            }
        }
        if let (Some(a), Some(b)) = (s.strip_suffix("ful"), t.strip_suffix("less")) {
            if a.len() >= 3 && a == b {
                return true;
            }
        }
    }
    false
}

/// Lowercased words past the compared prefix of a long text.
fn tail_words(s: &str) -> Vec<String> {
    s.split_whitespace()
        .skip(MAX_WORDS / 2)
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

#[cfg(test)]
mod tests;
