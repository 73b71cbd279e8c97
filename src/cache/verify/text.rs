//! Normalisation and tokenisation: casing, accents, curly quotes, contractions, number
//! parsing and a light inflectional lemmatiser (irregular forms from WordNet).

use super::lexicon::Lexicon;

/// One word of a question.
#[derive(Debug, Clone)]
pub struct Token {
    /// lowercase, accent-folded surface form (contractions expanded)
    pub norm: String,
    /// written with a capital letter somewhere other than the start of the text
    pub cap: bool,
    /// possible base forms (the surface form first), used for matching
    pub forms: Vec<String>,
    /// numeric value when the token is (part of) a number
    pub number: Option<String>,
    /// WordNet synonym group ids of any base form, sorted
    pub syn: Vec<u32>,
    /// some base form is a known English word (typo tolerance applies to unknown ones)
    pub known: bool,
    /// closed-class word (pronoun, negator, order word, question word, unit): matches
    /// only itself
    pub closed: bool,
    /// a misspelling that one slip reads as several known words ("wnted": wanted,
    /// wonted): their base forms, any of which may be the word meant
    pub readings: Vec<String>,
}

fn fold_char(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' => 'a',
        'ç' | 'ć' | 'č' => 'c',
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ě' => 'e',
        'ì' | 'í' | 'î' | 'ï' | 'ī' => 'i',
        'ñ' | 'ń' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' => 'o',
        'ù' | 'ú' | 'û' | 'ü' | 'ū' => 'u',
        'ý' | 'ÿ' => 'y',
        'š' | 'ś' => 's',
        'ž' | 'ź' | 'ż' => 'z',
        '’' | '‘' | '`' | 'ʼ' | '´' => '\'',
        _ => c,
    }
}

/// Split into raw words: (text, capitalised-not-initial, any capital letter).
/// Letters/digits with inner apostrophes and inner `.`/`,` between digits form a word;
/// currency, `%` and other symbols (emoji) are single-character words; everything else
/// separates.
fn raw_words(text: &str, max_words: usize) -> Vec<(String, bool, bool)> {
    let mut out: Vec<(String, bool, bool)> = Vec::new();
    // the word being read: text, starts with a capital, has a capital anywhere
    let mut cur = (String::new(), false, false);
    let chars: Vec<char> = text.chars().take(max_words.saturating_mul(24)).collect();
    let mut first_word = true;
    let flush =
        |cur: &mut (String, bool, bool), out: &mut Vec<(String, bool, bool)>, first: &mut bool| {
            let w = cur.0.trim_matches('\'').to_string();
            if !w.is_empty() {
                out.push((w, cur.1 && !*first, cur.2));
                *first = false;
            }
            *cur = (String::new(), false, false);
        };
    for (i, &c0) in chars.iter().enumerate() {
        if out.len() >= max_words {
            break;
        }
        let c = fold_char(c0);
        if c.is_alphanumeric() {
            if cur.0.is_empty() && c.is_uppercase() {
                cur.1 = true;
            }
            cur.2 |= c.is_uppercase();
            cur.0.extend(c.to_lowercase().map(fold_char));
        } else if c == '\''
            && !cur.0.is_empty()
            && chars.get(i + 1).is_some_and(|n| n.is_alphabetic())
        {
            cur.0.push('\'');
        } else if (c == '.' || c == ',')
            && cur.0.chars().last().is_some_and(|p| p.is_ascii_digit())
            && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit())
        {
            if c == '.' {
                cur.0.push('.');
            }
        } else {
            flush(&mut cur, &mut out, &mut first_word);
            // a capital after a sentence end is not evidence of a proper noun
            if matches!(c, '.' | '!' | '?' | ':' | ';' | '(' | '"') {
                first_word = true;
            }
            let sym = matches!(
                c,
                '$' | '€' | '£' | '¥' | '%' | '+' | '#' | '@' | '&' | '=' | '<' | '>'
            ) || (!c.is_whitespace()
                && !c.is_ascii_punctuation()
                && !c.is_control()
                && !matches!(c as u32, 0x2000..=0x206F | 0xFE00..=0xFE0F | 0x3000..=0x303F | 0xFF00..=0xFF0F | 0xA0 | 0xA1..=0xBF));
            if sym {
                let s = match c {
                    '&' => "and".to_string(),
                    _ => c.to_string(),
                };
                out.push((s, false, false));
                first_word = false;
            }
        }
    }
    flush(&mut cur, &mut out, &mut first_word);
    out.truncate(max_words);
    out
}

