#!/usr/bin/python3
"""A Python reference for torchtext 0.14.1's GPT-2 BPE tokenizer (whose C++ op Debian's torchtext lacks).

Pre-tokenisation emulates torchtext's RE2 pattern with python3-regex: RE2's \\s is [\\t\\n\\f\\r ] (ASCII
only) and torchtext adds \\v, so the pattern spells those characters out instead of Python's Unicode
\\s; there is no (?!\\S) lookahead, and torchtext's post-processing (a whitespace run gives its last
space to the next token) follows. The BPE merges are OpenAI's encoder.py algorithm.
"""
import json

import regex

PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\t\n\v\f\r \p{L}\p{N}]+|[\t\n\v\f\r ]+""")
ASCII_SPACE = set(" \t\n\v\f\r")  # C isspace in the "C" locale


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def pre_tokenize(text):
    tokens, prepend_space = [], False
    matches = PATTERN.findall(text)
    for k, tok in enumerate(matches):
        if all(c in ASCII_SPACE for c in tok):
            prepend_space = False
            if k == len(matches) - 1:
                tokens.append(tok)
            else:
                if len(tok) > 1:
                    tokens.append(tok[:-1])
                if tok[-1] == " ":
                    prepend_space = True
                else:
                    tokens.append(tok[-1])
        elif prepend_space:
            tokens.append(" " + tok)
            prepend_space = False
        else:
            tokens.append(tok)
    return tokens


class GPT2BPE:
    def __init__(self, encoder_json, vocab_bpe):
        with open(encoder_json, encoding="utf-8") as f:
            self.encoder = json.load(f)
        with open(vocab_bpe, encoding="utf-8") as f:
            merges = f.read().split("\n")[1:-1]
        self.ranks = {tuple(m.split()): i for i, m in enumerate(merges)}
        self.byte_encoder = bytes_to_unicode()
        self.cache = {}

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token)
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            bigram = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if bigram not in self.ranks:
                break
            first, second = bigram
            new, i = [], 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new.extend(word[i:])
                    break
                new.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new.append(first + second)
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            word = tuple(new)
        self.cache[token] = list(word)
        return self.cache[token]

    def encode(self, text):
        pieces = []
        for tok in pre_tokenize(text):
            pieces.extend(self.bpe("".join(self.byte_encoder[b] for b in tok.encode("utf-8"))))
        return [self.encoder[p] for p in pieces], pieces
