#!/usr/bin/env python3
"""English text normaliser and word error rate (WER), for comparing transcripts.

    python3 tools/wer.py REF_TEXT HYP_TEXT       # one pair, prints S/D/I and WER
    python3 tools/wer.py --selftest

As a module: normalize(text) -> str, align(ref_words, hyp_words) -> Counts,
Corpus() to add pairs and read corpus-level WER = total errors / total reference words.

The normaliser follows the spirit of Whisper's English normaliser where it matters for
LibriSpeech (whose references are upper case, without punctuation or digits):
  lower case; diacritics stripped; bracketed asides removed; filler words (uh, um, hmm)
  removed; contractions expanded ("won't" -> "will not", "n't" -> " not", "'re" -> " are",
  "'ll" -> " will", "'ve" -> " have", "'m" -> " am", "'d" -> " would"; "'s" is kept);
  titles spelled out (mr -> mister, mrs -> missus, dr -> doctor, st -> saint);
  hyphens and other punctuation -> spaces, apostrophes kept only inside words;
  digit strings -> words ("42" -> "forty two", "1850" -> "eighteen fifty",
  "3rd" -> "third", "1,000" -> "one thousand", "$5" -> "five dollars", "%" -> "percent");
  a short list of British spellings -> American (colour -> color, travelled -> traveled);
  whitespace collapsed.
Unlike Whisper's, numbers go to words (LibriSpeech references spell numbers out), and
"and" inside spoken numbers is not dropped.
"""

import re
import sys
import unicodedata
from dataclasses import dataclass

# ---------------------------------------------------------------- numbers -> words

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
         "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
         "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [(10 ** 12, "trillion"), (10 ** 9, "billion"), (10 ** 6, "million"), (1000, "thousand")]
_ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                  "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}


def _below_100(n):
    if n < 20:
        return [_ONES[n]]
    tens, ones = divmod(n, 10)
    return [_TENS[tens]] + ([_ONES[ones]] if ones else [])


def _below_1000(n):
    hundreds, rest = divmod(n, 100)
    words = [_ONES[hundreds], "hundred"] if hundreds else []
    if rest or not words:
        words += _below_100(rest)
    return words


def cardinal(n, year_style=True):
    """Words for a non-negative integer: 1850 -> 'eighteen fifty' (year style for
    1100-1999 except whole hundreds: 1500 -> 'fifteen hundred'), else plain cardinals."""
    if n == 0:
        return "zero"
    if year_style and 1100 <= n <= 1999:
        hi, lo = divmod(n, 100)
        if lo == 0:
            return " ".join(_below_100(hi) + ["hundred"])
        return " ".join(_below_100(hi) + (["oh"] if lo < 10 else []) + _below_100(lo))
    words = []
    for scale, name in _SCALES:
        if n >= scale:
            q, n = divmod(n, scale)
            words += _below_1000(q) + [name]
    if n:
        words += _below_1000(n)
    return " ".join(words)


def ordinal(n):
    words = cardinal(n).split()
    last = words[-1]
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return " ".join(words[:-1] + [last])


def _digits(num):
    """'007' -> 'zero zero seven'; leading zeros are read digit by digit."""
    if len(num) > 1 and num.startswith("0"):
        return " ".join(_ONES[int(c)] for c in num)
    if len(num) > 15:
        return " ".join(_ONES[int(c)] for c in num)
    return cardinal(int(num))


def _numbers_to_words(s):
    s = re.sub(r"\$(\d[\d,]*)(?:\.(\d\d))?",
               lambda m: m.group(1) + " dollars" + (f" {m.group(2)} cents" if m.group(2) else ""), s)
    # 1,200 -> "one thousand two hundred" (grouped digits are never read as a year)
    s = re.sub(r"\b\d{1,3}(?:,\d{3})+\b",
               lambda m: " " + cardinal(int(m.group(0).replace(",", "")), year_style=False) + " ", s)
    s = re.sub(r"£(\d+)", r"\1 pounds", s)
    s = re.sub(r"(\d)\s*%", r"\1 percent", s)
    s = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: " " + ordinal(int(m.group(1))) + " ", s)
    s = re.sub(r"(\d+)\.(\d+)", lambda m: f"{_digits(m.group(1))} point "
               + " ".join(_ONES[int(c)] for c in m.group(2)), s)
    s = re.sub(r"\d+", lambda m: " " + _digits(m.group(0)) + " ", s)
    return s

