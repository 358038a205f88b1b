"""A small byte-level BPE (GPT-2 style) in plain Python: trainer, encoder and a Hugging Face tokenizer.json writer.

Pre-tokenization is the GPT-2 regex (what Hugging Face's `ByteLevel(use_regex=true)` and llama.cpp's
`tokenizer.ggml.pre = "gpt-2"` run). Python's `re` has no \\p{L} / \\p{N}, so this port spells them as ASCII
classes; `check_ascii` makes sure the corpus never needs more. Encoding merges the lowest-ranked adjacent pair of a
pre-token first (leftmost on ties), as Hugging Face's BPE model and llama.cpp's llm_tokenizer_bpe do, so ids match
theirs (test/default-model.test.ts checks this against @huggingface/tokenizers and the GGUF tokenizer).
"""
import json
import re
from collections import Counter, defaultdict

# the GPT-2 pattern with \p{L} -> [A-Za-z], \p{N} -> [0-9] (exact on ASCII text)
GPT2_PATTERN = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")


def check_ascii(text):
    bad = sorted({c for c in text if ord(c) > 127})
    if bad:
        raise ValueError(f'non-ASCII characters {bad[:10]}: the ASCII regex would not match the GPT-2 one')


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character map (what ByteLevel uses)."""
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('\xa1'), ord('\xac') + 1)) + list(range(ord('\xae'), ord('\xff') + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_TO_CHAR = bytes_to_unicode()


def pre_tokenize(text):
    """pre-tokens of `text`, each as a string of byte-level characters"""
    return [''.join(BYTE_TO_CHAR[b] for b in piece.encode('utf-8')) for piece in GPT2_PATTERN.findall(text)]


def train_bpe(text, n_merges):
    """Learn `n_merges` merges: most frequent adjacent pair first, ties broken by the smaller (left, right) pair."""
    check_ascii(text)
    word_counts = Counter(pre_tokenize(text))
    words = [list(w) for w in word_counts]
    counts = [word_counts[w] for w in word_counts]
    pair_counts = Counter()
    pair_words = defaultdict(set)  # pair -> indices of words containing it
    for i, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pair_counts[(a, b)] += counts[i]
            pair_words[(a, b)].add(i)
    merges = []
    for _ in range(n_merges):
        if not pair_counts:
            break
        best = min(pair_counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        if pair_counts[best] <= 0:
            break
        merges.append(best)
        a, b = best
        merged = a + b
        for i in list(pair_words[best]):
            w = words[i]
            c = counts[i]
            # remove this word's old pairs, merge, add its new pairs
            for p in zip(w, w[1:]):
                pair_counts[p] -= c
                if pair_counts[p] <= 0:
                    del pair_counts[p]
                pair_words[p].discard(i)
            out = []
            j = 0
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    out.append(merged)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            words[i] = out
            for p in zip(out, out[1:]):
                pair_counts[p] += c
                pair_words[p].add(i)
        pair_words.pop(best, None)
        pair_counts.pop(best, None)
    return merges


class ByteLevelBpe:
    """Encoder over `merges`; ids: specials first, then the 256 byte characters in byte order, then one per merge."""

    def __init__(self, merges, specials):
        self.merges = [tuple(m) for m in merges]
        self.specials = list(specials)
        self.vocab = {}
        for s in self.specials:
            self.vocab[s] = len(self.vocab)
        for b in range(256):
            self.vocab[BYTE_TO_CHAR[b]] = len(self.vocab)
        for a, b in self.merges:
            if a + b in self.vocab:
                raise ValueError(f'merge {a!r} {b!r} makes a token that already exists')
            self.vocab[a + b] = len(self.vocab)
        self.rank = {m: r for r, m in enumerate(self.merges)}
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        self.char_to_byte = {c: b for b, c in BYTE_TO_CHAR.items()}
        self.cache = {}

    def _bpe(self, word):
        symbols = list(word)
        while len(symbols) > 1:
            best, best_rank = -1, None
            for i in range(len(symbols) - 1):
                r = self.rank.get((symbols[i], symbols[i + 1]))
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = i, r
            if best < 0:
                break
            symbols[best:best + 2] = [symbols[best] + symbols[best + 1]]
        return [self.vocab[s] for s in symbols]

    def encode(self, text):
        ids = []
        for word in pre_tokenize(text):
            got = self.cache.get(word)
            if got is None:
                got = self._bpe(word)
                self.cache[word] = got
            ids.extend(got)
        return ids

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            t = self.id_to_token[i]
            if t in self.specials:
                continue
            out.extend(self.char_to_byte[c] for c in t)
        return out.decode('utf-8', errors='replace')

    def tokenizer_json(self, bos, eos):
        """a Hugging Face tokenizer.json: ByteLevel pre-tokenizer/decoder, BPE model, BOS added by the post-processor"""
        return {
            'version': '1.0',
            'truncation': None,
            'padding': None,
            'added_tokens': [
                {'id': self.vocab[s], 'content': s, 'single_word': False, 'lstrip': False, 'rstrip': False,
                 'normalized': False, 'special': True}
                for s in self.specials
            ],
            'normalizer': None,
            'pre_tokenizer': {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': True},
            'post_processor': {
                'type': 'TemplateProcessing',
                'single': [{'SpecialToken': {'id': bos, 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}}],
                'pair': [{'SpecialToken': {'id': bos, 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}},
                         {'SpecialToken': {'id': bos, 'type_id': 1}}, {'Sequence': {'id': 'B', 'type_id': 1}}],
                'special_tokens': {bos: {'id': bos, 'ids': [self.vocab[bos]], 'tokens': [bos]}}
            },
            'decoder': {'type': 'ByteLevel', 'add_prefix_space': True, 'trim_offsets': True, 'use_regex': True},
            'model': {
                'type': 'BPE',
                'dropout': None,
                'unk_token': None,
                'continuing_subword_prefix': None,
                'end_of_word_suffix': None,
                'fuse_unk': False,
                'byte_fallback': False,
                'ignore_merges': False,
                'vocab': self.vocab,
                'merges': [f'{a} {b}' for a, b in self.merges]
            }
        }


def save_json(path, value):
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(value, f, ensure_ascii=False, indent=2)
        f.write('\n')
