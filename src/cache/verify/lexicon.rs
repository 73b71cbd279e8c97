//! Hand-built lexicons, plus WordNet-derived tables (see `data/`), compiled once per
//! [`super::Verifier`].
//!
//! Every list here is a closed class of English: the words whose presence, absence or
//! replacement changes what a question asks (negators, order words, comparatives,
//! pronouns, numbers, units, dates, quantifiers) or does not (articles, auxiliaries,
//! politeness and filler). Open-class words (nouns, verbs, adjectives) are never listed
//! one by one: their synonyms and antonyms come from WordNet.

use std::collections::{HashMap, HashSet};

/// Words that reverse polarity. "n't" is expanded to "not" by the tokenizer.
pub const NEGATORS: &[&str] = &[
    "not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "nor", "without",
    "cannot", "nope", "noone", "hardly", "barely", "lack", "lacking",
];

/// Words that carry no meaning of their own in a question: articles, auxiliaries, light
/// prepositions, politeness, hedges and intensifiers, question-framing verbs.
/// Inserting or deleting them never changes the answer.
pub const FILLER: &[&str] = &[
    // articles, determiners, light function words
    "a", "an", "the", "this", "that", "these", "those", "some", "any", "of", "to", "in", "on",
    "at", "for", "with", "about", "as", "so", "there", "here", "then", "than", "be", "is",
    "are", "am", "was", "were", "been", "being", "do", "does", "did", "doing", "done", "have",
    "has", "had", "having", "get", "gets", "got", "getting", "go", "going", "can", "could",
    "may", "might", "will", "would", "shall", "should", "must", "ought", "s", "it", "its",
    "which", "what", "whats", "if", "whether", "one", "ones", "way", "ways", "possible",
    "possibly", "someone", "somebody", "anyone", "anybody", "something", "anything",
    "thing", "things", "also", "too", "very", "quite", "pretty", "rather", "much", "and",
    "who", "whom", "that's", "by", "up", "out", "able", "need", "needs", "want", "wants",
    "wanted", "like", "id", "let", "lets", "me", "i", "my", "you", "your", "yours",
    // politeness, greetings
    "please", "pls", "plz", "kindly", "thanks", "thank", "thx", "hi", "hello", "hey",
    "dear", "sir", "madam", "excuse", "sorry", "help", "assist",
    // hedges, intensifiers, discourse markers
    "just", "really", "actually", "literally", "basically", "honestly", "truly",
    "seriously", "simply", "indeed", "fact", "exactly", "precisely", "totally", "completely",
    "definitely", "certainly", "surely", "perhaps", "maybe", "probably", "generally",
    "usually", "typically", "ever", "even", "well", "ok", "okay", "um", "uh", "oh", "btw",
    "anyway", "anyways", "currently", "now", "kind", "sort", "bit", "little",
    // framing a question: "can you tell me", "I'd like to know", "I was wondering"
    "tell", "know", "wonder", "wondering", "curious", "ask", "asking", "question",
    "explain", "show", "find", "out", "try", "trying", "please", "guys", "anybody",
];

/// Adverbs and phrases that are pure emphasis ("literally", "in fact"): subset of FILLER
/// kept separately only for documentation; see FILLER.
///
/// Pronoun classes: person, number and gender. A change between classes changes who the
/// question is about.
pub const PRONOUNS: &[(&str, &str)] = &[
    ("i", "1sg"), ("me", "1sg"), ("my", "1sg"), ("mine", "1sg"), ("myself", "1sg"),
    ("we", "1pl"), ("us", "1pl"), ("our", "1pl"), ("ours", "1pl"), ("ourselves", "1pl"),
    ("you", "2"), ("your", "2"), ("yours", "2"), ("yourself", "2"), ("yourselves", "2"),
    ("u", "2"), ("ur", "2"), ("he", "3m"), ("him", "3m"), ("his", "3m"), ("himself", "3m"),
    ("she", "3f"), ("her", "3f"), ("hers", "3f"), ("herself", "3f"), ("it", "3n"),
    ("its", "3n"), ("itself", "3n"), ("they", "3pl"), ("them", "3pl"), ("their", "3pl"),
    ("theirs", "3pl"), ("themselves", "3pl"),
];

/// Axis of an order word: pairs on the same axis and opposite sides swap the meaning.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Axis {
    Temporal,
    Spatial,
    Comparative,
    Logic,
}