# ---------------------------------------------------------------- spellings


_OUR_STEMS = ["arb", "ard", "arm", "behavi", "clam", "col", "endeav", "fav", "flav", "harb",
              "hon", "hum", "lab", "neighb", "od", "parl", "rig", "rum", "sav", "splend",
              "tum", "val", "vap", "vig"]
_OUR_SUFFIXES = ["", "s", "ed", "ing", "able", "ably", "ite", "ites", "less", "ful", "er", "ers",
                 "hood", "ly", "y"]
_LL_STEMS = ["cancel", "counsel", "level", "label", "model", "marvel", "quarrel", "signal",
             "travel", "shovel", "revel", "channel", "dishevel", "duel", "fuel", "jewel",
             "libel", "pencil", "rival", "tunnel", "funnel", "grovel", "kennel", "panel",
             "equal", "dial", "total"]
_OTHER = {"centre": "center", "centres": "centers", "theatre": "theater", "theatres": "theaters",
          "metre": "meter", "metres": "meters", "litre": "liter", "fibre": "fiber",
          "sombre": "somber", "spectre": "specter", "meagre": "meager", "sabre": "saber",
          "lustre": "luster", "grey": "gray", "greyish": "grayish", "defence": "defense",
          "offence": "offense", "pretence": "pretense", "licence": "license",
          "plough": "plow", "ploughed": "plowed", "ploughing": "plowing",
          "cheque": "check", "gaol": "jail", "gaoler": "jailer", "jewellery": "jewelry",
          "marvellous": "marvelous", "woollen": "woolen", "mould": "mold", "moulded": "molded",
          "smoulder": "smolder", "smouldering": "smoldering", "moustache": "mustache",
          "programme": "program", "catalogue": "catalog", "analyse": "analyze",
          "realise": "realize", "realised": "realized", "recognise": "recognize",
          "recognised": "recognized", "apologise": "apologize", "organise": "organize",
          "organised": "organized", "civilisation": "civilization", "sceptic": "skeptic",
          "sceptical": "skeptical", "whisky": "whiskey"}


def _spelling_map():
    m = dict(_OTHER)
    for pre in ("", "dis", "un", "mis", "re"):
        for stem in _OUR_STEMS:
            for suf in _OUR_SUFFIXES:
                m[pre + stem + "our" + suf] = pre + stem + "or" + suf
    for stem in _LL_STEMS:
        for suf in ("ed", "ing", "er", "ers", "or", "ors", "ous"):
            m[stem + "l" + suf] = stem + suf
    return m


SPELLINGS = _spelling_map()

# ---------------------------------------------------------------- normaliser

_CONTRACTIONS = [
    (r"\bwon't\b", "will not"), (r"\bcan't\b", "can not"), (r"\bcannot\b", "can not"),
    (r"\bshan't\b", "shall not"), (r"\bain't\b", "aint"), (r"\blet's\b", "let us"),
    (r"\by'all\b", "you all"), (r"\bwanna\b", "want to"), (r"\bgonna\b", "going to"),
    (r"\bgotta\b", "got to"), (r"(?<![a-z])'tis\b", "it is"), (r"(?<![a-z])'twas\b", "it was"),
    (r"n't\b", " not"), (r"'re\b", " are"), (r"'ll\b", " will"), (r"'ve\b", " have"),
    (r"'m\b", " am"), (r"'d\b", " would"),
]
_TITLES = [(r"\bmr\b\.?", "mister "), (r"\bmrs\b\.?", "missus "), (r"\bdr\b\.?", "doctor "),
           (r"\bst\b\.?", "saint "), (r"\bprof\b\.?", "professor "), (r"\bcapt\b\.?", "captain "),
           (r"\bjr\b\.?", "junior "), (r"\bsr\b\.?", "senior "), (r"\blt\b\.?", "lieutenant ")]
