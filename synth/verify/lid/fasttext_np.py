"""fastText supervised models (`.bin`, quantised `.ftz`) read and run in numpy: the probabilities of
fastText's own `predict`, for many short lines at once.

Why: LID scores every candidate in ~6 windows (code-switching), and one C++ `predict` per window
redoes, for every occurrence of a word, the hashing and the quantised-vector sums of its character
n-grams. fastText's hidden layer is the mean of its tokens' input rows, so a word's rows can be summed
once (all n-grams of all new words hashed in a few vectorised FNV-1a passes) and cached; a batch of
windows is then one gather, one `reduceat` and one matrix product. Same file, same tokens, same maths
as `src/dictionary.cc`, `src/quantmatrix.cc`, `src/loss.cc` of facebookresearch/fastText (tests
compare against fasttext-predict on real text and on models they write in every supported variant).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from functools import cache
from itertools import chain, repeat
from pathlib import Path
from typing import Sequence

import numpy as np

MAGIC = 793712314
EOS = "</s>"  # the token ending every line
LABEL_PREFIX = "__label__"  # fastText's default `-label`, which the model file does not store
LOSSES = {1: "hs", 2: "ns", 3: "softmax", 4: "ova"}
_SPACES = str.maketrans({c: " " for c in "\n\r\t\v\f\x00"})  # readWord's separators besides " "
_FNV_OFFSET, _FNV_PRIME = np.uint32(2166136261), np.uint32(16777619)
_WORD_NGRAM_MIX = np.uint64(116049371)
BLOCK_LINES = 2048  # lines scored at a time: (labels x lines) float32 temporaries stay in the CPU caches
CACHE_BYTES = 256 << 20  # summed word vectors kept; the cache starts over beyond this


@cache
def _blas():
    """numpy's BLAS, to run it on one thread while scoring: a block's products are too small to split,
    and spare BLAS threads spin on cores that other scoring processes need (bench/README.md)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


@dataclass
class Args:
    dim: int
    ws: int
    epoch: int
    min_count: int
    neg: int
    word_ngrams: int
    loss: int
    model: int
    bucket: int
    minn: int
    maxn: int
    lr_update_rate: int
    t: float


class _Reader:
    """Sequential reads from a memory-mapped file (arrays are views, not copies)."""

    def __init__(self, data: mmap.mmap):
        self.data, self.at = data, 0

    def unpack(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype, count: int) -> np.ndarray:
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.at)
        self.at += out.nbytes
        return out

    def cstring(self) -> bytes:
        end = self.data.find(b"\x00", self.at)
        if end < 0:
            raise ValueError("truncated fastText model: a dictionary word has no end")
        word = self.data[self.at:end]
        self.at = end + 1
        return word


def _read_matrix(reader: _Reader, quantised: bool) -> np.ndarray:
    """A DenseMatrix (a view of the file, no copy) or a QuantMatrix expanded to float32 rows."""
    if not quantised:
        m, n = reader.unpack("qq")
        return reader.array(np.float32, m * n).reshape(m, n)
    (qnorm,) = reader.unpack("?")
    m, n, codesize = reader.unpack("qqi")
    codes = reader.array(np.uint8, codesize)
    dense = _read_pq(reader, codes, m)
    if qnorm:
        norm_codes = reader.array(np.uint8, m)
        dense *= _read_pq(reader, norm_codes, m)  # (m, 1): each row's quantised norm
    return dense


def _read_pq(reader: _Reader, codes: np.ndarray, m: int) -> np.ndarray:
    """ProductQuantizer::load, then every row's code decoded (`addcode` with alpha 1)."""
    dim, nsubq, dsub, lastdsub = reader.unpack("iiii")
    ksub = 256
    centroids = reader.array(np.float32, dim * ksub)
    codes = codes.reshape(m, nsubq)
    out = np.empty((m, dim), dtype=np.float32)
    for q in range(nsubq):
        d = lastdsub if q == nsubq - 1 else dsub
        table = centroids[q * ksub * dsub:q * ksub * dsub + ksub * d].reshape(ksub, d)
        out[:, q * dsub:q * dsub + d] = table[codes[:, q]]
    return out


