#!/usr/bin/env python3
"""Writes the binary seed inputs of tests/fuzz/corpus (journal, gguf) from their formats'
definitions, so the seeds can be regenerated and read: service/src/journal_record.hpp for
the journal, ggml/include/gguf.h (GGUF v3) for model files. Text seeds (config, catalog,
json_body) are committed as written. Run from anywhere: python3 tests/fuzz/make_seeds.py"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OBSERVATION_SIZE = 83  # env/include/forkcast/env/observation.hpp


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


def frame(payload: bytes) -> bytes:
    return struct.pack("<II", len(payload), crc32c(payload)) + payload


def s16(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<H", len(raw)) + raw


def meal_table(ids) -> bytes:
    return frame(b"C" + bytes([1]) + struct.pack("<I", len(ids)) + b"".join(s16(i) for i in ids))


def decision(event, user, candidates, chosen, ranked, slot=1, version=3, recency=True, catalog="0123456789abcdef",
             temperature=0.0) -> bytes:
    """A decision frame: format 3 (recency per candidate, the catalog version and the softmax
    temperature at the end); version=2 leaves the temperature out, version=1 is the first
    release's layout."""
    n = len(candidates)
    body = b"D" + bytes([version]) + s16(event) + s16(user) + s16("mealsim-dqn-default@1")
    body += struct.pack("<qBd", 1796400000000000, slot, 0.05)
    body += struct.pack("<I", n) + struct.pack(f"<{n}i", *candidates)
    body += struct.pack(f"<{n}f", *[0.5 - 0.1 * i for i in range(n)])
    body += struct.pack(f"<{n}d", *[1.0 / n] * n)
    body += struct.pack("<III", chosen, 0, len(ranked)) + struct.pack(f"<{len(ranked)}I", *ranked)
    body += struct.pack("<I", OBSERVATION_SIZE) + struct.pack(f"<{OBSERVATION_SIZE}f", *[i / 100 for i in range(OBSERVATION_SIZE)])
    body += struct.pack("<Qqi", 42, 7, len(ranked))
    if version >= 2:
        if recency:
            body += struct.pack("<I", n) + struct.pack(f"<{n}f", *[0.25 * (i % 3) for i in range(n)])
        else:
            body += struct.pack("<I", 0)
        body += s16(catalog)
    if version >= 3:
        body += struct.pack("<d", temperature)
    return frame(body)


def gguf_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def gguf_kv(key: str, type_id: int, value: bytes) -> bytes:
    return gguf_string(key) + struct.pack("<I", type_id) + value


GGUF_UINT32, GGUF_FLOAT32, GGUF_STRING, GGUF_ARRAY, GGUF_INT32 = 4, 6, 8, 9, 5


def gguf_file(kvs, tensors=(), alignment=32) -> bytes:
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs)
    offset = 0
    for name, dims in tensors:  # F32 tensors
        out += gguf_string(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
        out += struct.pack("<IQ", 0, offset)
        size = 4
        for d in dims:
            size *= d
        offset += (size + alignment - 1) // alignment * alignment
    out += b"\0" * ((-len(out)) % alignment)
    return out + b"\0" * offset


def write(folder, name, data: bytes):
    path = os.path.join(HERE, "corpus", folder)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, name), "wb") as f:
        f.write(data)