_FILLERS = re.compile(r"\b(?:hmm+|mm+|mhm|uh+|um+)\b")


def _strip_diacritics(s):
    s = unicodedata.normalize("NFKD", s)
    return "".join(c for c in s if not unicodedata.combining(c))


def normalize(text):
    """Normalise English text for WER (see module doc)."""
    s = _strip_diacritics(text).lower()
    s = s.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    s = re.sub(r"[<\[][^>\]]*[>\]]", " ", s)       # <|tokens|>, [noise]
    s = re.sub(r"\([^)]*\)", " ", s)                 # (asides)
    s = re.sub(r"\s+'(?=(?:s|re|ll|ve|m|d|t)\b)", "'", s)  # "it 's" -> "it's"
    for pat, rep in _CONTRACTIONS:
        s = re.sub(pat, rep, s)
    for pat, rep in _TITLES:
        s = re.sub(pat, rep, s)
    s = re.sub(r"&", " and ", s)
    s = _numbers_to_words(s)
    # Apostrophes survive only between letters; every other non-alphanumeric -> space.
    s = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", s)
    s = re.sub(r"[^a-z0-9']+", " ", s)
    s = _FILLERS.sub(" ", s)
    words = [SPELLINGS.get(w, w) for w in s.split()]
    return " ".join(words)

# ---------------------------------------------------------------- alignment


@dataclass
class Counts:
    ref_words: int = 0
    sub: int = 0
    dele: int = 0
    ins: int = 0

    @property
    def errors(self):
        return self.sub + self.dele + self.ins

    @property
    def wer(self):
        """Errors / reference words; with no reference words: 0 if no errors, else inf."""
        if self.ref_words == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return self.errors / self.ref_words

    def __add__(self, o):
        return Counts(self.ref_words + o.ref_words, self.sub + o.sub,
                      self.dele + o.dele, self.ins + o.ins)


