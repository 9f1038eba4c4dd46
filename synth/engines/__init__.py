"""Engines: base.py (engine-neutral request and response types), configs.py (engine configs, importable
without Ray), start.py (starts the engine a config names), vllm_actor.py (vLLM replicas as Ray actors
and their pool), openai_api.py (an OpenAI-compatible server),
capabilities.py (the preflight probe of what a server supports: structured output, a continued
prefix, seeds), http_limits.py (what synth accepts from an HTTP server: bounded bodies, validated fields)."""
