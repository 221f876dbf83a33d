#!/usr/bin/env python3
"""Token ids that Hugging Face `tokenizers` gives (no special tokens added), one
line of space-separated ids per string. Usage: hf_tokenize.py TOKENIZER_JSON STRINGS_JSON"""
import json
import sys

from tokenizers import Tokenizer

tok = Tokenizer.from_file(sys.argv[1])
with open(sys.argv[2], encoding="utf-8") as f:
    strings = json.load(f)
for s in strings:
    print(" ".join(str(i) for i in tok.encode(s, add_special_tokens=False).ids))
