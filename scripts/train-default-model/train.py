"""Train the project's embedded default model: a small Llama on the King James Bible (Debian's bible-kjv-text).

    /usr/bin/python3 scripts/train-default-model/train.py --out packages/kernels/default-model

Steps: extract the text with Debian's `bible` program, split by book (the trailing books holding >= 5% of the
characters are the validation split), learn a byte-level BPE on the training split (bpe.py), train a Llama
(RMSNorm, RoPE with Hugging Face's rotate_half, GQA, SwiGLU, tied embeddings) with AdamW and a cosine schedule,
then write a Hugging Face directory (config.json, f16 model.safetensors, tokenizer files) and the held-out text
that scripts/perplexity.mjs evaluates. See README.md in this folder for the recipe and the figures.
"""
import argparse
import json
import math
import os
import re
import struct
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe import ByteLevelBpe, check_ascii, save_json, train_bpe  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BOS, EOS = '<s>', '</s>'
VERSE = re.compile(r'^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$')


# data -----------------------------------------------------------------------------------------------------------

def read_kjv():
    """[(book, [verse text, ...]), ...] in canonical order, from `bible -f` (one reference-prefixed verse a line)"""
    out = subprocess.run(['bible', '-f', 'gen1:1-rev22:21'], check=True, capture_output=True, text=True,
                         env={**os.environ, 'COLUMNS': '100000'}).stdout
    books = []
    for line in out.splitlines():
        m = VERSE.match(line)
        if m is None:
            raise ValueError(f'unexpected line from bible: {line!r}')
        book, text = m.group(1), m.group(4).strip()
        if not books or books[-1][0] != book:
            books.append((book, []))
        books[-1][1].append(text)
    return books


def split_books(books, fraction):
    """the trailing books holding at least `fraction` of all characters are the validation split"""
    sizes = [sum(len(v) + 1 for v in verses) for _, verses in books]
    total, acc, k = sum(sizes), 0, len(books)
    while acc < fraction * total:
        k -= 1
        acc += sizes[k]
    return books[:k], books[k:]


def book_text(verses):
    return ''.join(v + '\n' for v in verses)


def token_stream(tok, books):
    """tokens of the books (each verse a line, EOS after each book) and the offsets where verses start"""
    ids, starts = [], []
    eos = tok.vocab[EOS]
    for _, verses in books:
        for v in verses:
            starts.append(len(ids))
            ids.extend(tok.encode(v + '\n'))
        ids.append(eos)
    return torch.tensor(ids, dtype=torch.long), torch.tensor(starts, dtype=torch.long)