def align(ref, hyp):
    """Word-level Levenshtein alignment; returns Counts with S, D, I.

    Among alignments with the fewest errors, the backtrace prefers a match or
    substitution, then a deletion, then an insertion (so counts are deterministic)."""
    n, m = len(ref), len(hyp)
    # cost[i][j]: edits to turn ref[:i] into hyp[:j]
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        cost[i][0] = i
    for j in range(1, m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        row, prev, r = cost[i], cost[i - 1], ref[i - 1]
        for j in range(1, m + 1):
            diag = prev[j - 1] + (r != hyp[j - 1])
            row[j] = min(diag, prev[j] + 1, row[j - 1] + 1)
    c = Counts(ref_words=n)
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            c.sub += ref[i - 1] != hyp[j - 1]
            i, j = i - 1, j - 1
        elif i > 0 and cost[i][j] == cost[i - 1][j] + 1:
            c.dele += 1
            i -= 1
        else:
            c.ins += 1
            j -= 1
    return c


def score(ref_text, hyp_text):
    """Normalise both texts and align them."""
    return align(normalize(ref_text).split(), normalize(hyp_text).split())


class Corpus:
    """Accumulates pairs; corpus WER = total errors / total reference words."""

    def __init__(self):
        self.total = Counts()

    def add(self, ref_text, hyp_text):
        c = score(ref_text, hyp_text)
        self.total = self.total + c
        return c

    @property
    def wer(self):
        return self.total.wer

# ---------------------------------------------------------------- self test


def selftest():
    def check(ref, hyp, s, d, i, n=None):
        c = score(ref, hyp)
        got = (c.sub, c.dele, c.ins)
        assert got == (s, d, i), f"{ref!r} vs {hyp!r}: S/D/I {got}, expected {(s, d, i)}"
        if n is not None:
            assert c.ref_words == n, f"{ref!r}: {c.ref_words} ref words, expected {n}"
        return c

    c = check("the cat sat", "the cat sat", 0, 0, 0, 3)
    assert c.wer == 0.0
    c = check("the cat sat", "", 0, 3, 0, 3)
    assert c.wer == 1.0
    c = check("", "hello there", 0, 0, 2, 0)
    assert c.wer == float("inf")
    assert check("", "", 0, 0, 0, 0).wer == 0.0
    c = check("the cat sat on the mat", "the dog sat on the mat", 1, 0, 0, 6)
    assert abs(c.wer - 1 / 6) < 1e-12
    check("the cat sat on the mat", "the cat on the mat", 0, 1, 0)
    check("the cat sat on the mat", "the cat sat down on the mat", 0, 0, 1)
    check("a b c d e", "x a b d e", 0, 1, 1)   # ins x, del c
    assert score("a b c d", "x a b d y").errors == 3
    assert align("a b".split(), "b a".split()).errors == 2
    # punctuation and case only
    check("HE HOPED THERE WOULD BE STEW FOR DINNER",
          " He hoped, there would be stew for dinner!", 0, 0, 0)
    check("FLOUR FATTENED SAUCE", "flour-fattened sauce.", 0, 0, 0)
    check("DON'T YOU KNOW", "Do not you know?", 0, 0, 0)
    check("I WON'T GO", "I will not go", 0, 0, 0)
    check("TOM'S HAT", "Tom's hat.", 0, 0, 0)
    check("'TWAS 'QUOTED' WORD", "it was \"quoted\" word", 0, 0, 0)
    check("MISTER SMITH", "Mr. Smith", 0, 0, 0)
    check("THE COLOUR OF HONOUR", "The color of honor.", 0, 0, 0)
    check("THAT SAME DISHONOURED BOSOM", "that same dishonored bosom", 0, 0, 0)
    check("FOUR HOURS OF OUR TOUR", "four hours of our tour", 0, 0, 0)
    check("HIS BELLY COUNSELLED HIM", "His belly counseled him.", 0, 0, 0)
    check("TWENTY ONE DAYS", "21 days", 0, 0, 0)
    check("IN EIGHTEEN FIFTY", "In 1850.", 0, 0, 0)
    check("THE THIRD TIME", "the 3rd time", 0, 0, 0)
    check("ONE THOUSAND TWO HUNDRED", "1,200", 0, 0, 0)
    check("FIVE DOLLARS", "$5", 0, 0, 0)
    check("TWO THOUSAND DOLLARS", "$2,000", 0, 0, 0)
    check("CAFE", "café", 0, 0, 0)
    check("WELL", "Well, uh, um...", 0, 0, 0)
    # number helpers
    assert cardinal(0) == "zero" and cardinal(15) == "fifteen" and cardinal(40) == "forty"
    assert cardinal(101) == "one hundred one"
    assert cardinal(2024) == "two thousand twenty four"
    assert cardinal(9999) == "nine thousand nine hundred ninety nine"
    assert cardinal(1905) == "nineteen oh five" and cardinal(1500) == "fifteen hundred"
    assert ordinal(1) == "first" and ordinal(12) == "twelfth" and ordinal(20) == "twentieth"
    assert ordinal(22) == "twenty second" and ordinal(100) == "one hundredth"
    # corpus WER is total errors / total reference words, not a mean of ratios
    corp = Corpus()
    corp.add("a b c d e f g h i j", "a b c d e f g h i j")   # 0 / 10
    corp.add("x", "y")                                       # 1 / 1
    assert abs(corp.wer - 1 / 11) < 1e-12, corp.wer
    print("wer.py selftest: ok")


def main():
    if sys.argv[1:] == ["--selftest"]:
        selftest()
        return
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    ref, hyp = sys.argv[1:]
    c = score(ref, hyp)
    print(f"ref: {normalize(ref)}\nhyp: {normalize(hyp)}")
    print(f"words {c.ref_words}  S {c.sub}  D {c.dele}  I {c.ins}  WER {100 * c.wer:.2f}%")


if __name__ == "__main__":
    main()
