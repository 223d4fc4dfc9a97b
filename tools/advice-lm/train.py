#!/usr/bin/env python3
"""Trains forkcast's bundled advice model from scratch (models/README.md).

Reads the corpus written by advice_lm_corpus (corpus.jsonl, valid.jsonl, system.txt),
trains a sentencepiece BPE tokenizer (byte fallback, digits split so numbers are copied
digit by digit), then a small llama-architecture causal LM with transformers, and saves a
Hugging Face folder (safetensors + tokenizer.model) that llama.cpp's convert_hf_to_gguf.py
turns into a GGUF. The loss is taken on the advice tokens only: the prompt is given.

Deterministic for a given seed, corpus, GPU and library versions (fixed seeds, no data
loader workers). Writes <out>/hf/, <out>/tokenizer.model and <out>/metrics.json.
"""
import argparse
import json
import math
import os
import random
import shutil
import time

import numpy as np
import sentencepiece as spm
import torch
import transformers


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="folder with corpus.jsonl, valid.jsonl, system.txt")
    p.add_argument("--out", required=True)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--ffn", type=int, default=1536)
    p.add_argument("--seq", type=int, default=256, help="max tokens of prompt + advice")
    p.add_argument("--batch", type=int, default=192)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--warmup", type=int, default=150)
    p.add_argument("--seed", type=int, default=20261201)
    p.add_argument("--max-minutes", type=float, default=5.0, help="stop early (and say so) past this")
    return p.parse_args()


def train_tokenizer(args, system, examples):
    # One line per prompt line / advice: the tokenizer never sees "\n", which becomes the
    # byte token <0x0A> both here and in llama.cpp, so both tokenize alike.
    text_path = os.path.join(args.out, "spm_input.txt")
    rng = random.Random(args.seed)
    sample = rng.sample(examples, min(len(examples), 60000))
    with open(text_path, "w", encoding="utf-8") as f:
        for line in system.splitlines():
            f.write(line + "\n")
        for ex in sample:
            for line in ex["prompt"].splitlines():
                f.write(line + "\n")
            f.write(ex["advice"] + "\n")
    prefix = os.path.join(args.out, "tokenizer")
    spm.SentencePieceTrainer.train(
        input=text_path, model_prefix=prefix, model_type="bpe", vocab_size=args.vocab,
        byte_fallback=True, split_digits=True, character_coverage=1.0,
        normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=16, seed_sentencepiece_size=200000,
        input_sentence_size=2000000, shuffle_input_sentence=True, minloglevel=2)
    os.remove(text_path)
    return spm.SentencePieceProcessor(model_file=prefix + ".model")


def encode(sp, system, examples, seq):
    prompts = sp.encode([system + ex["prompt"] for ex in examples])
    answers = sp.encode([ex["advice"] for ex in examples])
    ids = np.zeros((len(examples), seq), dtype=np.int64)
    labels = np.full((len(examples), seq), -100, dtype=np.int64)
    kept = 0
    for p, a in zip(prompts, answers):
        toks = [1] + p + a + [2]  # <s> prompt advice </s>
        if len(toks) > seq:
            continue
        ids[kept, :len(toks)] = toks
        labels[kept, len(p) + 1:len(toks)] = toks[len(p) + 1:]
        kept += 1
    return ids[:kept], labels[:kept], len(examples) - kept


