"""The quantized CPU path for weak hardware: a sentence-transformers model exported to ONNX once,
its weights quantized to int8 dynamically (activations quantized per batch at run time), and run by
onnxruntime.

Selected with ``KB_EMBED__BACKEND=onnx-int8`` for a local or cached sentence-transformers model
(needs ``pip install 'kb-notes[onnx]'``: onnxruntime + onnx). The export reads only the local model
folder (or the HF cache), never the network, and is cached in
``KB_HOME/models/<model>/model_int8.onnx`` (0600) — the first use takes a few seconds to minutes,
later ones load directly.

Why not sentence-transformers' own ``backend="onnx"``: it goes through optimum-onnx, whose only
release (0.1.0) pins transformers < 4.58 while sentence-transformers ≥ 5 needs transformers ≥ 5 —
they cannot be installed together. This module does what that backend's
``export_dynamic_quantized_onnx_model`` does (export, then onnxruntime's ``quantize_dynamic`` with
int8 weights) with torch's exporter and onnxruntime directly, and reproduces the model's pooling
(mean or CLS, from ``1_Pooling/config.json``) and normalisation. Vectors differ slightly from fp32
ones (cosine ≥ 0.97 per chunk, mean 0.99), so the index records its own model id
(``<model>#onnx-int8``): switching backend re-embeds. Activations are quantized per batch, so a
chunk's vector also moves a little (cosine ≥ 0.98) with its batch neighbours.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kb.errors import DependencyMissingError, EmbedderError, one_line
from kb.index.embed import Embedder, ProgressFn, _normalise, model_id_for, prefixes_for

log = logging.getLogger(__name__)
SUFFIX = "#onnx-int8"


def model_folder(model: str) -> Path:
    """The local folder of a sentence-transformers model: a path, or the HF cache's snapshot
    (offline)."""
    p = Path(model).expanduser()
    if p.is_dir():
        return p.resolve()
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception as exc:
        raise EmbedderError(
            f"the model {model!r} is not on this machine, so it cannot be exported to ONNX "
            f"({type(exc).__name__}: {one_line(exc, 120)})",
            "set KB_EMBED_MODEL to a local sentence-transformers folder, or download the model "
            "once (huggingface-cli download MODEL) where the hub is reachable",
        ) from None


def _export(folder: Path, target: Path, max_len: int) -> None:
    """torch → ONNX (fp32) → int8 weights (onnxruntime's dynamic quantization), written
    atomically."""
    try:
        import onnx  # noqa: F401  (quantize_dynamic needs it)
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from transformers import AutoModel
    except ImportError as exc:
        raise DependencyMissingError(
            f"the ONNX path needs onnxruntime and onnx ({exc.name} is missing)",
            "pip install 'kb-notes[onnx]'",
        ) from None
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fp32 = target.with_name(f"model_fp32.{os.getpid()}.onnx")
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    from kb.index.embed import _quiet_hf

    _quiet_hf()
    # eager attention, traced with a padded row: sdpa's "mask is all ones → no mask" shortcut must
    # not be baked into the graph (padded batches would then attend to padding)
    model = AutoModel.from_pretrained(
        str(folder), local_files_only=True, attn_implementation="eager"
    ).eval()
    typed = "token_type_ids" in model.forward.__code__.co_varnames
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if typed else [])

    class Encoder(
        torch.nn.Module
    ):  # positional inputs → last_hidden_state (pooling is done in numpy)
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            return self.inner(
                **dict(zip(names, args, strict=True)), return_dict=True
            ).last_hidden_state

    ids = torch.ones((2, min(max_len, 16)), dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    args = (ids, mask) + ((torch.zeros_like(ids),) if typed else ())
    dyn = {n: {0: "batch", 1: "seq"} for n in names} | {"last_hidden_state": {0: "batch", 1: "seq"}}
    try:
        with torch.no_grad():
            torch.onnx.export(
                Encoder().eval(),
                args,
                str(fp32),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes=dyn,
                opset_version=17,
                dynamo=False,
            )
        # int8 weights per output channel, MatMuls only: per-tensor int8 and quantized Gather/Add
        # cost MiniLM 0.88 minimum cosine to fp32 on README paragraphs; this 0.988
        # (docs/benchmarks.md)
        quantize_dynamic(
            str(fp32),
            str(tmp),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except Exception as exc:
        raise EmbedderError(
            f"exporting {folder.name} to ONNX failed: {type(exc).__name__}: {one_line(exc, 200)}",
            "unset KB_EMBED__BACKEND to use the torch backend",
        ) from None
    finally:
        fp32.unlink(missing_ok=True)
        for extra in fp32.parent.glob(fp32.name + "*"):
            extra.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)


class OnnxEmbedder(Embedder):
    """int8 ONNX export of a sentence-transformers model, run by onnxruntime on the CPU."""

    def __init__(
        self, model: str, cache: Path, batch_size: int = 64, threads: int | None = None
    ) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError:
            raise DependencyMissingError(
                "the ONNX path needs onnxruntime", "pip install 'kb-notes[onnx]'"
            ) from None
        folder = model_folder(model)
        self.name = model
        self.model_id = model_id_for(model) + SUFFIX
        self.batch_size = batch_size
        self.query_prefix, self.passage_prefix = prefixes_for(model)
        self.max_seq_length = _max_seq_length(folder)
        self.pooling = _pooling(folder)
        slug = re.sub(r"[^a-zA-Z0-9]+", "-", model_id_for(model)).strip("-").lower()[:80]
        target = cache / slug / "model_int8.onnx"
        if not target.is_file():
            log.info("exporting %s to int8 ONNX at %s", model, target)
            _export(folder, target, self.max_seq_length)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self._session = ort.InferenceSession(str(target), opts, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tok.no_padding()
        self._tok.no_truncation()
        self.special_tokens = len(self._tok.encode("", add_special_tokens=True).ids)
        self.dim = int(self._embed_ids(["dimension probe"]).shape[1])

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed_ids(list(texts))

    def embed_documents(
        self, texts: Sequence[str], progress: ProgressFn | None = None
    ) -> np.ndarray:
        """Batches of similar length (as sentence-transformers does): padding costs compute on a
        CPU."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = _normalise(self._embed_ids([self.passage_prefix + texts[i] for i in idx]))
            if progress is not None:
                progress(len(idx))
        return out

    def _embed_ids(self, texts: list[str]) -> np.ndarray:
        encs = self._tok.encode_batch(texts, add_special_tokens=True)
        n = len(encs)
        width = min(self.max_seq_length, max(len(e.ids) for e in encs))
        ids = np.zeros((n, width), dtype=np.int64)
        mask = np.zeros((n, width), dtype=np.int64)
        for i, e in enumerate(encs):
            row = e.ids[:width]
            if len(e.ids) > width:  # truncate like sentence-transformers: keep the final [SEP]
                row = e.ids[: width - 1] + e.ids[-1:]
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(["last_hidden_state"], feed)[0]
        if self.pooling == "cls":
            return hidden[:, 0, :].astype(np.float32)
        m = mask[:, :, None].astype(np.float32)
        return (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)


def _max_seq_length(folder: Path) -> int:
    try:
        return int(json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return 512


def _pooling(folder: Path) -> str:
    try:
        cfg = json.loads((folder / "1_Pooling" / "config.json").read_text())
    except (OSError, ValueError):
        return "mean"
    return "cls" if cfg.get("pooling_mode_cls_token") else "mean"