def main():
    ids = ["oatmeal_blueberries_walnuts", "scrambled_eggs_toast_bacon", "pancakes_maple_strawberries", "greek_salad"]
    event = "0b7f1c2e-3d4a-4b5c-8d6e-7f8091a2b3c4"
    user = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"
    table = meal_table(ids)
    one = decision(event, user, [0, 1, 2, 3], 1, [1, 0, 2], version=2)
    two = decision(event.replace("0b", "1c"), user, [3, 2], 0, [0], version=2)
    write("journal", "segment_two_decisions.fcj", table + one + two)
    write("journal", "segment_torn_tail.fcj", table + one + two[: len(two) // 2])
    bad_crc = bytearray(table + one)
    bad_crc[-5] ^= 0xFF
    write("journal", "segment_bad_checksum.fcj", bytes(bad_crc))
    write("journal", "decision_before_table.fcj", one)
    old_format = decision(event.replace("0b", "2d"), user, [0, 2], 1, [1], version=1)
    no_recency = decision(event.replace("0b", "3e"), user, [1, 3], 0, [0, 1], recency=False, catalog="", version=2)
    write("journal", "segment_format1_and_no_recency.fcj", table + old_format + no_recency)
    softmax = decision(event.replace("0b", "4f"), user, [0, 1, 3], 2, [2, 0], temperature=0.25)
    write("journal", "segment_format3_softmax.fcj", table + softmax)

    tokens = ["<unk>", "<s>", "</s>", "a", "b", "ab", "▁", "▁a"]
    vocab = [
        gguf_kv("general.architecture", GGUF_STRING, gguf_string("llama")),
        gguf_kv("general.name", GGUF_STRING, gguf_string("fuzz seed")),
        gguf_kv("llama.context_length", GGUF_UINT32, struct.pack("<I", 128)),
        gguf_kv("llama.embedding_length", GGUF_UINT32, struct.pack("<I", 8)),
        gguf_kv("llama.block_count", GGUF_UINT32, struct.pack("<I", 1)),
        gguf_kv("llama.attention.head_count", GGUF_UINT32, struct.pack("<I", 2)),
        gguf_kv("llama.attention.layer_norm_rms_epsilon", GGUF_FLOAT32, struct.pack("<f", 1e-5)),
        gguf_kv("tokenizer.ggml.model", GGUF_STRING, gguf_string("llama")),
        gguf_kv("tokenizer.ggml.tokens", GGUF_ARRAY,
                struct.pack("<IQ", GGUF_STRING, len(tokens)) + b"".join(gguf_string(t) for t in tokens)),
        gguf_kv("tokenizer.ggml.scores", GGUF_ARRAY,
                struct.pack("<IQ", GGUF_FLOAT32, len(tokens)) + struct.pack(f"<{len(tokens)}f", *range(len(tokens)))),
        gguf_kv("tokenizer.ggml.token_type", GGUF_ARRAY,
                struct.pack("<IQ", GGUF_INT32, len(tokens)) + struct.pack(f"<{len(tokens)}i", 2, 3, 3, 1, 1, 1, 1, 1)),
        gguf_kv("tokenizer.ggml.bos_token_id", GGUF_UINT32, struct.pack("<I", 1)),
        gguf_kv("tokenizer.ggml.eos_token_id", GGUF_UINT32, struct.pack("<I", 2)),
    ]
    write("gguf", "llama_vocab_only.gguf", gguf_file(vocab))
    write("gguf", "tensors_f32.gguf", gguf_file(vocab[:3], [("token_embd.weight", [8, 8]), ("output_norm.weight", [8])]))
    gpt2 = list(vocab)
    gpt2[7] = gguf_kv("tokenizer.ggml.model", GGUF_STRING, gguf_string("gpt2"))
    gpt2.append(gguf_kv("tokenizer.ggml.merges", GGUF_ARRAY,
                        struct.pack("<IQ", GGUF_STRING, 1) + gguf_string("a b")))
    write("gguf", "gpt2_vocab_merges.gguf", gguf_file(gpt2))
    write("gguf", "truncated_header.gguf", gguf_file(vocab)[:40])
    # Shapes whose element count overflows int64 on the way (docs/security.md): pinned gguf.cpp
    # computed the product before its overflow guard (2^32 * 2^32 wraps to 0), and skipped the
    # guard for a zero dimension although the product in front of it overflows (found by
    # fuzz_gguf). The files end after the tensor infos: no data of that size can follow.
    for name, shape in (("regression-element-count-overflow.gguf", [1 << 32, 1 << 32]),
                        ("regression-element-count-overflow-before-zero.gguf", [1 << 40, 1 << 40, 0])):
        write("gguf", name, b"GGUF" + struct.pack("<IQQ", 3, 1, 3) + b"".join(vocab[:3])
              + gguf_string("token_embd.weight") + struct.pack("<I", len(shape))
              + struct.pack(f"<{len(shape)}Q", *shape) + struct.pack("<IQ", 0, 0))


if __name__ == "__main__":
    main()