/// Expand contractions and chat spellings into plain words.
fn expand(w: &str, out: &mut Vec<String>) {
    let special: Option<&[&str]> = match w {
        "can't" | "cannot" | "cant" => Some(&["can", "not"]),
        "won't" | "wont" => Some(&["will", "not"]),
        "shan't" => Some(&["shall", "not"]),
        "ain't" => Some(&["is", "not"]),
        "dont" => Some(&["do", "not"]),
        "doesnt" => Some(&["does", "not"]),
        "didnt" => Some(&["did", "not"]),
        "isnt" => Some(&["is", "not"]),
        "arent" => Some(&["are", "not"]),
        "wasnt" => Some(&["was", "not"]),
        "werent" => Some(&["were", "not"]),
        "havent" => Some(&["have", "not"]),
        "hasnt" => Some(&["has", "not"]),
        "shouldnt" => Some(&["should", "not"]),
        "wouldnt" => Some(&["would", "not"]),
        "couldnt" => Some(&["could", "not"]),
        "gonna" => Some(&["going", "to"]),
        "wanna" => Some(&["want", "to"]),
        "gotta" => Some(&["have", "to"]),
        "im" => Some(&["i", "am"]),
        "ive" => Some(&["i", "have"]),
        "u" => Some(&["you"]),
        "ur" => Some(&["your"]),
        "r" => Some(&["are"]),
        "pls" | "plz" => Some(&["please"]),
        "thx" => Some(&["thanks"]),
        _ => None,
    };
    if let Some(ws) = special {
        out.extend(ws.iter().map(|s| s.to_string()));
        return;
    }
    if let Some(stem) = w.strip_suffix("n't") {
        let base = match stem {
            "ca" => "can",
            "wo" => "will",
            "sha" => "shall",
            other => other,
        };
        if !base.is_empty() {
            out.push(base.to_string());
        }
        out.push("not".to_string());
        return;
    }
    if let Some((stem, suf)) = w.rsplit_once('\'') {
        let add = match suf {
            "re" => Some("are"),
            "m" => Some("am"),
            "ll" => Some("will"),
            "ve" => Some("have"),
            "d" => Some("would"),
            "s" => match stem {
                "it" | "he" | "she" | "that" | "there" | "here" | "what" | "who" | "where"
                | "when" | "how" | "why" | "which" => Some("is"),
                "let" => Some("us"),
                _ => None, // possessive
            },
            _ => None,
        };
        if !stem.is_empty() {
            out.push(stem.to_string());
        }
        if let Some(a) = add {
            out.push(a.to_string());
        }
        return;
    }
    out.push(w.to_string());
}

fn is_vowel(c: u8) -> bool {
    matches!(c, b'a' | b'e' | b'i' | b'o' | b'u' | b'y')
}

/// Adds `s` to the candidate forms (at least 3 letters, once).
fn push_form(s: String, f: &mut Vec<String>) {
    if s.len() >= 3 && !f.contains(&s) {
        f.push(s);
    }
}

