//! English text normaliser for WER: both the reference and the hypothesis go
//! through [`normalize`] so that case, punctuation, contractions, digits and
//! British spellings do not count as errors.
//!
//! It produces the same words as `tools/wer.py` (the Python reference; a test
//! compares the two). The steps, in order:
//! 1. diacritics stripped (`café` → `cafe`), lower case, curly quotes → `'`;
//! 2. `<…>` / `[…]` tags and `(asides)` removed; `it 's` → `it's`;
//! 3. contractions expanded (`won't` → `will not`, `n't` → ` not`, `'re` → ` are`,
//!    `'ll`, `'ve`, `'m`, `'d` → ` would`; `'s` is kept), titles spelled out
//!    (`mr` → `mister`, `st` → `saint`, …), `&` → `and`;
//! 4. numbers → words: `$5.20`, `1,200` (never year style), `£3`, `5 %`, ordinals
//!    (`3rd`), decimals (`1.5` → `one point five`), plain digit strings (1100–1999
//!    read as years: `1850` → `eighteen fifty`; leading zeros digit by digit);
//! 5. apostrophes kept only between letters, every other non-`[a-z0-9']` run → space;
//! 6. fillers (`uh`, `um`, `hmm`, `mhm`, `mm`) removed, British → American spelling.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Normalises English text for WER; returns words separated by single spaces.
pub fn normalize(text: &str) -> String {
    let s: String = text
        .chars()
        .flat_map(strip_diacritic)
        .collect::<String>()
        .to_lowercase();
    let s: String = s
        .chars()
        .map(|c| match c {
            '\u{2019}' | '\u{2018}' | '`' => '\'',
            c => c,
        })
        .collect();
    let s = remove_bracketed(&s);
    let s = join_split_contractions(&s);
    let s = CONTRACTIONS
        .iter()
        .fold(s, |s, r| replace_literal(&s, r.0, r.1, r.2, false));
    let s = TITLES.iter().fold(s, |s, r| {
        replace_literal(&s, r.0, r.1, Left::Boundary, true)
    });
    let s = s.replace('&', " and ");
    let s = numbers_to_words(&s);
    let s = clean_apostrophes(&s);
    let s: String = s
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '\'' => c,
            _ => ' ',
        })
        .collect();
    let spellings = spellings();
    let mut out = String::with_capacity(s.len());
    for token in s.split(' ').filter(|t| !t.is_empty()) {
        // `\b…\b` in the reference: fillers are whole runs of [a-z0-9]; an
        // apostrophe splits runs ("uh's" loses its "uh").
        let mut kept = String::new();
        for (i, run) in token.split('\'').enumerate() {
            if i > 0 {
                kept.push('\'');
            }
            if !is_filler(run) {
                kept.push_str(run);
            } else {
                kept.push(' ');
            }
        }
        for word in kept.split(' ').filter(|w| !w.is_empty()) {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(spellings.get(word).map(String::as_str).unwrap_or(word));
        }
    }
    out
}

