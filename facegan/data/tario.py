"""Read a whole WebDataset shard into memory and split it into samples, fast.

WebDataset opens the URL (files, pipe:, http, object stores through pipe:); the parse of the
tar itself is done here over the bytes in memory: about 10x faster per sample than iterating a
tarfile stream, which was the loader's largest cost for small images. ustar, GNU long names
and PAX path records are understood; other member types are skipped.
"""

import webdataset as wds

BLOCK = 512
PLAIN = (b"0", b"\0")


class TarError(ValueError):
    pass


def read_url(url: str) -> bytes:
    stream = wds.gopen(url, "rb")
    try:
        return stream.read()
    finally:
        stream.close()


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
