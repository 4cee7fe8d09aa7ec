"""Serving models locally: `kb llm serve` profiles (vLLM on a GPU box; llama.cpp on a CPU through
the prebuilt `xllamacpp` wheels) and the model files the CPU profiles serve (the tiny test model,
the assembled Qwen2.5 reader)."""
