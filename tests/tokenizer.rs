//! The byte-level BPE encoder gives exactly the ids Hugging Face `tokenizers` gives
//! with the model's own tokenizer.json, on strings chosen to be awkward.
mod common;
use common::{model_path, python, repo_path};
use sotto::decoding::output::json_string;
use sotto::format::ModelFile;

const STRINGS: &[&str] = &[
    "Hello world",
    " Hello world",
    "  two leading spaces",
    "trailing spaces   ",
    "And so, my fellow Americans: ask not what your country can do for you.",
    "it's they're we've I'm you'll he'd ISN'T it'S",
    "'s'tricky' 'quote' ''",
    "1234567890 3.14159 -42 1,000,000 2nd 10%",
    "Ünïcödé çafé naïve façade Straße",
    "Привет, мир! Ελληνικά",
    "中文字符和日本語のテキスト、한국어",
    "emoji 😀👍🏽 family 👨‍👩‍👧 flags 🇫🇷",
    "punctuation!!! ??? ... --- ;;; ()[]{}",
    "tabs\tand\nnewlines\n\n  mixed \t\n end",
    "\u{a0}no-break\u{3000}ideographic\u{2009}thin",
    "control\u{1c}\u{1f}\u{85}chars",
    "٣ Arabic-Indic digits ½ ⅓ Ⅻ ²",
    "Dr. Smith's e-mail: j.smith@example.com, https://x.y/z?q=1&r=2",
    "CamelCaseWordsAndALLCAPS mixedUP",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    " Kaczmarek Nkemelu Ouagadougou Llanfairpwllgwyngyll",
    "$100 €50 £20 ¥1000 ₹5",
    "ŉ ǅ ﬁ ﬂ Ⓐ ㈱ ℃",
    "x",
    " ",
    "",
    "\n",
    "a'b 'll'd 've're'm",
    "    indented code(); // comment",
    "עברית ו العربية",
    "zero\u{200b}width\u{200d}joiner",
];

fn encode_json(strings: &[&str]) -> String {
    let items: Vec<String> = strings.iter().map(|s| json_string(s)).collect();
    format!("[{}]", items.join(","))
}

fn check(model: &str) {
    let file = ModelFile::open(&model_path(model)).unwrap();
    let t0 = std::time::Instant::now();
    let tok = file.tokenizer().unwrap();
    eprintln!(
        "{model}: tokenizer built in {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    let dir = python(&["tools/ct2_model.py", model]);
    let json = std::path::PathBuf::from(dir.trim()).join("tokenizer.json");
    let list = std::env::temp_dir().join(format!("sotto-tok-{model}-{}.json", std::process::id()));
    std::fs::write(&list, encode_json(STRINGS)).unwrap();
    let want = python(&[
        repo_path("tools/hf_tokenize.py").to_str().unwrap(),
        json.to_str().unwrap(),
        list.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_file(&list);
    let want: Vec<&str> = want.split('\n').collect();
    assert!(want.len() > STRINGS.len(), "one line per string expected");
    for (s, line) in STRINGS.iter().zip(&want) {
        let ids: Vec<u32> = line
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        assert_eq!(tok.encode(s), ids, "{model}: {s:?}");
        // Byte-level BPE is lossless: the ids spell the string again.
        let back: Vec<u8> = ids
            .iter()
            .flat_map(|&i| file.token_bytes(i).to_vec())
            .collect();
        assert_eq!(back, s.as_bytes(), "{model}: {s:?}");
    }
}

#[test]
fn tiny_en_matches_hf_tokenizers() {
    check("tiny.en");
}

#[test]
fn base_matches_hf_tokenizers() {
    check("base");
}
