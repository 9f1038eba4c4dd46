"""`lid_model: hf://owner/repo[/file]`: a fastText LID model on the Hugging Face Hub (GlotLID:
`hf://cis-lmu/glotlid`, OpenLID: `hf://laurievb/OpenLID`), downloaded once into synth's cache."""

from __future__ import annotations

from pathlib import Path

from synth.errors import ConfigError
from synth.paths import cache_dir

HUB_PREFIX = "hf://"
DEFAULT_FILE = "model.bin"  # the file name GlotLID and OpenLID give their fastText model


def hub_cache_path(ref: str) -> tuple[str, str, Path]:
    """(repo id, file in the repo, where the cache keeps it) of `hf://owner/repo[/file]`."""
    parts = ref[len(HUB_PREFIX):].strip("/").split("/")
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"lid_model {ref!r}: write hf://owner/repo (file {DEFAULT_FILE}) or hf://owner/repo/file, "
                          f"e.g. hf://cis-lmu/glotlid")
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:]) or DEFAULT_FILE
    return repo_id, filename, cache_dir() / "lid" / repo_id.replace("/", "--") / filename


def resolve_lid_model(ref: str | Path) -> Path:
    """A local path as given; an `hf://` reference: the cached copy, downloaded on first use."""
    if not str(ref).startswith(HUB_PREFIX):
        return Path(ref)
    repo_id, filename, path = hub_cache_path(str(ref))
    if path.is_file():
        return path
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo_id, filename, local_dir=path.parents[filename.count("/")]))
    except Exception as exc:  # no network, no such repo or file, no huggingface_hub
        raise ConfigError(f"lid_model {ref}: cannot download {filename} from {repo_id} ({type(exc).__name__}: {exc}); "
                          f"download it by hand and set lid_model to its path, or put it at {path}") from exc