/// Opposed pairs of closed-class order/degree words: (word, axis, side). Two unaligned
/// words on the same axis with different sides are an order swap.
pub const ORDER_WORDS: &[(&str, Axis, i8)] = &[
    // temporal order
    ("before", Axis::Temporal, -1), ("prior", Axis::Temporal, -1), ("earlier", Axis::Temporal, -1),
    ("previous", Axis::Temporal, -1), ("previously", Axis::Temporal, -1), ("ago", Axis::Temporal, -1),
    ("first", Axis::Temporal, -1), ("beforehand", Axis::Temporal, -1), ("until", Axis::Temporal, -1),
    ("till", Axis::Temporal, -1), ("past", Axis::Temporal, -1), ("yesterday", Axis::Temporal, -1),
    ("start", Axis::Temporal, -1), ("beginning", Axis::Temporal, -1), ("already", Axis::Temporal, -1),
    ("after", Axis::Temporal, 1), ("afterwards", Axis::Temporal, 1), ("afterward", Axis::Temporal, 1),
    ("later", Axis::Temporal, 1), ("next", Axis::Temporal, 1), ("following", Axis::Temporal, 1),
    ("since", Axis::Temporal, 1), ("last", Axis::Temporal, 1), ("future", Axis::Temporal, 1),
    ("tomorrow", Axis::Temporal, 1), ("end", Axis::Temporal, 1), ("yet", Axis::Temporal, 1),
    ("during", Axis::Temporal, 0), ("while", Axis::Temporal, 0), ("today", Axis::Temporal, 0),
    // spatial order and direction
    ("above", Axis::Spatial, -1), ("over", Axis::Spatial, -1), ("top", Axis::Spatial, -1),
    ("up", Axis::Spatial, -1), ("upstairs", Axis::Spatial, -1), ("upper", Axis::Spatial, -1),
    ("below", Axis::Spatial, 1), ("under", Axis::Spatial, 1), ("beneath", Axis::Spatial, 1),
    ("underneath", Axis::Spatial, 1), ("bottom", Axis::Spatial, 1), ("down", Axis::Spatial, 1),
    ("downstairs", Axis::Spatial, 1), ("lower", Axis::Spatial, 1),
    ("inside", Axis::Spatial, 2), ("within", Axis::Spatial, 2), ("into", Axis::Spatial, 2),
    ("indoors", Axis::Spatial, 2), ("outside", Axis::Spatial, 3), ("outdoors", Axis::Spatial, 3),
    ("front", Axis::Spatial, 4), ("ahead", Axis::Spatial, 4), ("behind", Axis::Spatial, 5),
    ("left", Axis::Spatial, 6), ("right", Axis::Spatial, 7), ("north", Axis::Spatial, 8),
    ("south", Axis::Spatial, 9), ("east", Axis::Spatial, 10), ("west", Axis::Spatial, 11),
    ("near", Axis::Spatial, 12), ("close", Axis::Spatial, 12), ("far", Axis::Spatial, 13),
    ("from", Axis::Spatial, 14), ("toward", Axis::Spatial, 15), ("towards", Axis::Spatial, 15),
    // degree
    ("more", Axis::Comparative, 1), ("most", Axis::Comparative, 1), ("increase", Axis::Comparative, 1),
    ("higher", Axis::Comparative, 1), ("greater", Axis::Comparative, 1), ("extra", Axis::Comparative, 1),
    ("less", Axis::Comparative, -1), ("least", Axis::Comparative, -1), ("fewer", Axis::Comparative, -1),
    ("fewest", Axis::Comparative, -1), ("decrease", Axis::Comparative, -1), ("reduce", Axis::Comparative, -1),
    ("lower", Axis::Comparative, -1),
    ("better", Axis::Comparative, 2), ("best", Axis::Comparative, 2), ("worse", Axis::Comparative, 3),
    ("worst", Axis::Comparative, 3), ("too", Axis::Comparative, 4), ("enough", Axis::Comparative, 5),
    // coordination and quantifiers
    ("and", Axis::Logic, 1), ("both", Axis::Logic, 1), ("or", Axis::Logic, 2),
    ("either", Axis::Logic, 2), ("all", Axis::Logic, 3), ("every", Axis::Logic, 3),
    ("each", Axis::Logic, 3), ("always", Axis::Logic, 3), ("some", Axis::Logic, 4),
    ("sometimes", Axis::Logic, 4), ("only", Axis::Logic, 5),
];

