"""Files of a run directory, reached without following a link synth did not make.

Output folders are often shared (NFS, a group's project folder) and may hold symbolic links someone
else planted: `DIR/swh_Latn -> ~/thesis/data`, `DIR/_work/lock -> ~/notes.txt`. Writing, truncating,
renaming onto or deleting through such a link would reach a user's file. So every read, write and
delete of a run goes through this module: each folder below the run directory is opened relative to
its parent's descriptor with O_NOFOLLOW (openat), the file itself is opened with O_NOFOLLOW and
checked not to be a link before a temporary is renamed onto it. A link anywhere below the run
directory is refused (LinkRefused, exit 2, naming it); synth never replaces it either, since the link
is the user's. The run directory itself is the path the user named (`--output`) and may be a link.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import secrets
import signal
import stat
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath
from typing import Iterator

from synth.errors import ConfigError

TMP_SUFFIX = ".tmp"  # a file being written: `.<name>.<8 random>.tmp`, renamed into place when whole
KILL_AT_ENV = "SYNTH_TEST_KILL_AT"
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # what open() would give: a 0600 temporary would hide published shards from others
DIR_MODE = 0o777  # the umask applies
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class LinkRefused(ConfigError):
    """A path synth would write or delete is (or passes through) a symbolic link it did not make."""


def link_error(root: Path, rel: str, target: str) -> LinkRefused:
    return LinkRefused(f"--output {root}: {rel} is a symbolic link to {target}, which synth did not write; synth "
                       f"never writes, replaces or deletes through a link it did not make: remove the link (synth "
                       f"then writes its own {rel} there) or use another --output")


def _parts(rel: str) -> list[str]:
    path = PurePosixPath(rel)
    parts = list(path.parts)
    if path.is_absolute() or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a plain relative path inside a run directory: {rel!r}")
    return parts


def _readlink(fd: int, name: str) -> str:
    try:
        return os.readlink(name, dir_fd=fd)
    except OSError:
        return "?"


def _lstat(fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _child_dir(fd: int, name: str, root: Path, rel: str, create: bool) -> int:
    """Open folder `name` under descriptor `fd`, never through a link (made first when `create`)."""
    for attempt in range(2):
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not create or attempt:
                raise
            with suppress(FileExistsError):
                os.mkdir(name, DIR_MODE, dir_fd=fd)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            st = _lstat(fd, name)
            if st is not None and stat.S_ISLNK(st.st_mode):
                raise link_error(root, rel, _readlink(fd, name)) from None
            raise ConfigError(f"--output {root}: {rel} is a file where synth keeps a folder; move it away or use "
                              f"another --output") from None
    raise AssertionError("unreachable")


@contextmanager
def folder(root: Path, rel_dir: str = "", create: bool = False) -> Iterator[int]:
    """A descriptor of folder `root/rel_dir`: every folder below `root` a real one, made when `create`.
    FileNotFoundError when it is missing and not `create`."""
    root = Path(root)
    if create:
        root.mkdir(parents=True, exist_ok=True)
    fds = [os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
    try:
        done: list[str] = []
        for part in _parts(rel_dir) if rel_dir else []:
            done.append(part)
            fds.append(_child_dir(fds[-1], part, root, "/".join(done), create))
        yield fds[-1]
    finally:
        for fd in fds:
            os.close(fd)


def _split(rel: str) -> tuple[str, str]:
    parts = _parts(rel)
    return "/".join(parts[:-1]), parts[-1]


def _not_a_link(fd: int, name: str, root: Path, rel: str) -> os.stat_result | None:
    st = _lstat(fd, name)
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise link_error(root, rel, _readlink(fd, name))
    return st


def _kill_point(name: str) -> None:
    """Test hook, unset in normal use: with SYNTH_TEST_KILL_AT=<file-name glob> the process SIGKILLs
    itself once the temporary copy of a matching file is written and before it is renamed into place,
    the worst moment for a crash. The resume tests stop `synth run` at named points with it."""
    pattern = os.environ.get(KILL_AT_ENV)
    if pattern and fnmatch.fnmatchcase(name, pattern):
        os.kill(os.getpid(), signal.SIGKILL)


def _new_temporary(fd: int, name: str) -> tuple[str, int]:
    """A temporary created (never taken over: O_EXCL, O_NOFOLLOW) next to `name`."""
    while True:
        tmp = f".{name}.{secrets.token_hex(4)}{TMP_SUFFIX}"
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                                dir_fd=fd)
        except FileExistsError:
            continue


def _publish(fd: int, tmp: str, name: str, root: Path, rel: str) -> None:
    """Rename the whole temporary onto `name` (refused when `name` is a link: it is not synth's)."""
    _kill_point(name)
    _not_a_link(fd, name, root, rel)
    os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
    with suppress(OSError):  # the rename itself durable; some file systems cannot sync a folder
        os.fsync(fd)


def _discard(fd: int, tmp: str, exc: BaseException, target: Path) -> None:
    """Remove the temporary this call created (O_EXCL: it is synth's, never a user's file) after a failed
    write, and name `target` in an OSError that names no file (a full disk)."""
    with suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=fd)
    if isinstance(exc, OSError) and exc.filename is None:
        exc.filename = str(target)


