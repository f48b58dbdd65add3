"""Serving-engine backend: replay a workload against OpenAI-compatible endpoints (vLLM, SGLang, llama.cpp, …)
with and without speculative decoding, under load, and read the engine's own acceptance counters."""