/// Antonym pairs WordNet lacks or that matter in questions (comparatives, verbs of change).
pub const EXTRA_ANTONYMS: &[(&str, &str)] = &[
    ("more", "less"), ("more", "fewer"), ("most", "least"), ("increase", "decrease"),
    ("increase", "reduce"), ("raise", "lower"), ("higher", "lower"), ("bigger", "smaller"),
    ("larger", "smaller"), ("cheaper", "expensive"), ("cheap", "pricey"), ("cheaper", "pricier"),
    ("faster", "slower"), ("older", "younger"), ("better", "worse"), ("best", "worst"),
    ("longer", "shorter"), ("easier", "harder"), ("stronger", "weaker"), ("richer", "poorer"),
    ("win", "lose"), ("buy", "sell"), ("send", "receive"), ("open", "close"), ("enable", "disable"),
    ("allow", "forbid"), ("allowed", "forbidden"), ("accept", "reject"), ("add", "remove"),
    ("add", "delete"), ("include", "exclude"), ("love", "hate"), ("like", "dislike"),
    ("safe", "unsafe"), ("legal", "illegal"), ("pass", "fail"), ("arrive", "depart"),
    ("import", "export"), ("lend", "borrow"), ("push", "pull"), ("start", "stop"),
    ("turn_on", "turn_off"), ("on", "off"), ("true", "false"), ("yes", "no"), ("always", "never"),
    ("everyone", "nobody"), ("remember", "forget"), ("deposit", "withdraw"), ("credit", "debit"),
    ("maximum", "minimum"), ("max", "min"), ("hot", "cold"), ("wet", "dry"), ("success", "failure"),
    ("positive", "negative"), ("good", "bad"), ("happy", "sad"), ("easy", "difficult"),
    ("man", "woman"), ("male", "female"), ("boy", "girl"), ("husband", "wife"), ("father", "mother"),
    ("son", "daughter"), ("brother", "sister"), ("uncle", "aunt"), ("king", "queen"),
];

/// Gendered nouns: a change between classes is a change of person.
pub const GENDERED: &[(&str, &str)] = &[
    ("man", "m"), ("men", "m"), ("boy", "m"), ("husband", "m"), ("father", "m"), ("dad", "m"),
    ("son", "m"), ("brother", "m"), ("uncle", "m"), ("king", "m"), ("boyfriend", "m"),
    ("woman", "f"), ("women", "f"), ("girl", "f"), ("wife", "f"), ("mother", "f"), ("mom", "f"),
    ("daughter", "f"), ("sister", "f"), ("aunt", "f"), ("queen", "f"), ("girlfriend", "f"),
];

/// Small synonym table for common question words WordNet does not group, and
/// variant spellings. Each line is one group.
pub const EXTRA_SYNONYMS: &[&str] = &[
    "cost price fee charge", "buy purchase", "begin start commence", "film movie",
    "phone telephone cellphone mobile smartphone", "email e-mail mail", "quick fast rapid speedy",
    "big large huge", "small little tiny", "refund reimbursement", "money cash funds",
    "website site webpage", "app application", "tv television", "ok okay alright fine",
    "kid child", "kids children", "photo picture pic", "bike bicycle", "car automobile",
    "cancel cancellation", "pin passcode", "job work", "help assist", "fix repair",
    "modify change alter", "delete remove erase", "shop store", "sad unhappy", "glad happy",
    "prior before", "afterwards after afterward", "color colour", "favorite favourite",
    "center centre", "organize organise", "realize realise", "program programme",
    "cheap inexpensive", "expensive costly pricey",
];

/// Number words (cardinal and ordinal) and their values.
pub const NUMBER_WORDS: &[(&str, u64)] = &[
    ("zero", 0), ("one", 1), ("two", 2), ("three", 3), ("four", 4), ("five", 5), ("six", 6),
    ("seven", 7), ("eight", 8), ("nine", 9), ("ten", 10), ("eleven", 11), ("twelve", 12),
    ("thirteen", 13), ("fourteen", 14), ("fifteen", 15), ("sixteen", 16), ("seventeen", 17),
    ("eighteen", 18), ("nineteen", 19), ("twenty", 20), ("thirty", 30), ("forty", 40),
    ("fifty", 50), ("sixty", 60), ("seventy", 70), ("eighty", 80), ("ninety", 90),
    ("second", 2), ("third", 3), ("fourth", 4), ("fifth", 5),
    ("sixth", 6), ("seventh", 7), ("eighth", 8), ("ninth", 9), ("tenth", 10), ("twice", 2),
    ("thrice", 3), ("double", 2), ("triple", 3), ("dozen", 12), ("half", 50), ("quarter", 25),
    ("single", 1), ("once", 1), ("couple", 2), ("pair", 2),
];