# model ----------------------------------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        hd = c['head_dim']
        self.input_layernorm = RMSNorm(c['hidden_size'], c['rms_norm_eps'])
        self.q_proj = nn.Linear(c['hidden_size'], c['num_attention_heads'] * hd, bias=False)
        self.k_proj = nn.Linear(c['hidden_size'], c['num_key_value_heads'] * hd, bias=False)
        self.v_proj = nn.Linear(c['hidden_size'], c['num_key_value_heads'] * hd, bias=False)
        self.o_proj = nn.Linear(c['num_attention_heads'] * hd, c['hidden_size'], bias=False)
        self.post_attention_layernorm = RMSNorm(c['hidden_size'], c['rms_norm_eps'])
        self.gate_proj = nn.Linear(c['hidden_size'], c['intermediate_size'], bias=False)
        self.up_proj = nn.Linear(c['hidden_size'], c['intermediate_size'], bias=False)
        self.down_proj = nn.Linear(c['intermediate_size'], c['hidden_size'], bias=False)

    def forward(self, x, cos, sin, mask):
        c = self.c
        B, T, _ = x.shape
        H, KV, hd = c['num_attention_heads'], c['num_key_value_heads'], c['head_dim']
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, H, hd).transpose(1, 2)    # [B, H, T, hd]
        k = self.k_proj(h).view(B, T, KV, hd).transpose(1, 2)   # [B, KV, T, hd]
        v = self.v_proj(h).view(B, T, KV, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=1)                  # head h uses kv head h // (H / KV)
        v = v.repeat_interleave(H // KV, dim=1)
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd)) + mask[:T, :T]
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, H * hd)
        x = x + self.o_proj(y)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c['vocab_size'], c['hidden_size'])
        self.layers = nn.ModuleList(Block(c) for _ in range(c['num_hidden_layers']))
        self.norm = RMSNorm(c['hidden_size'], c['rms_norm_eps'])
        hd, T = c['head_dim'], c['max_position_embeddings']
        inv_freq = 1.0 / (c['rope_theta'] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        freqs = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer('cos', emb.cos().float(), persistent=False)
        self.register_buffer('sin', emb.sin().float(), persistent=False)
        self.register_buffer('mask', torch.full((T, T), float('-inf')).triu(1), persistent=False)
        std = 0.02
        for name, p in self.named_parameters():
            if p.dim() == 2:
                # residual projections scaled down by depth (GPT-2)
                s = std / math.sqrt(2 * c['num_hidden_layers']) if name.endswith(('o_proj.weight', 'down_proj.weight')) else std
                nn.init.normal_(p, mean=0.0, std=s)

    def forward(self, ids):
        T = ids.shape[1]
        x = self.embed_tokens(ids)
        cos, sin = self.cos[:T], self.sin[:T]
        for layer in self.layers:
            x = layer(x, cos, sin, self.mask)
        return self.norm(x) @ self.embed_tokens.weight.t()  # tied LM head

    def hf_state_dict(self):
        """tensors under Hugging Face LlamaForCausalLM names (no lm_head: tied)"""
        out = {'model.embed_tokens.weight': self.embed_tokens.weight, 'model.norm.weight': self.norm.weight}
        for i, l in enumerate(self.layers):
            p = f'model.layers.{i}.'
            out[p + 'input_layernorm.weight'] = l.input_layernorm.weight
            out[p + 'post_attention_layernorm.weight'] = l.post_attention_layernorm.weight
            for n in ('q_proj', 'k_proj', 'v_proj', 'o_proj'):
                out[p + f'self_attn.{n}.weight'] = getattr(l, n).weight
            for n in ('gate_proj', 'up_proj', 'down_proj'):
                out[p + f'mlp.{n}.weight'] = getattr(l, n).weight
        return {k: v.detach() for k, v in out.items()}


def write_safetensors(path, tensors):
    """f16 safetensors, tensors sorted by name"""
    names = sorted(tensors)
    header, blobs, offset = {'__metadata__': {'format': 'pt'}}, [], 0
    for n in names:
        data = tensors[n].to(torch.float16).contiguous().numpy().tobytes()
        header[n] = {'dtype': 'F16', 'shape': list(tensors[n].shape), 'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# evaluation -----------------------------------------------------------------------------------------------------

def windows(ids, bos, ctx):
    """non-overlapping windows of ctx - 1 tokens, each preceded by BOS (what scripts/perplexity.mjs evaluates)"""
    n = ctx - 1
    return [[bos] + ids[i:i + n] for i in range(0, len(ids) - 1, n) if len(ids[i:i + n]) > 0]


@torch.no_grad()
def eval_nll(model, wins):
    """(sum of negative log-likelihoods, number of predicted tokens) over windows; the BOS is never predicted"""
    model.eval()
    total, count = 0.0, 0
    for w in wins:
        x = torch.tensor([w[:-1]])
        y = torch.tensor([w[1:]])
        logits = model(x).double()
        total += F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1), reduction='sum').item()
        count += y.numel()
    model.train()
    return total, count