/// A word character of Python's Unicode `\w`.
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Latin letters with diacritics → base letters (what NFKD + dropping combining
/// marks does for the letters English text meets); combining marks are dropped.
fn strip_diacritic(c: char) -> Vec<char> {
    if ('\u{300}'..='\u{36f}').contains(&c) {
        return Vec::new();
    }
    let base = match c {
        'À'..='Å' => 'A',
        'Ç' => 'C',
        'È'..='Ë' => 'E',
        'Ì'..='Ï' => 'I',
        'Ñ' => 'N',
        'Ò'..='Ö' => 'O',
        'Ù'..='Ü' => 'U',
        'Ý' => 'Y',
        'à'..='å' => 'a',
        'ç' => 'c',
        'è'..='ë' => 'e',
        'ì'..='ï' => 'i',
        'ñ' => 'n',
        'ò'..='ö' => 'o',
        'ù'..='ü' => 'u',
        'ý' | 'ÿ' => 'y',
        'Ā' | 'Ă' | 'Ą' => 'A',
        'ā' | 'ă' | 'ą' => 'a',
        'Ć' | 'Ĉ' | 'Ċ' | 'Č' => 'C',
        'ć' | 'ĉ' | 'ċ' | 'č' => 'c',
        'Ď' => 'D',
        'ď' => 'd',
        'Ē' | 'Ĕ' | 'Ė' | 'Ę' | 'Ě' => 'E',
        'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => 'e',
        'Ĝ' | 'Ğ' | 'Ġ' | 'Ģ' => 'G',
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => 'g',
        'Ĩ' | 'Ī' | 'Ĭ' | 'Į' | 'İ' => 'I',
        'ĩ' | 'ī' | 'ĭ' | 'į' => 'i',
        'Ń' | 'Ņ' | 'Ň' => 'N',
        'ń' | 'ņ' | 'ň' => 'n',
        'Ō' | 'Ŏ' | 'Ő' => 'O',
        'ō' | 'ŏ' | 'ő' => 'o',
        'Ŕ' | 'Ř' => 'R',
        'ŕ' | 'ř' => 'r',
        'Ś' | 'Ŝ' | 'Ş' | 'Š' => 'S',
        'ś' | 'ŝ' | 'ş' | 'š' => 's',
        'Ţ' | 'Ť' => 'T',
        'ţ' | 'ť' => 't',
        'Ũ' | 'Ū' | 'Ŭ' | 'Ů' | 'Ű' | 'Ų' => 'U',
        'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => 'u',
        'Ź' | 'Ż' | 'Ž' => 'Z',
        'ź' | 'ż' | 'ž' => 'z',
        c => c,
    };
    vec![base]
}

/// Removes `<…>` / `[…]` (up to the first `>` or `]`) and `(…)`, each → one space.
fn remove_bracketed(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let close: &[char] = match chars[i] {
            '<' | '[' => &['>', ']'],
            '(' => &[')'],
            _ => &[],
        };
        if !close.is_empty() {
            if let Some(k) = chars[i + 1..].iter().position(|c| close.contains(c)) {
                out.push(' ');
                i += k + 2;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// `it 's` → `it's`: whitespace before an apostrophe that starts a contraction suffix.
fn join_split_contractions(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            if j < chars.len() && chars[j] == '\'' {
                let rest = &chars[j + 1..];
                let suffix = ["s", "re", "ll", "ve", "m", "d", "t"].iter().any(|suf| {
                    let n = suf.len();
                    rest.len() >= n
                        && rest[..n].iter().copied().eq(suf.chars())
                        && rest.get(n).is_none_or(|&c| !is_word(c))
                });
                if suffix {
                    i = j;
                    continue;
                }
            }
            out.extend(&chars[i..j]);
            i = j;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// What must precede a literal pattern for it to match.
#[derive(Clone, Copy)]
enum Left {
    /// Anything.
    Any,
    /// A word boundary: the pattern starts with a word character, so the
    /// previous character is not one.
    Boundary,
    /// Not an ASCII lower-case letter.
    NotLetter,
}

/// Contractions, applied in order; each pattern ends at a word boundary.
const CONTRACTIONS: &[(&str, &str, Left)] = &[
    ("won't", "will not", Left::Boundary),
    ("can't", "can not", Left::Boundary),
    ("cannot", "can not", Left::Boundary),
    ("shan't", "shall not", Left::Boundary),
    ("ain't", "aint", Left::Boundary),
    ("let's", "let us", Left::Boundary),
    ("y'all", "you all", Left::Boundary),
    ("wanna", "want to", Left::Boundary),
    ("gonna", "going to", Left::Boundary),
    ("gotta", "got to", Left::Boundary),
    ("'tis", "it is", Left::NotLetter),
    ("'twas", "it was", Left::NotLetter),
    ("n't", " not", Left::Any),
    ("'re", " are", Left::Any),
    ("'ll", " will", Left::Any),
    ("'ve", " have", Left::Any),
    ("'m", " am", Left::Any),
    ("'d", " would", Left::Any),
];

/// Titles: whole words, an optional following `.` is consumed.
const TITLES: &[(&str, &str)] = &[
    ("mr", "mister "),
    ("mrs", "missus "),
    ("dr", "doctor "),
    ("st", "saint "),
    ("prof", "professor "),
    ("capt", "captain "),
    ("jr", "junior "),
    ("sr", "senior "),
    ("lt", "lieutenant "),
];

/// Replaces every non-overlapping `pat` (left to right) whose left side satisfies
/// `left` and which is followed by a word boundary (the pattern ends in a word
/// character, so: by a non-word character or the end). With `dot`, a `.` right
/// after a match is swallowed too.
fn replace_literal(s: &str, pat: &str, rep: &str, left: Left, dot: bool) -> String {
    let chars: Vec<char> = s.chars().collect();
    let pat: Vec<char> = pat.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let prev = if i > 0 { Some(chars[i - 1]) } else { None };
        let left_ok = match left {
            Left::Any => true,
            Left::Boundary => prev.is_none_or(|c| !is_word(c)),
            Left::NotLetter => prev.is_none_or(|c| !c.is_ascii_lowercase()),
        };
        let end = i + pat.len();
        if left_ok
            && end <= chars.len()
            && chars[i..end] == pat[..]
            && chars.get(end).is_none_or(|&c| !is_word(c))
        {
            out.push_str(rep);
            i = end;
            if dot && chars.get(i) == Some(&'.') {
                i += 1;
            }
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Apostrophes survive only with an ASCII lower-case letter on both sides.
fn clean_apostrophes(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let letter = |k: Option<&char>| k.is_some_and(|c| c.is_ascii_lowercase());
    chars
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let prev = if i > 0 { chars.get(i - 1) } else { None };
            if c == '\'' && !(letter(prev) && letter(chars.get(i + 1))) {
                ' '
            } else {
                c
            }
        })
        .collect()
}

fn is_filler(run: &str) -> bool {
    let b = run.as_bytes();
    let all = |from: usize, c: u8| b.len() > from && b[from..].iter().all(|&x| x == c);
    match b.first() {
        Some(b'h') => b.len() >= 3 && all(1, b'm'),
        Some(b'm') => run == "mhm" || (b.len() >= 2 && all(1, b'm')),
        Some(b'u') => b.len() >= 2 && (all(1, b'h') || all(1, b'm')),
        _ => false,
    }
}

// ------------------------------------------------------------------ numbers

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];
const SCALES: [(u64, &str); 4] = [
    (1_000_000_000_000, "trillion"),
    (1_000_000_000, "billion"),
    (1_000_000, "million"),
    (1000, "thousand"),
];

fn below_100(n: u64, words: &mut Vec<&'static str>) {
    if n < 20 {
        words.push(ONES[n as usize]);
    } else {
        words.push(TENS[(n / 10) as usize]);
        if !n.is_multiple_of(10) {
            words.push(ONES[(n % 10) as usize]);
        }
    }
}

fn below_1000(n: u64, words: &mut Vec<&'static str>) {
    let (hundreds, rest) = (n / 100, n % 100);
    if hundreds > 0 {
        // Above 999 this only happens for quadrillions; read the digits then.
        if hundreds >= 10 {
            below_1000(hundreds, words);
        } else {
            words.push(ONES[hundreds as usize]);
        }
        words.push("hundred");
    }
    if rest > 0 || hundreds == 0 {
        below_100(rest, words);
    }
}

/// Words for a non-negative integer. With `year_style`, 1100–1999 read as years
/// (`1850` → "eighteen fifty", `1905` → "nineteen oh five", `1500` → "fifteen hundred").
pub fn cardinal(n: u64, year_style: bool) -> String {
    if n == 0 {
        return "zero".into();
    }
    let mut words = Vec::new();
    if year_style && (1100..=1999).contains(&n) {
        let (hi, lo) = (n / 100, n % 100);
        below_100(hi, &mut words);
        if lo == 0 {
            words.push("hundred");
        } else {
            if lo < 10 {
                words.push("oh");
            }
            below_100(lo, &mut words);
        }
        return words.join(" ");
    }
    let mut n = n;
    for (scale, name) in SCALES {
        if n >= scale {
            below_1000(n / scale, &mut words);
            words.push(name);
            n %= scale;
        }
    }
    if n > 0 {
        below_1000(n, &mut words);
    }
    words.join(" ")
}

/// Ordinal words: 1 → "first", 22 → "twenty second", 100 → "one hundredth".
pub fn ordinal(n: u64) -> String {
    let card = cardinal(n, true);
    let (head, last) = match card.rfind(' ') {
        Some(k) => (&card[..k + 1], &card[k + 1..]),
        None => ("", card.as_str()),
    };
    let last = match last {
        "one" => "first".to_string(),
        "two" => "second".into(),
        "three" => "third".into(),
        "five" => "fifth".into(),
        "eight" => "eighth".into(),
        "nine" => "ninth".into(),
        "twelve" => "twelfth".into(),
        w if w.ends_with('y') => format!("{}ieth", &w[..w.len() - 1]),
        w => format!("{w}th"),
    };
    format!("{head}{last}")
}

fn digit_by_digit(num: &str) -> String {
    let words: Vec<&str> = num.bytes().map(|b| ONES[(b - b'0') as usize]).collect();
    words.join(" ")
}

/// A digit string read aloud: leading zeros (and very long strings) digit by digit.
fn read_digits(num: &str) -> String {
    if (num.len() > 1 && num.starts_with('0')) || num.len() > 15 {
        return digit_by_digit(num);
    }
    cardinal(num.parse().unwrap_or(0), true)
}

/// Length of the run of ASCII digits starting at `i`.
fn digit_run(chars: &[char], i: usize) -> usize {
    chars[i..].iter().take_while(|c| c.is_ascii_digit()).count()
}

fn numbers_to_words(s: &str) -> String {
    let s = dollars(s);
    let s = grouped_thousands(&s);
    let s = pounds_and_percent(&s);
    let s = ordinals(&s);
    let s = decimals(&s);
    plain_digits(&s)
}

/// Rewrites `s` left to right: at each position `rule` may consume the chars
/// `i..next` and emit text in their place; where it declines, the char is kept.
fn rewrite(s: &str, rule: impl Fn(&[char], usize) -> Option<(String, usize)>) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        match rule(&chars, i) {
            Some((text, next)) => {
                out.push_str(&text);
                i = next;
            }
            None => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out
}

fn text(chars: &[char]) -> String {
    chars.iter().collect()
}

/// `$1,200.50` → `1,200 dollars 50 cents` (the digits are read later).
fn dollars(s: &str) -> String {
    rewrite(s, |chars, i| {
        if chars[i] != '$' || !chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()) {
            return None;
        }
        let mut j = i + 1;
        while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == ',') {
            j += 1;
        }
        let mut out = text(&chars[i + 1..j]) + " dollars";
        if chars.get(j) == Some(&'.')
            && chars.get(j + 1).is_some_and(|c| c.is_ascii_digit())
            && chars.get(j + 2).is_some_and(|c| c.is_ascii_digit())
        {
            out.push(' ');
            out.push_str(&text(&chars[j + 1..j + 3]));
            out.push_str(" cents");
            j += 3;
        }
        Some((out, j))
    })
}

/// `1,200` → ` one thousand two hundred ` (whole groups of three after commas).
fn grouped_thousands(s: &str) -> String {
    rewrite(s, |chars, i| {
        let boundary = i == 0 || !is_word(chars[i - 1]);
        if !boundary || !chars[i].is_ascii_digit() {
            return None;
        }
        let run = digit_run(chars, i);
        let mut end = None;
        if run <= 3 {
            let mut j = i + run;
            while chars.get(j) == Some(&',')
                && j + 4 <= chars.len()
                && chars[j + 1..j + 4].iter().all(|c| c.is_ascii_digit())
            {
                j += 4;
                if chars.get(j).is_none_or(|&c| !is_word(c)) {
                    end = Some(j);
                }
            }
        }
        let Some(end) = end else {
            return Some((text(&chars[i..i + run]), i + run));
        };
        let digits: String = chars[i..end].iter().filter(|&&c| c != ',').collect();
        let value = if digits.len() <= 18 {
            cardinal(digits.parse().unwrap_or(0), false)
        } else {
            digit_by_digit(&digits)
        };
        Some((format!(" {value} "), end))
    })
}

/// `£3` → `3 pounds`, `5 %` → `5 percent`.
fn pounds_and_percent(s: &str) -> String {
    rewrite(s, |chars, i| {
        let c = chars[i];
        if c == '£' && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()) {
            let run = digit_run(chars, i + 1);
            return Some((text(&chars[i + 1..i + 1 + run]) + " pounds", i + 1 + run));
        }
        if !c.is_ascii_digit() {
            return None;
        }
        let mut j = i + 1;
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        (chars.get(j) == Some(&'%')).then(|| (format!("{c} percent"), j + 1))
    })
}

/// `21st` → ` twenty first ` (whole words only).
fn ordinals(s: &str) -> String {
    rewrite(s, |chars, i| {
        if !chars[i].is_ascii_digit() {
            return None;
        }
        let run = digit_run(chars, i);
        let boundary = i == 0 || !is_word(chars[i - 1]);
        let j = i + run;
        let suffix = text(&chars[j..chars.len().min(j + 2)]);
        if boundary
            && ["st", "nd", "rd", "th"].contains(&suffix.as_str())
            && chars.get(j + 2).is_none_or(|&c| !is_word(c))
            && run <= 18
        {
            let value = ordinal(text(&chars[i..j]).parse().unwrap_or(0));
            return Some((format!(" {value} "), j + 2));
        }
        Some((text(&chars[i..j]), j))
    })
}

/// `1.5` → `one point five`.
fn decimals(s: &str) -> String {
    rewrite(s, |chars, i| {
        if !chars[i].is_ascii_digit() {
            return None;
        }
        let j = i + digit_run(chars, i);
        if chars.get(j) == Some(&'.') && chars.get(j + 1).is_some_and(|c| c.is_ascii_digit()) {
            let k = j + 1 + digit_run(chars, j + 1);
            let whole = read_digits(&text(&chars[i..j]));
            let frac = digit_by_digit(&text(&chars[j + 1..k]));
            return Some((format!("{whole} point {frac}"), k));
        }
        Some((text(&chars[i..j]), j))
    })
}

/// Any remaining digit string → ` words `.
fn plain_digits(s: &str) -> String {
    rewrite(s, |chars, i| {
        if !chars[i].is_ascii_digit() {
            return None;
        }
        let j = i + digit_run(chars, i);
        Some((format!(" {} ", read_digits(&text(&chars[i..j]))), j))
    })
}

// ------------------------------------------------------------------ spellings

const OUR_STEMS: &[&str] = &[
    "arb", "ard", "arm", "behavi", "clam", "col", "endeav", "fav", "flav", "harb", "hon", "hum",
    "lab", "neighb", "od", "parl", "rig", "rum", "sav", "splend", "tum", "val", "vap", "vig",
];
const OUR_SUFFIXES: &[&str] = &[
    "", "s", "ed", "ing", "able", "ably", "ite", "ites", "less", "ful", "er", "ers", "hood", "ly",
    "y",
];
const LL_STEMS: &[&str] = &[
    "cancel", "counsel", "level", "label", "model", "marvel", "quarrel", "signal", "travel",
    "shovel", "revel", "channel", "dishevel", "duel", "fuel", "jewel", "libel", "pencil", "rival",
    "tunnel", "funnel", "grovel", "kennel", "panel", "equal", "dial", "total",
];
const OTHER_SPELLINGS: &[(&str, &str)] = &[
    ("centre", "center"),
    ("centres", "centers"),
    ("theatre", "theater"),
    ("theatres", "theaters"),
    ("metre", "meter"),
    ("metres", "meters"),
    ("litre", "liter"),
    ("fibre", "fiber"),
    ("sombre", "somber"),
    ("spectre", "specter"),
    ("meagre", "meager"),
    ("sabre", "saber"),
    ("lustre", "luster"),
    ("grey", "gray"),
    ("greyish", "grayish"),
    ("defence", "defense"),
    ("offence", "offense"),
    ("pretence", "pretense"),
    ("licence", "license"),
    ("plough", "plow"),
    ("ploughed", "plowed"),
    ("ploughing", "plowing"),
    ("cheque", "check"),
    ("gaol", "jail"),
    ("gaoler", "jailer"),
    ("jewellery", "jewelry"),
    ("marvellous", "marvelous"),
    ("woollen", "woolen"),
    ("mould", "mold"),
    ("moulded", "molded"),
    ("smoulder", "smolder"),
    ("smouldering", "smoldering"),
    ("moustache", "mustache"),
    ("programme", "program"),
    ("catalogue", "catalog"),
    ("analyse", "analyze"),
    ("realise", "realize"),
    ("realised", "realized"),
    ("recognise", "recognize"),
    ("recognised", "recognized"),
    ("apologise", "apologize"),
    ("organise", "organize"),
    ("organised", "organized"),
    ("civilisation", "civilization"),
    ("sceptic", "skeptic"),
    ("sceptical", "skeptical"),
    ("whisky", "whiskey"),
];

/// British → American spellings: the list above, `-our` words with prefixes and
/// suffixes (`dishonoured` → `dishonored`), doubled `l` (`travelled` → `traveled`).
fn spellings() -> &'static HashMap<String, String> {
    static MAP: OnceLock<HashMap<String, String>> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut m: HashMap<String, String> = OTHER_SPELLINGS
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        for pre in ["", "dis", "un", "mis", "re"] {
            for stem in OUR_STEMS {
                for suf in OUR_SUFFIXES {
                    m.insert(
                        format!("{pre}{stem}our{suf}"),
                        format!("{pre}{stem}or{suf}"),
                    );
                }
            }
        }
        for stem in LL_STEMS {
            for suf in ["ed", "ing", "er", "ers", "or", "ors", "ous"] {
                m.insert(format!("{stem}l{suf}"), format!("{stem}{suf}"));
            }
        }
        m
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        normalize(s)
    }

    #[test]
    fn case_and_punctuation() {
        assert_eq!(
            n(" He hoped, there would be stew for dinner!"),
            "he hoped there would be stew for dinner"
        );
        assert_eq!(n("flour-fattened sauce."), "flour fattened sauce");
        assert_eq!(n("\"Quoted\" — words…"), "quoted words");
        assert_eq!(n("Tom's hat."), "tom's hat");
        assert_eq!(n("the boys' toys"), "the boys toys");
        assert_eq!(n("<|en|> [MUSIC] hello (laughs) there"), "hello there");
    }

    #[test]
    fn contractions_expand_the_same_on_both_sides() {
        assert_eq!(n("DON'T YOU KNOW"), n("Do not you know?"));
        assert_eq!(n("I won't go"), "i will not go");
        assert_eq!(n("I can't, I cannot"), "i can not i can not");
        assert_eq!(
            n("they're we'll I've I'm he'd"),
            "they are we will i have i am he would"
        );
        assert_eq!(n("it 's"), "it's");
        assert_eq!(n("it\u{2019}s"), "it's");
        assert_eq!(n("'Twas 'quoted' word"), "it was quoted word");
        assert_eq!(
            n("Mr. Smith and Dr Who, St. Paul"),
            "mister smith and doctor who saint paul"
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(n("21 days"), "twenty one days");
        assert_eq!(n("In 1850."), "in eighteen fifty");
        assert_eq!(
            n("1905 1500 2024"),
            "nineteen oh five fifteen hundred two thousand twenty four"
        );
        assert_eq!(
            n("the 3rd time, 21st, 2nd, 100th"),
            "the third time twenty first second one hundredth"
        );
        assert_eq!(n("1,200"), "one thousand two hundred");
        assert_eq!(n("1,850 men"), "one thousand eight hundred fifty men");
        assert_eq!(n("$5"), "five dollars");
        assert_eq!(n("$2,000"), "two thousand dollars");
        assert_eq!(n("$3.50"), "three dollars fifty cents");
        assert_eq!(n("£3"), "three pounds");
        assert_eq!(n("50 %"), "fifty percent");
        assert_eq!(n("1.5"), "one point five");
        assert_eq!(n("007"), "zero zero seven");
        assert_eq!(n("9999"), "nine thousand nine hundred ninety nine");
        assert_eq!(n("TWENTY ONE"), n("21"));
    }

    #[test]
    fn number_words() {
        assert_eq!(cardinal(0, true), "zero");
        assert_eq!(cardinal(40, true), "forty");
        assert_eq!(cardinal(101, true), "one hundred one");
        assert_eq!(cardinal(1_000_000, true), "one million");
        assert_eq!(ordinal(1), "first");
        assert_eq!(ordinal(12), "twelfth");
        assert_eq!(ordinal(20), "twentieth");
        assert_eq!(ordinal(22), "twenty second");
    }

    #[test]
    fn british_to_american_and_diacritics_and_fillers() {
        assert_eq!(n("The colour of honour"), "the color of honor");
        assert_eq!(n("dishonoured neighbours"), "dishonored neighbors");
        assert_eq!(n("his belly counselled him"), "his belly counseled him");
        assert_eq!(
            n("centre theatre realise grey"),
            "center theater realize gray"
        );
        assert_eq!(n("four hours of our tour"), "four hours of our tour");
        assert_eq!(n("café NAÏVE"), "cafe naive");
        assert_eq!(n("Well, uh, um... hmm mhm"), "well");
        assert_eq!(n("umbrella uhm hum"), "umbrella uhm hum");
    }

    #[test]
    fn empty_and_blank() {
        assert_eq!(n(""), "");
        assert_eq!(n("  ...  "), "");
    }
}