def main():
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    t0 = time.time()
    system = open(os.path.join(args.data, "system.txt"), encoding="utf-8").read()
    train = [json.loads(l) for l in open(os.path.join(args.data, "corpus.jsonl"), encoding="utf-8")]
    valid = [json.loads(l) for l in open(os.path.join(args.data, "valid.jsonl"), encoding="utf-8")]
    sp = train_tokenizer(args, system, train)
    print(f"tokenizer: {sp.get_piece_size()} pieces in {time.time() - t0:.1f}s", flush=True)
    x_train, y_train, dropped = encode(sp, system, train, args.seq)
    x_valid, y_valid, _ = encode(sp, system, valid, args.seq)
    n_tokens = int((x_train != 0).sum())
    print(f"data: {len(x_train)} train pairs ({dropped} longer than {args.seq} dropped), {n_tokens} tokens, "
          f"{len(x_valid)} valid pairs, {time.time() - t0:.1f}s", flush=True)

    config = transformers.LlamaConfig(
        vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.ffn,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.heads,
        max_position_embeddings=512, rms_norm_eps=1e-5, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2)  # RoPE theta: the llama default, 10000
    device = "cuda"
    model = transformers.LlamaForCausalLM(config).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f} M parameters", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        t = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    xt = torch.from_numpy(x_train).to(device)
    yt = torch.from_numpy(y_train).to(device)
    gen = torch.Generator(device="cpu").manual_seed(args.seed)

    def batch_loss(x, y):
        # Trim the padding shared by the whole batch: most pairs are far shorter than --seq.
        length = int((y != -100).nonzero()[:, 1].max().item()) + 1
        x, y = x[:, :length], y[:, :length]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            # No attention mask: padding only follows the answer, and attention is causal.
            logits = model(input_ids=x).logits
        return torch.nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, args.vocab),
                                                 y[:, 1:].reshape(-1), ignore_index=-100)

    def valid_loss():
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(x_valid), 256):
                x = torch.from_numpy(x_valid[i:i + 256]).to(device)
                y = torch.from_numpy(y_valid[i:i + 256]).to(device)
                n = int((y[:, 1:] != -100).sum())
                total += batch_loss(x, y).item() * n
                count += n
        model.train()
        return total / count

    history = []
    t_train = time.time()
    model.train()
    step = 0
    stopped_early = False
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        idx = torch.randint(0, len(xt), (args.batch,), generator=gen).to(device)
        loss = batch_loss(xt[idx], yt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == args.steps - 1:
            entry = {"step": step, "loss": round(loss.item(), 4), "lr": lr_at(step),
                     "seconds": round(time.time() - t_train, 1)}
            if step % 500 == 0 or step == args.steps - 1:
                entry["valid_loss"] = round(valid_loss(), 4)
            history.append(entry)
            print(json.dumps(entry), flush=True)
        if time.time() - t_train > args.max_minutes * 60:
            stopped_early = True
            print(f"stopping early at step {step}: past --max-minutes {args.max_minutes}", flush=True)
            break
    final_valid = valid_loss()
    train_seconds = time.time() - t_train
    print(f"trained {step + 1} steps in {train_seconds:.1f}s; final valid loss {final_valid:.4f}", flush=True)

    hf = os.path.join(args.out, "hf")
    model.save_pretrained(hf, safe_serialization=True)
    shutil.copy(os.path.join(args.out, "tokenizer.model"), os.path.join(hf, "tokenizer.model"))
    with open(os.path.join(hf, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
                   "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False,
                   "model_max_length": 512}, f, indent=2)
    metrics = {"parameters": n_params, "steps": step + 1, "planned_steps": args.steps, "stopped_early": stopped_early,
               "batch": args.batch, "train_pairs": len(x_train), "train_tokens": n_tokens,
               "final_train_loss": history[-1]["loss"], "final_valid_loss": round(final_valid, 4),
               "train_seconds": round(train_seconds, 1), "total_seconds": round(time.time() - t0, 1),
               "config": {k: getattr(args, k) for k in ("vocab", "hidden", "layers", "heads", "ffn", "seq", "lr",
                                                         "warmup", "seed")},
               "torch": torch.__version__, "transformers": transformers.__version__,
               "sentencepiece": spm.__version__, "gpu": torch.cuda.get_device_name(0), "history": history}
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)

    # Greedy samples from the trained weights, to compare with llama.cpp's after conversion.
    model.eval()
    for ex in valid[:3]:
        ids = torch.tensor([[1] + sp.encode(system + ex["prompt"])], device=device)
        out = model.generate(ids, max_new_tokens=64, do_sample=False, eos_token_id=2, pad_token_id=2)
        print("sample:", sp.decode(out[0, ids.shape[1]:].tolist()), flush=True)


if __name__ == "__main__":
    main()