def write_bytes(root: Path, rel: str, data: bytes) -> None:
    """`root/rel` holds `data`, whole or not at all (a temporary next to it, then a rename)."""
    rel_dir, name = _split(rel)
    with folder(root, rel_dir, create=True) as fd:
        tmp, handle = _new_temporary(fd, name)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
                os.fchmod(out.fileno(), FILE_MODE)
            _publish(fd, tmp, name, Path(root), rel)
        except BaseException as exc:
            _discard(fd, tmp, exc, Path(root, rel))
            raise


@contextmanager
def atomic_file(root: Path, rel: str) -> Iterator[Path]:
    """A temporary next to `root/rel` for a file written in steps by a library that takes a path:
    renamed onto `rel` when the block ends, deleted if it raises."""
    rel_dir, name = _split(rel)
    with folder(root, rel_dir, create=True) as fd:
        tmp, handle = _new_temporary(fd, name)
        os.close(handle)
        try:
            yield Path(root, rel_dir, tmp)
            handle = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            try:
                os.fsync(handle)
                os.fchmod(handle, FILE_MODE)
            finally:
                os.close(handle)
            _publish(fd, tmp, name, Path(root), rel)
        except BaseException as exc:
            _discard(fd, tmp, exc, Path(root, rel))
            raise


def read_bytes(root: Path, rel: str) -> bytes:
    """The bytes of `root/rel`, never through a link (FileNotFoundError when it is missing)."""
    rel_dir, name = _split(rel)
    with folder(root, rel_dir) as fd:
        _not_a_link(fd, name, Path(root), rel)
        handle = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        with os.fdopen(handle, "rb") as file:
            return file.read()


def exists(root: Path, rel: str) -> bool:
    """Whether `root/rel` exists (a link there is refused, not followed)."""
    rel_dir, name = _split(rel)
    try:
        with folder(root, rel_dir) as fd:
            return _not_a_link(fd, name, Path(root), rel) is not None
    except FileNotFoundError:
        return False


def unlink(root: Path, rel: str) -> bool:
    """Delete the file `root/rel` (a link is refused); False when it was not there."""
    rel_dir, name = _split(rel)
    try:
        with folder(root, rel_dir) as fd:
            _not_a_link(fd, name, Path(root), rel)
            os.unlink(name, dir_fd=fd)
            return True
    except FileNotFoundError:
        return False


def rmdir(root: Path, rel: str) -> bool:
    """Remove the empty folder `root/rel`; False when it is missing or not empty."""
    rel_dir, name = _split(rel)
    try:
        with folder(root, rel_dir) as fd:
            _not_a_link(fd, name, Path(root), rel)
            os.rmdir(name, dir_fd=fd)
            return True
    except OSError:  # missing, or not empty: something else is in it; leave it
        return False


def listdir(root: Path, rel_dir: str = "") -> list[str]:
    """Names in folder `root/rel_dir` (empty when it is missing), reached without following links."""
    try:
        with folder(root, rel_dir) as fd:
            return sorted(os.listdir(fd))
    except FileNotFoundError:
        return []


def is_regular(root: Path, rel: str) -> bool:
    rel_dir, name = _split(rel)
    try:
        with folder(root, rel_dir) as fd:
            st = _lstat(fd, name)
            return st is not None and stat.S_ISREG(st.st_mode)
    except (FileNotFoundError, LinkRefused):
        return False


def open_lock(root: Path, rel: str) -> int:
    """A read-write descriptor of the lock file `root/rel`, created when missing (folders too).
    A link, a folder or an unreadable file there is refused, naming it."""
    rel_dir, name = _split(rel)
    with folder(root, rel_dir, create=True) as fd:
        try:
            return os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE, dir_fd=fd)
        except OSError as exc:
            _not_a_link(fd, name, Path(root), rel)
            raise ConfigError(f"--output {root}: cannot open the run lock {rel} ({exc.strerror}); it is not a lock "
                              f"synth can use: remove it (no synth run holds it then) or use another --output") from None


def links(root: Path, wanted) -> list[tuple[str, str]]:
    """The symbolic links below `root` that `wanted(relative name)` accepts, as (name, target),
    looking into folders `wanted` accepts too (never into a linked folder)."""
    found: list[tuple[str, str]] = []

    def walk(fd: int, prefix: str, depth: int) -> None:
        for name in sorted(os.listdir(fd)):
            rel = f"{prefix}{name}"
            st = _lstat(fd, name)
            if st is None:
                continue
            if stat.S_ISLNK(st.st_mode):
                if wanted(rel):
                    found.append((rel, _readlink(fd, name)))
            elif stat.S_ISDIR(st.st_mode) and depth < 3 and wanted(rel):
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                try:
                    walk(child, f"{rel}/", depth + 1)
                finally:
                    os.close(child)

    with folder(root) as fd:
        walk(fd, "", 0)
    return found