/// The bases a suffix-stripped stem may come from: "hop" (hoped), "hope" (hoped),
/// "hop" from "hopp" (hopping, hotter).
fn stem_variants(stem: &str, f: &mut Vec<String>) {
    push_form(stem.to_string(), f);
    push_form(format!("{stem}e"), f);
    let sb = stem.as_bytes();
    let m = sb.len();
    if m >= 3 && sb[m - 1] == sb[m - 2] && !is_vowel(sb[m - 1]) {
        push_form(stem[..m - 1].to_string(), f);
    }
}

/// Candidate base forms of a word: the word, its irregular base, and the results of
/// stripping inflectional suffixes (-s, -es, -ies, -ed, -ied, -ing, -er/-est are NOT
/// stripped: comparatives carry meaning; see [`degree_bases`]).
pub fn forms(w: &str, lex: &Lexicon) -> Vec<String> {
    let mut f: Vec<String> = vec![w.to_string()];
    if let Some(b) = lex.irregular.get(w) {
        push_form(b.to_string(), &mut f);
    }
    let b = w.as_bytes();
    let n = b.len();
    if n < 4 || !w.is_ascii() {
        return f;
    }
    if let Some(s) = w.strip_suffix("ies") {
        push_form(format!("{s}y"), &mut f);
    } else if let Some(s) = w.strip_suffix("es") {
        push_form(s.to_string(), &mut f);
        push_form(format!("{s}e"), &mut f);
    } else if w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
        push_form(w[..n - 1].to_string(), &mut f);
    }
    if let Some(s) = w.strip_suffix("ied") {
        push_form(format!("{s}y"), &mut f);
    } else if let Some(s) = w.strip_suffix("ed") {
        stem_variants(s, &mut f);
    } else if w.ends_with('d') && w.ends_with("ed") {
        push_form(w[..n - 1].to_string(), &mut f);
    }
    if let Some(s) = w.strip_suffix("ing") {
        if s.bytes().any(is_vowel) {
            stem_variants(s, &mut f);
        }
    }
    if let Some(s) = w.strip_suffix("ly") {
        if n >= 6 {
            push_form(s.to_string(), &mut f);
        }
    }
    f
}

/// Candidate adjective bases of a comparative (`suffix` "er") or superlative ("est"):
/// "warmer" -> warm, "hotter" -> hot, "larger" -> large, "easier" -> easy. Empty when
/// `w` does not end in `suffix`.
pub fn degree_bases(w: &str, suffix: &str) -> Vec<String> {
    let mut f = Vec::new();
    let Some(stem) = w.strip_suffix(suffix).filter(|s| s.is_ascii()) else {
        return f;
    };
    match stem.strip_suffix('i') {
        Some(s) => push_form(format!("{s}y"), &mut f),
        None => stem_variants(stem, &mut f),
    }
    f
}

