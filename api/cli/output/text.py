"""Small text helpers that reproduce Go formatting verbs etcdctl's printers rely on."""

from __future__ import annotations

import math

__all__ = ["go_bool", "go_duration", "go_quote", "go_string_slice", "hex_escape", "humanize_bytes"]


def hex_escape(data: bytes) -> str:
    """etcdctl --hex: every byte as \\xNN."""
    return "".join(f"\\x{b:02x}" for b in data)


def go_quote(data: bytes | str) -> str:
    """Go's %q of a string (strconv.Quote): printable runes kept, others escaped."""
    raw = data if isinstance(data, bytes) else data.encode()
    out = ['"']
    i = 0
    while i < len(raw):
        b = raw[i]
        if b < 0x80:
            ch = chr(b)
            if ch == '"' or ch == "\\":
                out.append("\\" + ch)
            elif ch in "\a\b\f\n\r\t\v":
                out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                            "\t": "\\t", "\v": "\\v"}[ch])
            elif 0x20 <= b < 0x7F:
                out.append(ch)
            else:
                out.append(f"\\x{b:02x}")
            i += 1
            continue
        # A multi-byte UTF-8 rune: kept if valid and printable, else each byte as \xNN.
        for size in (2, 3, 4):
            try:
                rune = raw[i:i + size].decode("utf-8")
            except UnicodeDecodeError:
                continue
            out.append(rune if rune.isprintable() else f"\\u{ord(rune):04x}")
            i += size
            break
        else:
            out.append(f"\\x{b:02x}")
            i += 1
    out.append('"')
    return "".join(out)


def go_bool(value: bool) -> str:
    return "true" if value else "false"


def go_string_slice(items: list[str] | tuple[str, ...]) -> str:
    """Go's %v of a []string: [a b c]."""
    return "[" + " ".join(items) + "]"


_SI = ("B", "kB", "MB", "GB", "TB", "PB", "EB")


def humanize_bytes(n: int) -> str:
    """go-humanize's Bytes (SI units), as etcdctl prints DB sizes: 24576 -> "25 kB"."""
    if n < 10:
        return f"{n} B"
    e = int(math.floor(math.log(n) / math.log(1000)))
    val = math.floor(n / 1000**e * 10 + 0.5) / 10
    fmt = "{:.0f} {}" if val >= 10 else "{:.1f} {}"
    return fmt.format(val, _SI[e])


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String() for durations under a minute: 1.662864ms, 812µs, 2.5s."""
    ns = int(round(seconds * 1e9))
    if ns == 0:
        return "0s"
    for unit, size in (("s", 10**9), ("ms", 10**6), ("µs", 10**3)):
        if ns >= size:
            whole, frac = divmod(ns, size)
            digits = len(str(size)) - 1
            text = f"{whole}.{frac:0{digits}d}".rstrip("0").rstrip(".") if frac else str(whole)
            return text + unit
    return f"{ns}ns"
