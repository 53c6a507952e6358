"""Write a tiny random-weight llama model as GGUF, for checks against a real llama.cpp server.

Usage: python tests/perf/tiny_llama_gguf.py VOCAB.gguf OUT.gguf   (needs `pip install gguf`)
VOCAB.gguf: a vocab-only llama-spm GGUF (llama.cpp ships models/ggml-vocab-llama-spm.gguf).
The model: 2 blocks, n_embd 64, 4 heads, n_ff 128, float32 weights drawn N(0, 0.02^2) with
seed 0: it runs llama.cpp's real code paths (tokenizer, prefill, decode, KV cache, server
scheduler) and writes nonsense text, which a load test does not mind.
"""

import argparse
from typing import Any

import numpy as np


def write_model(vocab_path: str, out_path: str) -> None:
    """Write the model to ``out_path`` with the tokenizer of ``vocab_path``."""
    import gguf  # not a qpsweep dependency: `pip install gguf` for this script only

    src = gguf.GGUFReader(vocab_path)

    def value(key: str) -> Any:
        return src.fields[key].contents()

    tokens = value("tokenizer.ggml.tokens")
    n_vocab, n_embd, n_head, n_ff, n_block, n_ctx = len(tokens), 64, 4, 128, 2, 4096
    w = gguf.GGUFWriter(out_path, "llama")
    w.add_name("qpsweep-tiny-llama")
    w.add_block_count(n_block)
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model(value("tokenizer.ggml.model"))
    w.add_tokenizer_pre(value("tokenizer.ggml.pre"))
    w.add_token_list(tokens)
    w.add_token_scores(value("tokenizer.ggml.scores"))
    w.add_token_types(value("tokenizer.ggml.token_type"))
    w.add_bos_token_id(value("tokenizer.ggml.bos_token_id"))
    w.add_eos_token_id(value("tokenizer.ggml.eos_token_id"))
    w.add_unk_token_id(value("tokenizer.ggml.unknown_token_id"))
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    rng = np.random.default_rng(0)

    def rand(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    w.add_tensor("token_embd.weight", rand(n_vocab, n_embd))
    w.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    w.add_tensor("output.weight", rand(n_vocab, n_embd))
    for b in range(n_block):
        p = f"blk.{b}."
        w.add_tensor(p + "attn_norm.weight", np.ones(n_embd, np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(p + name + ".weight", rand(n_embd, n_embd))
        w.add_tensor(p + "ffn_norm.weight", np.ones(n_embd, np.float32))
        w.add_tensor(p + "ffn_gate.weight", rand(n_ff, n_embd))
        w.add_tensor(p + "ffn_up.weight", rand(n_ff, n_embd))
        w.add_tensor(p + "ffn_down.weight", rand(n_embd, n_ff))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("vocab", help="a vocab-only llama-spm GGUF (its tokenizer is copied)")
    parser.add_argument("out", help="the GGUF file to write")
    args = parser.parse_args()
    write_model(args.vocab, args.out)


if __name__ == "__main__":
    main()