/// Multipliers for number words ("two hundred").
pub const NUMBER_SCALES: &[(&str, u64)] = &[
    ("hundred", 100), ("thousand", 1_000), ("million", 1_000_000), ("billion", 1_000_000_000),
    ("k", 1_000), ("m", 1_000_000), ("bn", 1_000_000_000),
];

/// Units, currencies and calendar words, by canonical name.
pub const UNITS: &[(&str, &str)] = &[
    ("km", "km"), ("kilometer", "km"), ("kilometre", "km"), ("kms", "km"), ("mile", "mile"),
    ("miles", "mile"), ("mi", "mile"), ("meter", "m"), ("metre", "m"), ("meters", "m"),
    ("metres", "m"), ("cm", "cm"), ("centimeter", "cm"), ("mm", "mm"), ("millimeter", "mm"),
    ("inch", "inch"), ("inches", "inch"), ("foot", "ft"), ("feet", "ft"), ("ft", "ft"),
    ("yard", "yard"), ("yards", "yard"), ("kg", "kg"), ("kilo", "kg"), ("kilos", "kg"),
    ("kilogram", "kg"), ("kilograms", "kg"), ("gram", "g"), ("grams", "g"), ("lb", "lb"),
    ("lbs", "lb"), ("pound", "lb"), ("pounds", "lb"), ("ounce", "oz"), ("ounces", "oz"),
    ("oz", "oz"), ("ton", "ton"), ("tons", "ton"), ("tonne", "ton"), ("liter", "l"),
    ("litre", "l"), ("liters", "l"), ("litres", "l"), ("gallon", "gal"), ("gallons", "gal"),
    ("ml", "ml"), ("celsius", "c"), ("centigrade", "c"), ("fahrenheit", "f"), ("kelvin", "k"),
    ("second", "sec"), ("seconds", "sec"), ("sec", "sec"), ("minute", "min"), ("minutes", "min"),
    ("min", "min"), ("mins", "min"), ("hour", "hour"), ("hours", "hour"), ("hr", "hour"),
    ("hrs", "hour"), ("day", "day"), ("days", "day"), ("week", "week"), ("weeks", "week"),
    ("month", "month"), ("months", "month"), ("year", "year"), ("years", "year"),
    ("yr", "year"), ("yrs", "year"), ("decade", "decade"), ("century", "century"),
    ("$", "usd"), ("dollar", "usd"), ("dollars", "usd"), ("usd", "usd"), ("€", "eur"),
    ("euro", "eur"), ("euros", "eur"), ("eur", "eur"), ("£", "gbp"), ("gbp", "gbp"),
    ("sterling", "gbp"), ("¥", "jpy"), ("yen", "jpy"), ("rupee", "inr"), ("rupees", "inr"),
    ("%", "pct"), ("percent", "pct"), ("percentage", "pct"), ("mb", "mb"), ("gb", "gb"),
    ("tb", "tb"), ("kb", "kb"), ("mph", "mph"), ("kmh", "kmh"), ("kph", "kmh"),
    ("january", "jan"), ("jan", "jan"), ("february", "feb"), ("feb", "feb"), ("mar", "mar"),
    ("april", "apr"), ("apr", "apr"), ("june", "jun"), ("jun", "jun"),
    ("july", "jul"), ("jul", "jul"), ("august", "aug"), ("aug", "aug"), ("september", "sep"),
    ("sept", "sep"), ("sep", "sep"), ("october", "oct"), ("oct", "oct"), ("november", "nov"),
    ("nov", "nov"), ("december", "dec"), ("dec", "dec"), ("monday", "mon"), ("tuesday", "tue"),
    ("wednesday", "wed"), ("thursday", "thu"), ("friday", "fri"), ("saturday", "sat"),
    ("sunday", "sun"), ("weekend", "weekend"), ("weekday", "weekday"), ("tonight", "tonight"),
    ("morning", "morning"), ("afternoon", "afternoon"), ("evening", "evening"), ("night", "night"),
];

