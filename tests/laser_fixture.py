"""A tiny random-weight LASER model directory, in the exact files nano_laser loads.

Real LASER weights (hundreds of MB) cannot be downloaded in tests, so this writes the same formats at toy
size: LASER2 (sentencepiece model, fairseq dictionary, BiLSTM checkpoint) and LASER3 (transformer
checkpoint) for each requested language, so that `LaserEncoderPipeline(..., model_dir=directory)` runs
its real loading and encoding code and finds every file it would otherwise download.
"""

from __future__ import annotations

import argparse
import io
from collections import Counter
from pathlib import Path

import sentencepiece as spm
import torch
from nano_laser.language_list import SPM_LANGUAGE
from nano_laser.models import PAD, LaserLstmEncoder, TransformerEncoderLayer

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # fairseq Dictionary: indices 0..3
DIM = 16  # LASER2 hidden size; its BiLSTM embeds in 2 * DIM, and LASER3 must embed in the same space


def _train_spm(texts: list[str], vocab_size: int) -> tuple[bytes, list[str], Counter[str]]:
    """A unigram sentencepiece model on lower-cased text; its pieces (without spm's specials) and counts."""
    lowered = [t.lower() for t in texts if t.strip()]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lowered), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        character_coverage=1.0, hard_vocab_limit=False, num_threads=1, minloglevel=2,
    )
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())
              if not (processor.is_control(i) or processor.is_unknown(i))]
    counts = Counter(p for t in lowered for p in processor.encode(t, out_type=str))
    return model.getvalue(), pieces, counts


def _laser2_checkpoint(symbols: list[str]) -> dict:
    params = {"num_embeddings": len(symbols), "padding_idx": PAD, "embed_dim": DIM, "hidden_size": DIM,
              "num_layers": 2, "bidirectional": True, "left_pad": True, "padding_value": 0.0}
    return {"params": params, "model": LaserLstmEncoder(**params).state_dict(),
            "dictionary": {s: i for i, s in enumerate(symbols)}}


def _laser3_checkpoint(num_symbols: int) -> dict:
    """fairseq TransformerEncoder weights as LASER3 stores them, pre-norm with a final layer norm."""
    cfg = argparse.Namespace(
        encoder_embed_dim=2 * DIM, encoder_ffn_embed_dim=4 * DIM, encoder_layers=2, encoder_attention_heads=2,
        encoder_normalize_before=True, activation_fn="relu", no_scale_embedding=False,
        max_source_positions=512, sentemb_criterion="maxpool", prepend_bos=True, left_pad_source="True",
        encoder_learned_pos=False, no_token_positional_embeddings=False, layernorm_embedding=False,
    )
    dim = cfg.encoder_embed_dim
    embed = torch.randn(num_symbols, dim) * dim**-0.5
    embed[PAD] = 0
    weights: dict[str, torch.Tensor] = {"version": torch.tensor([3.0]), "embed_tokens.weight": embed,
                                        "embed_positions._float_tensor": torch.tensor([])}
    for i in range(cfg.encoder_layers):
        weights |= {f"layers.{i}.{k}": v for k, v in TransformerEncoderLayer(cfg).state_dict().items()}
    weights |= {"layer_norm.weight": 1 + 0.1 * torch.randn(dim), "layer_norm.bias": 0.1 * torch.randn(dim)}
    return {"cfg": {"model": cfg}, "model": weights}


def build_tiny_laser_dir(directory: Path, texts: list[str], laser3_langs: list[str] = ["swh_Latn"],
                         vocab_size: int = 300) -> Path:
    """Write laser2.{spm,cvocab,pt} and laser3-<code>.v1.pt (+ .spm/.cvocab for SPM_LANGUAGE) into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model, pieces, counts = _train_spm(texts, vocab_size)
    cvocab = "".join(f"{p} {counts[p]}\n" for p in pieces)
    (directory / "laser2.spm").write_bytes(model)
    (directory / "laser2.cvocab").write_text(cvocab, encoding="utf-8")
    torch.manual_seed(0)
    torch.save(_laser2_checkpoint(SPECIALS + pieces), directory / "laser2.pt")
    for n, code in enumerate(laser3_langs):
        torch.manual_seed(1 + n)
        # the dictionary is the cvocab plus <mask> (added since the checkpoint has a final layer norm)
        torch.save(_laser3_checkpoint(len(SPECIALS) + len(pieces) + 1), directory / f"laser3-{code}.v1.pt")
        if code in SPM_LANGUAGE:  # these languages have their own spm/cvocab; the others use laser2's
            (directory / f"laser3-{code}.v1.spm").write_bytes(model)
            (directory / f"laser3-{code}.v1.cvocab").write_text(cvocab, encoding="utf-8")
    return directory