fn parse_digits(w: &str) -> Option<String> {
    let digits_end = w
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(w.len());
    if digits_end == 0 {
        return None;
    }
    let (num, rest) = w.split_at(digits_end);
    if !num.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let mut num = num.trim_end_matches('.').to_string();
    if num.contains('.') {
        num = num.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    let num = num.trim_start_matches('0');
    let num = if num.is_empty() || num.starts_with('.') {
        format!("0{num}")
    } else {
        num.to_string()
    };
    match rest {
        "" | "st" | "nd" | "rd" | "th" | "s" => Some(num),
        suf => Some(format!("{num}{suf}")),
    }
}

fn is_closed(w: &str, lex: &Lexicon) -> bool {
    lex.pronouns.contains_key(w)
        || lex.negators.contains(w)
        || lex.order.contains_key(w)
        || lex.wh.contains_key(w)
        || lex.units.contains_key(w)
}

/// The token of a known (corrected) word.
fn word_token(w: String, lex: &Lexicon) -> Token {
    let forms = forms(&w, lex);
    Token {
        syn: synonym_groups(&forms, lex),
        closed: is_closed(&w, lex),
        known: true,
        cap: false,
        forms,
        number: None,
        norm: w,
        readings: Vec::new(),
    }
}

/// WordNet synonym group ids of any of `forms`, sorted.
fn synonym_groups(forms: &[String], lex: &Lexicon) -> Vec<u32> {
    let mut syn: Vec<u32> = forms
        .iter()
        .filter_map(|f| lex.synonyms.get(f.as_str()))
        .flatten()
        .copied()
        .collect();
    syn.sort_unstable();
    syn.dedup();
    syn
}

/// Longest word a correction is tried for (longer unknown words are names, codes, URLs).
const MAX_CORRECTED_LEN: usize = 14;

/// How plausible `w` is as a word: `(2, senses)` for a WordNet lemma or listed word,
/// `(1, senses)` for a regular inflection of one ("becoming", "driest"), `(0, 0)` for
/// none.
/// `senses` (WordNet synonym groups of its base) stands in for frequency: common words
/// have many senses (meaning-frequency law), rare ones few ("besom").
fn word_rank(w: &str, lex: &Lexicon) -> (u8, usize) {
    let senses = |f: &str| lex.synonyms.get(f).map_or(1, Vec::len);
    if lex.is_word(w) {
        return (2, senses(w));
    }
    // most strings tried by `correct` carry no inflection: skip building their forms
    if !["s", "ed", "ing", "ly", "er", "est"]
        .iter()
        .any(|suffix| w.ends_with(suffix))
    {
        return (0, 0);
    }
    let bases = forms(w, lex)
        .into_iter()
        .chain(degree_bases(w, "er"))
        .chain(degree_bases(w, "est"));
    // a suffix on an irregular inflection is no word: "feded" is not "fed" + -ed
    bases
        .filter(|b| lex.is_word(b) && !lex.irregular.contains_key(b.as_str()))
        .map(|b| (1, senses(&b)))
        .max()
        .unwrap_or((0, 0))
}

/// Most readings kept for an ambiguous misspelling.
const MAX_READINGS: usize = 6;

/// Shortest misspelling corrected for a missing, extra or wrong letter: shorter words
/// are one such edit from too many others.
const MIN_EDIT_CORRECTED_LEN: usize = 5;

/// The known word a misspelt lowercase word most plausibly stands for, one typing slip
/// away: two adjacent letters swapped ("becoimng", "likde" -> "liked", not "like"), or,
/// when no swap gives a word, from five letters on, one letter missing, doubled or
/// wrong ("becming", "becomming", "becominh"). A listed word beats
/// an inflection ("feedd" -> "feed", not "feded" from "fed"); among inflections, one
/// whose base has at least twice the senses of every other ("becoing" -> "becoming",
/// not "becking"). `None` when nothing is that clear ("maet": "meat" or "mate"): an
/// ambiguous misspelling is left as written, and the alignment still pairs it with the
/// word it stands for when the other text has that word.
#[cfg(test)]
pub fn correct(w: &str, lex: &Lexicon) -> Option<String> {
    choose(slips(w, lex))
}

/// The known words one typing slip from `w` (as [`correct`] tries them), each with its
/// rank: `(tier, senses, word)`. Empty for a known word or one outside the lengths tried.
pub(super) fn slips(w: &str, lex: &Lexicon) -> Vec<(u8, usize, String)> {
    let n = w.len();
    if !(4..=MAX_CORRECTED_LEN).contains(&n)
        || !w.bytes().all(|c| c.is_ascii_lowercase())
        || word_rank(w, lex).0 > 0
    {
        return Vec::new();
    }
    // candidates by rank: (tier, senses, word)
    let mut found: Vec<(u8, usize, String)> = Vec::new();
    let consider = |cand: &[u8], found: &mut Vec<(u8, usize, String)>| {
        let Ok(c) = std::str::from_utf8(cand) else {
            return;
        };
        if found.iter().any(|(_, _, f)| f == c) {
            return;
        }
        let (tier, senses) = word_rank(c, lex);
        if tier > 0 {
            found.push((tier, senses, c.to_owned()));
        }
    };
    let b = w.as_bytes();
    let mut cand = b.to_vec();
    for i in 0..n - 1 {
        if b[i] != b[i + 1] {
            cand.swap(i, i + 1);
            consider(&cand, &mut found);
            cand.swap(i, i + 1);
        }
    }
    // a swap found is the answer (or an ambiguity); other slips only when none is
    if found.is_empty() && n >= MIN_EDIT_CORRECTED_LEN {
        for i in 0..=n {
            for c in b'a'..=b'z' {
                // a missing letter
                cand.clear();
                cand.extend_from_slice(&b[..i]);
                cand.push(c);
                cand.extend_from_slice(&b[i..]);
                consider(&cand, &mut found);
                // a wrong letter
                if i < n && c != b[i] {
                    cand.clear();
                    cand.extend_from_slice(b);
                    cand[i] = c;
                    consider(&cand, &mut found);
                }
            }
            // an extra letter
            if i < n {
                cand.clear();
                cand.extend_from_slice(&b[..i]);
                cand.extend_from_slice(&b[i + 1..]);
                consider(&cand, &mut found);
            }
        }
    }
    found
}

/// The one plausible word among `found` (see [`correct`]), if there is one.
fn choose(found: Vec<(u8, usize, String)>) -> Option<String> {
    let tier = found.iter().map(|f| f.0).max()?;
    let mut best: Vec<&(u8, usize, String)> = found.iter().filter(|f| f.0 == tier).collect();
    best.sort_by_key(|f| std::cmp::Reverse(f.1));
    match best.as_slice() {
        [one] => Some(one.2.clone()),
        // inflections: the clearly commonest base; listed words: only a unique one
        [first, second, ..] if tier == 1 && first.1 >= 2 * second.1.max(1) => Some(first.2.clone()),
        _ => None,
    }
}

/// Function words people type run into the word next to them ("tocancel",
/// "reimbursementof", "mypassword").
const GLUED: &[&str] = &[
    "a", "an", "the", "to", "of", "in", "on", "at", "for", "my", "your", "i", "is", "it", "and",
    "or", "me", "do", "can", "how", "what", "this", "that", "with", "from", "not", "no",
];

/// Longest run-together word split.
const MAX_GLUED_LEN: usize = 24;

/// The two words an unknown lowercase word runs together, when it splits one way only
/// into a function word ([`GLUED`]) and a known word of three letters or more
/// ("tocancel" -> "to", "cancel"). Not for a word one slip from a listed word (`slips`:
/// the word's [`slips`], which the caller has at hand): "atack" is "attack" (or
/// "stack"), not "a tack"; a slip that only reaches an inflection of a rare word loses to
/// the split ("toreset" is "to reset", not "torest" from "tor", "theorder" "the order",
/// not "theorier").
pub fn unglue(w: &str, lex: &Lexicon, slips: &[(u8, usize, String)]) -> Option<(String, String)> {
    let n = w.len();
    if !(5..=MAX_GLUED_LEN).contains(&n)
        || !w.bytes().all(|c| c.is_ascii_lowercase())
        || word_rank(w, lex).0 > 0
    {
        return None;
    }
    let word = |p: &str| p.len() >= 3 && word_rank(p, lex).0 > 0;
    let mut splits = (1..n)
        .map(|i| w.split_at(i))
        .filter(|&(x, y)| (GLUED.contains(&x) && word(y)) || (GLUED.contains(&y) && word(x)));
    match (splits.next(), splits.next()) {
        (Some((x, y)), None) if slips.iter().all(|f| f.0 < 2) => Some((x.to_owned(), y.to_owned())),
        _ => None,
    }
}

/// `text` with its misspelt words written as [`correct`] reads them ("Is Kevin Perez
/// becoimng an accountant?" -> "... becoming ..."), for the embedding: a typo moves the
/// embedding of a short question far enough to drop a paraphrase below the similarity
/// threshold. A word is rewritten when it is lowercase ASCII letters (or capitalised
/// at the start of a sentence) standing alone (between spaces or sentence punctuation,
/// so nothing inside "e-mail", "don't", "example.com" or an identifier), unknown to the
/// lexicon and one clear slip from a known word, or two words run together ([`unglue`]:
/// "tocancel" -> "to cancel"). Capitalised words elsewhere are names
/// and left as written. `None` when nothing changed; words after the first `max_words`
/// are left as written.
pub fn respell(text: &str, lex: &Lexicon, max_words: usize) -> Option<String> {
    // characters that may stand next to a word rewritten
    let apart = |c: Option<char>| {
        c.is_none_or(|c| {
            c.is_whitespace()
                || matches!(c, ',' | ';' | ':' | '!' | '?' | '(' | ')' | '"' | '“' | '”')
        })
    };
    let mut out: Option<String> = None;
    // end of the text already copied to `out`
    let mut copied = 0;
    let mut words = 0;
    // the next word opens a sentence: its capital is no sign of a name
    let mut opening = true;
    let mut rest = text.char_indices().peekable();
    while let Some((start, c)) = rest.next() {
        if !c.is_alphanumeric() {
            opening |= matches!(c, '.' | '!' | '?' | '\n');
            continue;
        }
        let mut end = start + c.len_utf8();
        while let Some(&(i, c)) = rest.peek() {
            if !c.is_alphanumeric() {
                break;
            }
            end = i + c.len_utf8();
            rest.next();
        }
        words += 1;
        if words > max_words {
            break;
        }
        let written = &text[start..end];
        // a capital opening a sentence ("Cancle my order") is read as lowercase; one
        // elsewhere marks a name ("Perez" is no misspelt "jerez"), left as written
        let capital =
            std::mem::take(&mut opening) && written.starts_with(|c: char| c.is_ascii_uppercase());
        let w = if capital {
            written.to_ascii_lowercase()
        } else {
            written.to_owned()
        };
        let before = text[..start].chars().next_back();
        let mut after = text[end..].chars();
        let next = after.next();
        // a full stop ends a sentence only before a space or the end ("example.com")
        let stands_alone =
            apart(before) && (apart(next) || (next == Some('.') && apart(after.next())));
        if !stands_alone
            || !(4..=MAX_GLUED_LEN).contains(&w.len())
            || !w.bytes().all(|b| b.is_ascii_lowercase())
            || is_closed(&w, lex)
            || forms(&w, lex).iter().any(|f| lex.is_word(f))
        {
            continue;
        }
        let found = slips(&w, lex);
        let fixed = unglue(&w, lex, &found)
            .map(|(x, y)| format!("{x} {y}"))
            .or_else(|| choose(found));
        if let Some(fixed) = fixed {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len() + 8));
            o.push_str(&text[copied..start]);
            if capital {
                o.push(fixed.as_bytes()[0].to_ascii_uppercase() as char);
                o.push_str(&fixed[1..]);
            } else {
                o.push_str(&fixed);
            }
            copied = end;
        }
    }
    let mut o = out?;
    o.push_str(&text[copied..]);
    Some(o)
}