/// Question words by what they ask for.
pub const WH_WORDS: &[(&str, &str)] = &[
    ("what", "what"), ("which", "what"), ("who", "who"), ("whom", "who"), ("whose", "who"),
    ("when", "when"), ("where", "where"), ("why", "why"), ("how", "how"),
];

/// Past-tense and future markers (auxiliaries).
pub const TENSE: &[(&str, &str)] = &[
    ("was", "past"), ("were", "past"), ("did", "past"), ("had", "past"), ("used", "past"),
    ("will", "future"), ("shall", "future"), ("gonna", "future"),
];

/// Auxiliaries that mark a passive when followed by a participle and "by".
pub const BE_FORMS: &[&str] = &[
    "am", "is", "are", "was", "were", "be", "been", "being", "get", "gets", "got", "gotten",
];

/// Prepositions that mark a role; they act as pivots for role-swap detection
/// ("from A to B" vs "from B to A", "A than B").
pub const ROLE_PREPS: &[&str] = &["to", "from", "into", "than", "for", "against", "onto", "toward", "towards"];

const WN_SYNONYMS: &str = include_str!("data/wn_synonyms.txt");
const WN_ANTONYMS: &str = include_str!("data/wn_antonyms.txt");
const WN_IRREGULAR: &str = include_str!("data/wn_irregular.txt");

/// All tables, built once.
pub struct Lexicon {
    pub negators: HashSet<&'static str>,
    pub filler: HashSet<&'static str>,
    pub pronouns: HashMap<&'static str, &'static str>,
    pub order: HashMap<&'static str, (Axis, i8)>,
    pub gendered: HashMap<&'static str, &'static str>,
    pub numbers: HashMap<&'static str, u64>,
    pub scales: HashMap<&'static str, u64>,
    pub units: HashMap<&'static str, &'static str>,
    pub wh: HashMap<&'static str, &'static str>,
    pub tense: HashMap<&'static str, &'static str>,
    pub be_forms: HashSet<&'static str>,
    pub role_preps: HashSet<&'static str>,
    /// word -> synonym group ids
    pub synonyms: HashMap<&'static str, Vec<u32>>,
    pub antonyms: HashSet<(&'static str, &'static str)>,
    /// inflected form -> base form
    pub irregular: HashMap<&'static str, &'static str>,
}

fn data_lines(s: &'static str) -> impl Iterator<Item = &'static str> {
    s.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty())
}

impl Lexicon {
    pub fn build() -> Self {
        let mut synonyms: HashMap<&'static str, Vec<u32>> = HashMap::with_capacity(60_000);
        for (gid, line) in data_lines(WN_SYNONYMS).chain(EXTRA_SYNONYMS.iter().copied()).enumerate() {
            for w in line.split_whitespace() {
                synonyms.entry(w).or_default().push(gid as u32);
            }
        }
        let mut antonyms = HashSet::with_capacity(6_000);
        let pairs = data_lines(WN_ANTONYMS)
            .filter_map(|l| l.split_once(' '))
            .chain(EXTRA_ANTONYMS.iter().copied());
        for (a, b) in pairs {
            antonyms.insert((a, b));
            antonyms.insert((b, a));
        }
        let mut irregular = HashMap::with_capacity(5_000);
        for (a, b) in data_lines(WN_IRREGULAR).filter_map(|l| l.split_once(' ')) {
            irregular.entry(a).or_insert(b);
        }
        Lexicon {
            negators: NEGATORS.iter().copied().collect(),
            filler: FILLER.iter().copied().collect(),
            pronouns: PRONOUNS.iter().copied().collect(),
            order: ORDER_WORDS.iter().map(|&(w, a, s)| (w, (a, s))).collect(),
            gendered: GENDERED.iter().copied().collect(),
            numbers: NUMBER_WORDS.iter().copied().collect(),
            scales: NUMBER_SCALES.iter().copied().collect(),
            units: UNITS.iter().copied().collect(),
            wh: WH_WORDS.iter().copied().collect(),
            tense: TENSE.iter().copied().collect(),
            be_forms: BE_FORMS.iter().copied().collect(),
            role_preps: ROLE_PREPS.iter().copied().collect(),
            synonyms,
            antonyms,
            irregular,
        }
    }
}