def _hs_tree(counts: Sequence[int]) -> list[tuple[int, int, int]]:
    """HierarchicalSoftmaxLoss::buildTree: (inner node, left child, right child), root first, so a
    node's score is known before its children's. Leaves are the labels 0..n-1, inner node i uses row
    i - n of the output matrix."""
    osz = len(counts)
    count = [int(c) for c in counts] + [10**15] * (osz - 1)
    children = []
    leaf, node = osz - 1, osz
    for i in range(osz, 2 * osz - 1):
        mini = [0, 0]
        for j in range(2):
            if leaf >= 0 and count[leaf] < count[node]:
                mini[j], leaf = leaf, leaf - 1
            else:
                mini[j], node = node, node + 1
        count[i] = count[mini[0]] + count[mini[1]]
        children.append((i, mini[0], mini[1]))
    return children[::-1]


def _fnv1a(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Dictionary::hash of many byte ranges at once (bytes as signed chars, as fastText does). Ranges
    longest first, so the ones still hashing at each byte position are a prefix."""
    signed = data.astype(np.int8).astype(np.int32).astype(np.uint32)
    order = np.argsort(-lengths, kind="stable")
    starts, lengths = starts[order], lengths[order]
    h = np.full(starts.size, _FNV_OFFSET, dtype=np.uint32)
    for t in range(int(lengths[0]) if lengths.size else 0):
        n = int(np.searchsorted(-lengths, -t, side="left"))  # ranges longer than t
        h[:n] = (h[:n] ^ signed[starts[:n] + t]) * _FNV_PRIME
    out = np.empty_like(h)
    out[order] = h
    return out


def _logits(products: np.ndarray) -> np.ndarray:
    """Matrix products in float64 rounded to float32: BLAS picks kernels by matrix shape, and float32
    sums in another order would give a row another score in another batch; float64's ~1e-16
    differences do not survive the rounding."""
    return products.astype(np.float32)


def _word_bytes(word: str) -> bytes:
    """The bytes fastText hashes for a word: UTF-8, a byte the model's file could not decode as it was
    read back (surrogateescape), and any other lone surrogate (text decoded from JSON may hold one) as
    its three surrogatepass bytes rather than an error that would stop the job."""
    try:
        return word.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return word.encode("utf-8", "surrogatepass")


class FastTextModel:
    """A supervised fastText model: `top_k` over tokenised lines, `predict` over raw lines."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with open(self.path, "rb") as file:  # mapped: GlotLID's 1.6 GB .bin is read on demand
            reader = _Reader(mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ))
        magic, version = reader.unpack("ii")
        if magic != MAGIC or version not in (11, 12):
            raise ValueError(f"{self.path}: not a fastText model (magic {magic}, version {version})")
        self.args = Args(*reader.unpack("12id"))
        if self.args.model != 3:
            raise ValueError(f"{self.path}: a fastText word-vector model, not a classifier")
        if self.args.loss not in LOSSES:
            raise ValueError(f"{self.path}: unknown fastText loss {self.args.loss}")
        if version == 11:
            self.args.maxn = 0  # fastText's own rule: old supervised models have no character n-grams
        size, self.nwords, nlabels = reader.unpack("iii")
        _, pruneidx_size = reader.unpack("qq")
        self.word_ids: dict[str, int] = {}
        labels, label_counts = [], []
        for i in range(size):
            word = reader.cstring().decode("utf-8", "surrogateescape")
            count, kind = reader.unpack("qb")
            if kind == 0:
                self.word_ids[word] = i
            else:
                labels.append(word)
                label_counts.append(count)
        self.labels = labels
        self.prune_size = pruneidx_size
        pairs = reader.array(np.int32, 2 * max(pruneidx_size, 0)).reshape(-1, 2)
        self._pruned_ids = np.full(self.args.bucket if pruneidx_size > 0 else 0, -1, dtype=np.int32)
        self._pruned_ids[pairs[:, 0]] = pairs[:, 1]  # bucket -> row after pruning (-1: pruned away)
        (quant_input,) = reader.unpack("?")
        self.input = _read_matrix(reader, quant_input)
        (qout,) = reader.unpack("?")
        output = _read_matrix(reader, quant_input and qout).astype(np.float32)
        self.loss = LOSSES[self.args.loss]
        self._output_t = np.ascontiguousarray(output.T, dtype=np.float64)
        if self.loss == "hs":
            self._tree = _hs_tree(label_counts)
            self._inner = np.ascontiguousarray(output[:len(labels) - 1], dtype=np.float64)
        x = np.arange(513, dtype=np.float32) * np.float32(16) / np.float32(512) - np.float32(8)
        self._sigmoid_table = (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)
        dim = self.input.shape[1]
        self._index: dict[str, int] = {}
        # per cached word: its rows' sum and, in the last column, how many rows (one gather for both)
        self._table = np.zeros((1024, dim + 1), dtype=np.float32)
        self._hashes = np.zeros(1024, dtype=np.uint64)  # Dictionary::hash, sign-extended as in addWordNgrams
        # a cached word costs its table row and hash plus ~240 bytes in Python (the dict entry, the str and
        # the int): 314 bytes for lid.176, measured (bench/driver_memory.py)
        self._cache_rows = max(CACHE_BYTES // (4 * (dim + 1) + 8 + 240), 1024)

    # --- tokens -> summed input rows -------------------------------------------------------------

    def _bucket_rows(self, buckets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Dictionary::pushHash on many bucket ids: (kept mask, input rows of the kept ones)."""
        if self.prune_size == 0:
            return np.zeros(buckets.size, dtype=bool), np.empty(0, dtype=np.int64)
        if self.prune_size < 0:
            return np.ones(buckets.size, dtype=bool), self.nwords + buckets
        ids = self._pruned_ids[buckets]
        kept = ids >= 0
        return kept, self.nwords + ids[kept].astype(np.int64)

    def _add_words(self, words: list[str]) -> None:
        """Sum the input rows of new words (in-vocabulary id + character n-grams) into the cache."""
        start = len(self._index)
        need = start + len(words)
        if need > self._hashes.size:
            grown = max(need, min(2 * self._hashes.size, self._cache_rows))  # never past the budget
            self._table = np.resize(self._table, (grown, self._table.shape[1]))
            self._hashes = np.resize(self._hashes, grown)
        raw = list(map(_word_bytes, words))
        table = np.zeros((len(words), self._table.shape[1]), dtype=np.float32)
        data = np.frombuffer(b"".join(raw), dtype=np.uint8)
        lengths = np.array([len(r) for r in raw], dtype=np.int64)
        if self.args.word_ngrams > 1:  # whole-word hashes, for word n-grams only
            hashes = _fnv1a(data, np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64), lengths)
            self._hashes[start:need] = hashes.astype(np.int32).astype(np.int64).astype(np.uint64)
        owners, rows = [], []
        labels = [w.startswith(LABEL_PREFIX) for w in words]
        for i, w in enumerate(words):
            wid = self.word_ids.get(w)
            if wid is not None and not labels[i]:
                owners.append(i)
                rows.append(wid)
        # character n-grams of "<word>" for every word but EOS and labels (in-vocabulary words have
        # the same ones: initNgrams computes them with the same function)
        if self.args.maxn > 0:
            grams_of = [i for i, w in enumerate(words) if w != EOS and not labels[i]]
            wrapped = [b"<" + raw[i] + b">" for i in grams_of]  # fastText's BOW and EOW
            if wrapped:
                o, r = self._ngram_rows(wrapped)
                owners.extend(np.asarray(grams_of, dtype=np.int64)[o].tolist())
                rows.extend(r.tolist())
        if rows:
            owner = np.asarray(owners, dtype=np.int64)
            row = np.asarray(rows, dtype=np.int64)
            order = np.argsort(owner, kind="stable")
            owner, row = owner[order], row[order]
            firsts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
            table[owner[firsts], :-1] = np.add.reduceat(self.input[row], firsts, axis=0)
            table[owner[firsts], -1] = np.diff(np.r_[firsts, owner.size])
        self._table[start:need] = table
        self._index.update(zip(words, range(start, need)))

    def _ngram_rows(self, wrapped: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """Dictionary::computeSubwords for many words: (word index, input row) of every kept n-gram."""
        data = np.frombuffer(b"".join(wrapped), dtype=np.uint8)
        sizes = np.array([len(w) for w in wrapped], dtype=np.int64)
        word_end = np.cumsum(sizes)
        char_start = np.flatnonzero((data & 0xC0) != 0x80)
        word_of_char = np.searchsorted(word_end, char_start, side="right")
        # boundaries: each word's character starts, then its end
        bounds = np.concatenate([char_start, word_end])
        bound_word = np.concatenate([word_of_char, np.arange(sizes.size)])
        order = np.lexsort((bounds, bound_word))
        bounds, bound_word = bounds[order], bound_word[order]
        nchars = np.bincount(word_of_char, minlength=sizes.size)
        first_bound = np.concatenate([[0], np.cumsum(nchars + 1)[:-1]])
        is_char = np.ones(bounds.size, dtype=bool)
        is_char[first_bound + nchars] = False
        g = np.flatnonzero(is_char)  # global bound index of each character start
        c = g - first_bound[bound_word[g]]  # character index inside its word
        w = bound_word[g]
        owners, starts, lengths = [], [], []
        for n in range(max(self.args.minn, 1), self.args.maxn + 1):
            ok = c + n <= nchars[w]
            if n == 1:
                ok &= (c != 0) & (c + 1 != nchars[w])
            sel = g[ok]
            owners.append(w[ok])
            starts.append(bounds[sel])
            lengths.append(bounds[sel + n] - bounds[sel])
        owner, start, length = (np.concatenate(x) for x in (owners, starts, lengths))
        buckets = (_fnv1a(data, start, length) % np.uint32(self.args.bucket)).astype(np.int64)
        kept, rows = self._bucket_rows(buckets)
        return owner[kept], rows

    # --- prediction ------------------------------------------------------------------------------

    def _rows(self, tokens: list[str]) -> np.ndarray:
        """Each token's row in the word cache, new words summed into it first."""
        index = self._index
        rows = np.fromiter(map(index.get, tokens, repeat(-1)), dtype=np.int64, count=len(tokens))
        new = np.flatnonzero(rows < 0)
        if new.size:  # only the new words' tokens are looked at again
            missing = list(dict.fromkeys(tokens[i] for i in new.tolist()))
            if len(index) + len(missing) > self._cache_rows:  # start over (a batch may overshoot)
                index.clear()
                self._add_words(list(dict.fromkeys(tokens)))
                return np.fromiter(map(index.__getitem__, tokens), dtype=np.int64, count=len(tokens))
            self._add_words(missing)
            rows[new] = np.fromiter((index[tokens[i]] for i in new.tolist()), dtype=np.int64, count=new.size)
        return rows

    def hidden(self, lines: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Each line's hidden vector (the mean of its tokens' input rows, EOS appended as fastText
        does for a line) and its number of rows (0: fastText predicts nothing)."""
        if self.args.word_ngrams > 1:
            return self._hidden_with_word_ngrams(lines)
        return self._hidden_spans([*chain.from_iterable(lines)],
                                  np.fromiter(map(len, lines), dtype=np.int64, count=len(lines)))

    def _hidden_spans(self, tokens: list[str], sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`hidden` of lines given as consecutive spans of `tokens` (`sizes` tokens each; no word n-grams)."""
        return self._hidden_rows(self._rows([*tokens, EOS]), sizes)

    def _hidden_rows(self, rows: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`_hidden_spans` from the tokens' rows in the word cache, EOS's last."""
        summed = np.zeros((sizes.size, self._table.shape[1]), dtype=np.float32)
        nonempty = sizes > 0
        if rows.size > 1:
            offsets = (np.cumsum(sizes) - sizes)[nonempty]
            summed[nonempty] = np.add.reduceat(self._table[rows[:-1]], offsets, axis=0)
        summed += self._table[rows[-1]]  # EOS ends every line: added last, as fastText adds it
        return self._mean(summed[:, :-1], summed[:, -1].astype(np.int64))

    @staticmethod
    def _mean(sums: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            return sums / counts[:, None], counts

    def _hidden_with_word_ngrams(self, lines: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """`hidden` for models with word n-grams: they hash each token with the ones after it in its
        line, EOS included."""
        flat: list[str] = []
        for tokens in lines:
            flat.extend(tokens)
            flat.append(EOS)
        sizes = np.fromiter(map(len, lines), dtype=np.int64, count=len(lines)) + 1
        rows = self._rows(flat)
        offsets = np.cumsum(sizes) - sizes
        summed = np.add.reduceat(self._table[rows], offsets, axis=0)  # every line has EOS: never empty
        sums, counts = self._add_word_ngrams(rows, sizes, summed[:, :-1], summed[:, -1].astype(np.int64))
        return self._mean(sums, counts)

    def _add_word_ngrams(self, rows, sizes, sums, counts):
        """Dictionary::addWordNgrams: hashes of each token followed by up to n-1 more in its line."""
        line = np.repeat(np.arange(sizes.size), sizes)
        hashes = self._hashes[rows]
        h = hashes
        extra_rows, extra_lines = [], []
        for d in range(1, self.args.word_ngrams):
            if h.size <= d:
                break
            valid = line[d:] == line[:-d]
            h = h[:-1] * _WORD_NGRAM_MIX + hashes[d:]  # uint64, wrapping as in C++
            buckets = (h % np.uint64(self.args.bucket)).astype(np.int64)
            kept, r = self._bucket_rows(buckets[valid])
            extra_rows.append(r)
            extra_lines.append(line[:-d][valid][kept])
        if extra_rows:
            r, l = np.concatenate(extra_rows), np.concatenate(extra_lines)
            sums = sums.copy()
            np.add.at(sums, l, self.input[r])
            counts = counts + np.bincount(l, minlength=counts.size)
        return sums, counts

    def log_probs(self, hidden: np.ndarray) -> np.ndarray:
        """Per line and label, the score fastText ranks by: log(p + 1e-5), summed along the tree's path
        for hs. float32, as fastText computes them."""
        hidden = hidden.astype(np.float64)  # products in float64, rounded to float32 (see _logits)
        if self.loss == "hs":
            return self._hs_scores(hidden)
        z = _logits(hidden @ self._output_t)
        if self.loss == "softmax":
            e = np.exp(z - z.max(axis=1, keepdims=True))
            out = e / e.sum(axis=1, keepdims=True)
        else:  # ns, ova: Loss::sigmoid, fastText's 512-entry table
            i = (z + np.float32(8)) * np.float32(512) / np.float32(8) / np.float32(2)
            out = self._sigmoid_table[np.clip(i, 0, 512).astype(np.int64)]
            out = np.where(z < -8, np.float32(0), np.where(z > 8, np.float32(1), out))
        return np.log(out + np.float32(1e-5))

    def _hs_scores(self, hidden: np.ndarray) -> np.ndarray:
        """Every label's score, root to leaf as HierarchicalSoftmaxLoss::dfs adds them (a node's
        row per step: 30x less work than a dense path matrix product)."""
        osz = len(self.labels)
        f = _logits(self._inner @ hidden.T)  # then, in place: f = 1 / (1 + exp(-z))
        np.negative(f, out=f)
        with np.errstate(over="ignore"):  # exp(-z) of a very negative z: f = 0, as in C++
            np.exp(f, out=f)
        f += np.float32(1)
        np.divide(np.float32(1), f, out=f)
        go_left = np.subtract(np.float32(1 + 1e-5), f)
        np.log(go_left, out=go_left)
        go_right = np.add(f, np.float32(1e-5), out=f)
        np.log(go_right, out=go_right)
        scores = np.empty((2 * osz - 1, hidden.shape[0]), dtype=np.float32)
        scores[-1] = 0.0
        for node, left, right in self._tree:
            np.add(scores[node], go_left[node - osz], out=scores[left])
            np.add(scores[node], go_right[node - osz], out=scores[right])
        return np.ascontiguousarray(scores[:osz].T)

    def top_k(self, lines: Sequence[Sequence[str]], k: int = 1, threshold: float = 0.0
              ) -> tuple[np.ndarray, np.ndarray]:
        """Label indices and probabilities (exp of fastText's score), best first, per line; missing
        entries (below the threshold, or a line with no tokens) have index -1 and probability 0."""
        if self.args.word_ngrams > 1:  # labels are not words: word n-grams skip them (elsewhere they add no row)
            lines = [[t for t in tokens if not t.startswith(LABEL_PREFIX)] for tokens in lines]
        return self._pick(*self.hidden(lines), k, threshold)

    def top_k_spans(self, tokens: list[str], sizes: Sequence[int], k: int = 1, threshold: float = 0.0
                    ) -> tuple[np.ndarray, np.ndarray]:
        """`top_k` of lines given as consecutive spans of `tokens`, `sizes[i]` tokens in line i (no
        list per line to build)."""
        sizes = np.asarray(sizes, dtype=np.int64)
        if self.args.word_ngrams > 1:
            bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
            return self.top_k([tokens[a:b] for a, b in zip(bounds, bounds[1:])], k, threshold)
        return self._pick(*self._hidden_spans(tokens, sizes), k, threshold)

    def top_k_coded(self, words: list[str], codes: np.ndarray, sizes: np.ndarray, k: int = 1,
                    threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """`top_k_spans` of tokens given as `codes` into `words`, each distinct token once (a
        dictionary-encoded Arrow array): each one is looked up in the word cache once."""
        if self.args.word_ngrams > 1:
            return self.top_k_spans([words[i] for i in codes.tolist()], sizes, k, threshold)
        rows = self._rows([*words, EOS])
        return self._pick(*self._hidden_rows(np.append(rows[:-1][codes], rows[-1]), np.asarray(sizes, dtype=np.int64)),
                          k, threshold)

    def _pick(self, hidden: np.ndarray, counts: np.ndarray, k: int, threshold: float
              ) -> tuple[np.ndarray, np.ndarray]:
        """The k best labels of each line from its hidden vector."""
        n = hidden.shape[0]
        k = min(k, len(self.labels))
        empty = counts == 0
        hidden[empty] = 0.0  # 0/0: fastText predicts nothing for a line without rows
        index = np.empty((n, k), dtype=np.int64)
        best = np.empty((n, k), dtype=np.float64)
        for start in range(0, n, BLOCK_LINES):
            block = slice(start, start + BLOCK_LINES)
            with _blas().limit(limits=1):
                score = self.log_probs(hidden[block])
            rows = np.arange(score.shape[0])
            for j in range(k):  # k rounds of argmax: faster than argpartition over a few hundred labels (bench/README.md)
                index[block, j] = picked = score.argmax(axis=1)
                best[block, j] = score[rows, picked]
                score[rows, picked] = -np.inf
        # below the threshold (hs prunes by score; softmax and ova by output, the same order) or no rows
        missing = (best < np.log(np.float32(threshold + 1e-5))) | empty[:, None] | ~np.isfinite(best)
        return np.where(missing, -1, index), np.where(missing, 0.0, np.exp(best))

    def predict(self, texts: Sequence[str], k: int = 1, threshold: float = 0.0) -> list[list[tuple[float, str]]]:
        """fastText `predict` of each text as one line: [(probability, label), ...] best first."""
        for text in texts:
            if "\n" in text:
                raise ValueError("predict reads one line per text; remove the newlines")
        index, probs = self.top_k([[w for w in t.translate(_SPACES).split(" ") if w] for t in texts], k, threshold)
        return [[(p, self.labels[i]) for i, p in zip(ix, pr) if i >= 0]
                for ix, pr in zip(index.tolist(), probs.tolist())]