/// Tokenise and normalise a question. At most `max_words` tokens are kept.
pub fn tokenize(text: &str, lex: &Lexicon, max_words: usize) -> Vec<Token> {
    let raw = raw_words(text, max_words);
    let mut toks: Vec<Token> = Vec::with_capacity(raw.len() + 4);
    let mut buf = Vec::with_capacity(3);
    for (w, cap, upper) in raw {
        buf.clear();
        expand(&w, &mut buf);
        for (i, s) in buf.drain(..).enumerate() {
            let number = parse_digits(&s);
            let forms = forms(&s, lex);
            let known = forms.iter().any(|f| lex.is_word(f));
            let closed = is_closed(&s, lex);
            // A misspelt word ("becoimng", "utna") would otherwise be an unknown word
            // the checks cannot read, and a second place of difference that hides the
            // real one: read it as the one known word it is a single edit from. Not
            // for words written with a capital ("Keivn", "yRan"): names, whose
            // misspellings would read as common words ("yarn").
            // A slip that reads as several words keeps them all as possible readings:
            // the word meant is one of them ("wnted": "wanted" or "wonted").
            let mut readings = Vec::new();
            if !known && !closed && !upper && number.is_none() {
                let found = slips(&s, lex);
                let top = found.iter().map(|f| f.0).max().unwrap_or(0);
                let words: Vec<String> = found
                    .iter()
                    .filter(|f| f.0 == top)
                    .map(|f| f.2.clone())
                    .collect();
                if let Some((x, y)) = unglue(&s, lex, &found) {
                    toks.push(word_token(x, lex));
                    toks.push(word_token(y, lex));
                    continue;
                }
                if let Some(c) = choose(found) {
                    toks.push(word_token(c, lex));
                    continue;
                }
                // a slip near many words ("wated") says nothing about which is meant
                let words = if words.len() <= MAX_READINGS {
                    words
                } else {
                    Vec::new()
                };
                for w in words {
                    for f in self::forms(&w, lex) {
                        if !readings.contains(&f) {
                            readings.push(f);
                        }
                    }
                }
            }
            toks.push(Token {
                readings,
                cap: cap && i == 0,
                syn: synonym_groups(&forms, lex),
                forms,
                number,
                norm: s,
                known,
                closed,
            });
        }
    }
    // "how come" asks "why"
    let mut k = 0;
    while k + 1 < toks.len() {
        if toks[k].norm == "how" && toks[k + 1].norm == "come" {
            toks[k].norm = "why".to_string();
            toks[k].forms = vec!["why".to_string()];
            toks.remove(k + 1);
        }
        k += 1;
    }
    // number words: "twenty five" -> 25, "two hundred" -> 200
    let mut i = 0;
    while i < toks.len() {
        let start = i;
        let mut total: u64 = 0;
        let mut cur: u64 = 0;
        let mut any = false;
        while i < toks.len() {
            let w = toks[i].norm.as_str();
            let next = toks.get(i + 1).map(|t| t.norm.as_str());
            // "a pair of", "a couple of", "half an hour" count; "pair with my phone",
            // "a happy couple", "broke it in half" do not
            let counts = match w {
                "pair" | "couple" => next == Some("of"),
                "half" => matches!(next, Some("of" | "a" | "an")),
                _ => true,
            };
            let number = lex.numbers.get(w).copied().filter(|_| counts);
            if let Some(v) = number {
                // "twenty five", "two hundred one"; "one three" is two numbers
                let joins = cur == 0
                    || ((20..100).contains(&cur) && cur % 10 == 0 && v < 10)
                    || (cur >= 100 && cur % 100 == 0 && v < 100);
                if any && !joins {
                    break;
                }
                cur = cur.saturating_add(v);
                any = true;
            } else if let (true, Some(&s)) = (any || start != i, lex.scales.get(w)) {
                if !any {
                    break;
                }
                cur = cur.max(1).saturating_mul(s);
                if s >= 1000 {
                    total = total.saturating_add(cur);
                    cur = 0;
                }
            } else if w == "and"
                && any
                && (cur >= 100 || total > 0)
                && next.is_some_and(|n| lex.numbers.contains_key(n))
            {
                // "one hundred and five" (but "between one and three" is two numbers)
            } else {
                break;
            }
            i += 1;
        }
        if any {
            let v = total.saturating_add(cur).to_string();
            for t in &mut toks[start..i] {
                t.number = Some(v.clone());
            }
        }
        if i == start {
            i += 1;
        }
    }
    toks
}
