"""The hand-written tar parser facegan's loader used before it read shards with WebDataset's
tarfile path: kept here only as the baseline of bench_loader.py (the loader no longer uses it).

It reads a whole shard into memory and splits it without tarfile: faster per sample, but a
parser of our own that every damaged-shard case has to be fuzzed against.
"""

import webdataset as wds

BLOCK = 512
PLAIN = (b"0", b"\0")


class TarError(ValueError):
    pass


def _pax_path(payload: bytes):
    """The 'path' record of a PAX extended header ("LEN path=VALUE\n" records), if any."""
    pos = 0
    while pos < len(payload):
        space = payload.find(b" ", pos)
        if space < 0:
            break
        field = payload[pos:space]
        length = int(field) if field.isdigit() else 0
        # A record is at least "LEN k=\n" and lies within the header: anything else is damage
        # (a length of 0 would otherwise never advance).
        if length <= space - pos + 1 or pos + length > len(payload):
            raise TarError(f"damaged PAX header (record length {field[:20]!r})")
        record = payload[space + 1:pos + length - 1]
        if record.startswith(b"path="):
            return record[5:]
        pos += length
    return None


def members(data: bytes):
    """(name, payload) for each regular file; TarError on a damaged header or a cut-off file."""
    off, n, long_name = 0, len(data), None
    while off + BLOCK <= n:
        header = data[off:off + BLOCK]
        if header[0] == 0:  # end-of-archive blocks
            return
        try:
            stored = int(header[148:156].split(b"\0", 1)[0].strip() or b"0", 8)
            size = int(header[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
        except ValueError:
            raise TarError(f"damaged tar header at byte {off}") from None
        if stored != sum(header[:148]) + 256 + sum(header[156:]):
            raise TarError(f"damaged tar header at byte {off} (checksum)")
        kind = header[156:157]
        start, end = off + BLOCK, off + BLOCK + size
        if end > n:
            raise TarError(f"tar member cut off at byte {n} (shard truncated)")
        if kind == b"L":  # GNU long name for the next member
            long_name = data[start:end].split(b"\0", 1)[0]
        elif kind == b"x":  # PAX extended header for the next member
            long_name = _pax_path(data[start:end]) or long_name
        elif kind in PLAIN:
            name = header[0:100].split(b"\0", 1)[0]
            if header[257:262] == b"ustar" and header[345] != 0:
                name = header[345:500].split(b"\0", 1)[0] + b"/" + name
            yield (long_name or name).decode("utf-8", "replace"), data[start:end]
            long_name = None
        else:
            long_name = None
        off = start + -(-size // BLOCK) * BLOCK


def samples(url: str, data: bytes):
    """Group consecutive members by key (the name up to the first dot of its basename)."""
    current = None
    for name, payload in members(data):
        slash = name.rfind("/")
        dot = name.find(".", slash + 1)
        if dot < 0:
            continue
        key, ext = name[:dot], name[dot + 1:].lower()
        if current is None or current["__key__"] != key:
            if current is not None:
                yield current
            current = {"__key__": key, "__url__": url}
        current[ext] = payload
    if current is not None:
        yield current


def shard_samples(url, problems, stall_s=None, keep=None):
    """The same contract as facegan.data.shard_reader.shard_samples, over the hand parser."""
    try:
        stream = wds.gopen(url, "rb")
        try:
            data = stream.read()
        finally:
            stream.close()
        for sample in samples(url, data):
            yield sample if keep is None else {k: v for k, v in sample.items() if k.startswith("__") or k in keep}
    except (OSError, TarError) as err:
        problems.append(f"{type(err).__name__}: {err}")