# main -----------------------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', required=True, help='Hugging Face model directory to write')
    ap.add_argument('--vocab', type=int, default=4096)
    ap.add_argument('--dim', type=int, default=256)
    ap.add_argument('--layers', type=int, default=4)
    ap.add_argument('--heads', type=int, default=8)
    ap.add_argument('--kv-heads', type=int, default=4)
    ap.add_argument('--ffn', type=int, default=688)
    ap.add_argument('--ctx', type=int, default=256)
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--steps', type=int, default=None, help='total steps (with --decay-start: replays a run exactly)')
    ap.add_argument('--decay-start', type=int, default=None, help='step where the LR starts its linear decay')
    ap.add_argument('--time-budget', type=float, default=22.0,
                    help='minutes of training when --steps is not given: the decay starts at 75%% of it')
    ap.add_argument('--decay-fraction', type=float, default=0.25, help='share of all steps spent decaying')
    ap.add_argument('--lr', type=float, default=2e-3)
    ap.add_argument('--min-lr', type=float, default=1e-4)
    ap.add_argument('--warmup', type=int, default=50)
    ap.add_argument('--weight-decay', type=float, default=0.1)
    ap.add_argument('--val-fraction', type=float, default=0.05)
    ap.add_argument('--eval-every', type=int, default=200, help='steps between evaluations on 40 validation windows')
    ap.add_argument('--seed', type=int, default=1234)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--heldout-chars', type=int, default=40000, help='size of the held-out excerpt kept in the repo')
    ap.add_argument('--bench', type=int, default=0, help='only time this many steps')
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.time()

    books = read_kjv()
    train_books, val_books = split_books(books, args.val_fraction)
    train_text = ''.join(book_text(v) for _, v in train_books)
    val_text = ''.join(book_text(v) for _, v in val_books)
    check_ascii(train_text + val_text)
    print(f'corpus: {len(books)} books, {sum(len(v) for _, v in books)} verses; train {len(train_books)} books '
          f'({len(train_text)} chars), validation {len(val_books)} books {val_books[0][0]}..{val_books[-1][0]} '
          f'({len(val_text)} chars)', flush=True)

    merges = train_bpe(train_text, args.vocab - 2 - 256)
    tok = ByteLevelBpe(merges, [BOS, EOS])
    assert len(tok.vocab) == args.vocab, len(tok.vocab)
    assert tok.decode(tok.encode(val_text)) == val_text
    train_ids, train_starts = token_stream(tok, train_books)
    val_ids, _ = token_stream(tok, val_books)
    print(f'bpe: {len(merges)} merges in {time.time() - t0:.0f} s; train {len(train_ids)} tokens '
          f'({len(train_text) / len(train_ids):.2f} chars/token), validation {len(val_ids)} tokens', flush=True)

    c = {
        'architectures': ['LlamaForCausalLM'],
        'model_type': 'llama',
        'hidden_size': args.dim,
        'intermediate_size': args.ffn,
        'num_hidden_layers': args.layers,
        'num_attention_heads': args.heads,
        'num_key_value_heads': args.kv_heads,
        'head_dim': args.dim // args.heads,
        'hidden_act': 'silu',
        'rms_norm_eps': 1e-5,
        'rope_theta': 10000.0,
        'rope_scaling': None,
        'max_position_embeddings': args.ctx,
        'vocab_size': args.vocab,
        'tie_word_embeddings': True,
        'attention_bias': False,
        'mlp_bias': False,
        'bos_token_id': tok.vocab[BOS],
        'eos_token_id': tok.vocab[EOS],
        'torch_dtype': 'float16',
    }
    model = Llama(c)
    n_params = sum(p.numel() for p in model.parameters())
    print(f'model: {n_params} parameters ({n_params / 1e6:.2f}M), config {json.dumps({k: c[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size", "vocab_size", "max_position_embeddings")})}', flush=True)

    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': args.weight_decay},
                             {'params': no_decay, 'weight_decay': 0.0}], lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(args.seed)
    bos = tok.vocab[BOS]
    # training windows start at a verse start: [BOS] + the next ctx tokens (inputs ctx, targets ctx)
    usable = train_starts[train_starts + args.ctx < len(train_ids)]
    offsets = torch.arange(args.ctx)
    val_wins = windows(val_ids.tolist(), bos, args.ctx)

    # warmup-stable-decay: linear warmup, constant LR, then a linear decay to min_lr over the last
    # `decay_fraction` of the steps. Without --steps the run is sized by wall clock (the machine is shared): the
    # decay starts when 75% of --time-budget has passed; the log prints --steps/--decay-start to replay it exactly.
    total, decay_start = args.steps, args.decay_start
    if total is not None and decay_start is None:
        decay_start = round(total * (1 - args.decay_fraction))
    if args.bench:
        total, decay_start = args.bench, args.bench

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        if decay_start is None or step < decay_start:
            return args.lr
        return args.min_lr + (args.lr - args.min_lr) * (total - step) / max(1, total - decay_start)

    t_train = time.time()
    smooth = None
    step = 0
    while total is None or step < total:
        if decay_start is None and time.time() - t_train >= 0.75 * 60 * args.time_budget:
            decay_start = step
            total = round(step / (1 - args.decay_fraction))
            print(f'decay starts at step {decay_start}; total {total} steps (replay: --steps {total} --decay-start {decay_start})', flush=True)
        starts = usable[torch.randint(len(usable), (args.batch,), generator=gen)]
        chunk = train_ids[starts[:, None] + offsets]                       # [B, ctx]
        x = torch.cat([torch.full((args.batch, 1), bos), chunk[:, :-1]], dim=1)
        y = chunk
        for g in opt.param_groups:
            g['lr'] = lr_at(step)
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        smooth = loss.item() if smooth is None else 0.95 * smooth + 0.05 * loss.item()
        if step % 25 == 0 or (total is not None and step == total - 1):
            el = time.time() - t_train
            print(f'step {step:5d} loss {loss.item():.4f} (ema {smooth:.4f}) lr {lr_at(step):.2e} '
                  f'{el:.0f} s ({el / (step + 1):.2f} s/step)', flush=True)
        if not args.bench and (step + 1) % args.eval_every == 0:
            nll, n = eval_nll(model, val_wins[:40])
            print(f'  eval step {step + 1}: validation loss {nll / n:.4f} on 40 windows', flush=True)
        step += 1
    train_seconds = time.time() - t_train
    print(f'trained {total} steps (decay from step {decay_start}) in {train_seconds:.0f} s', flush=True)
    if args.bench:
        return

    # final figures: training loss over a fixed sample of training windows, validation loss over the whole split
    eval_gen = torch.Generator().manual_seed(args.seed + 1)
    sample = usable[torch.randint(len(usable), (64,), generator=eval_gen)].tolist()
    train_wins = [[bos] + train_ids[s:s + args.ctx].tolist() for s in sample]
    tr_nll, tr_n = eval_nll(model, train_wins)
    va_nll, va_n = eval_nll(model, val_wins)
    # the shipped weights are f16: evaluate those too
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    va16_nll, va16_n = eval_nll(model, val_wins)
    print(f'final: train loss {tr_nll / tr_n:.4f} (64 training windows), validation loss {va_nll / va_n:.4f} '
          f'(ppl {math.exp(va_nll / va_n):.2f}), f16 weights validation loss {va16_nll / va16_n:.4f} '
          f'(ppl {math.exp(va16_nll / va16_n):.2f}); training {train_seconds:.0f} s', flush=True)

    # held-out excerpt for scripts/perplexity.mjs: the first whole verses of the validation split up to N chars
    excerpt, n = [], 0
    for _, verses in val_books:
        for v in verses:
            if n + len(v) + 1 > args.heldout_chars:
                break
            excerpt.append(v)
            n += len(v) + 1
        else:
            continue
        break
    excerpt_text = ''.join(v + '\n' for v in excerpt)
    ex_nll, ex_n = eval_nll(model, windows(tok.encode(excerpt_text), bos, args.ctx))
    print(f'held-out excerpt ({len(excerpt_text)} chars, {ex_n} predicted tokens): loss {ex_nll / ex_n:.4f} '
          f'ppl {math.exp(ex_nll / ex_n):.3f} (torch, f16 weights in f32 math)', flush=True)

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(HERE, 'heldout.txt'), 'w') as f:
        f.write(excerpt_text)
    write_safetensors(os.path.join(args.out, 'model.safetensors'), model.hf_state_dict())
    save_json(os.path.join(args.out, 'config.json'), c)
    save_json(os.path.join(args.out, 'tokenizer.json'), tok.tokenizer_json(BOS, EOS))
    save_json(os.path.join(args.out, 'tokenizer_config.json'), {
        'tokenizer_class': 'PreTrainedTokenizerFast',
        'bos_token': BOS,
        'eos_token': EOS,
        'unk_token': None,
        'pad_token': None,
        'add_bos_token': True,
        'add_eos_token': False,
        'clean_up_tokenization_spaces': False,
        'model_max_length': args.ctx,
        # not a chat model: messages are joined as plain lines of text to continue
        'chat_template': "{% for message in messages %}{{ message['content'] + '\n' }}{% endfor %}"
    })
    save_json(os.path.join(args.out, 'generation_config.json'), {
        'bos_token_id': tok.vocab[BOS],
        'eos_token_id': tok.vocab[EOS],
        'do_sample': True,
        'temperature': 0.8,
        'top_k': 40,
        'top_p': 0.95,
        'repetition_penalty': 1.1,
        'max_length': args.ctx
    })
    print(f'wrote {args.out} and {os.path.join(HERE, "heldout.txt")}; total {time.time() - t0:.0f} s', flush=True)


if __name__ == '__main__':
    main()
