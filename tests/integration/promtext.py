"""A strict reader of the Prometheus text exposition format (version 0.0.4), for the tests:
every line must be a HELP, a TYPE or a sample of the family they announce; label values
must be escaped; histogram buckets must be cumulative, end with le="+Inf" and agree with
_count. parse() raises ValueError naming the line on the first violation."""
import math
import re

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
SAMPLE_RE = re.compile(rf"^({NAME})(\{{.*\}})? (\S+)$")


def parse_value(text):
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?", text):
        raise ValueError(f"bad value {text!r}")
    return float(text)


def parse_labels(text):
    """'{a="x",b="y"}' -> {'a': 'x', 'b': 'y'}, checking escapes."""
    labels, i = {}, 1
    while text[i] != "}":
        m = re.compile(LABEL).match(text, i)
        if not m or text[m.end():m.end() + 2] != '="':
            raise ValueError("bad label")
        name, i, value = m.group(0), m.end() + 2, []
        while text[i] != '"':
            c = text[i]
            if c == "\\":
                i += 1
                esc = {"\\": "\\", '"': '"', "n": "\n"}.get(text[i])
                if esc is None:
                    raise ValueError("bad escape in a label value")
                c = esc
            elif c == "\n":
                raise ValueError("newline in a label value")
            value.append(c)
            i += 1
        if name in labels:
            raise ValueError(f"label {name} twice")
        labels[name] = "".join(value)
        i += 1
        if text[i] == ",":
            i += 1
        elif text[i] != "}":
            raise ValueError("labels not separated by a comma")
    if i != len(text) - 1:
        raise ValueError("text after the labels")
    return labels


def parse(text):
    """{family: {"type", "help", "samples": [(name, labels, value)]}}."""
    if text and not text.endswith("\n"):
        raise ValueError("the text does not end with a newline")
    families, current = {}, None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        try:
            if line.startswith("# HELP "):
                name, _, help_text = line[7:].partition(" ")
                if not re.fullmatch(NAME, name) or name in families:
                    raise ValueError("bad or repeated HELP")
                if re.search(r"\\[^\\n]", help_text.replace("\\\\", "")):
                    raise ValueError("bad escape in HELP")
                current = families[name] = {"type": None, "help": help_text, "samples": []}
                current["name"] = name
            elif line.startswith("# TYPE "):
                name, _, kind = line[7:].partition(" ")
                if not current or current["name"] != name or kind not in TYPES:
                    raise ValueError("TYPE does not follow its HELP, or unknown type")
                current["type"] = kind
            elif line.startswith("#") or not line:
                continue
            else:
                m = SAMPLE_RE.match(line)
                if not m:
                    raise ValueError("not a sample line")
                name, labels, value = m.group(1), parse_labels(m.group(2) or "{}"), \
                    parse_value(m.group(3))
                if not current or not current["type"]:
                    raise ValueError("sample before TYPE")
                fam, kind = current["name"], current["type"]
                allowed = {fam} if kind != "histogram" else \
                    {fam + "_bucket", fam + "_sum", fam + "_count"}
                if name not in allowed:
                    raise ValueError(f"sample {name} inside family {fam}")
                if ("le" in labels) != (name == fam + "_bucket"):
                    raise ValueError("le on a sample that is not a bucket, or a bucket without")
                current["samples"].append((name, labels, value))
        except (ValueError, IndexError) as e:
            raise ValueError(f"line {n}: {e}: {line}") from None
    for fam in families.values():
        if fam["type"] == "histogram":
            check_histogram(fam)
    return families


def check_histogram(fam):
    series = {}
    for name, labels, value in fam["samples"]:
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        s = series.setdefault(key, {"buckets": [], "count": None, "sum": None})
        if name.endswith("_bucket"):
            s["buckets"].append((parse_value(labels["le"]), value))
        elif name.endswith("_count"):
            s["count"] = value
        else:
            s["sum"] = value
    for key, s in series.items():
        b = s["buckets"]
        where = f"histogram {fam['name']}{dict(key)}"
        if not b or not math.isinf(b[-1][0]):
            raise ValueError(f"{where}: no +Inf bucket")
        if any(b[i][0] >= b[i + 1][0] or b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
            raise ValueError(f"{where}: buckets not increasing and cumulative")
        if s["count"] != b[-1][1] or s["sum"] is None:
            raise ValueError(f"{where}: _count differs from +Inf, or no _sum")


def values(families, name, **match):
    """Values of the samples called `name` (a histogram's name_count works too) whose
    labels include `match`."""
    base = name if name in families else re.sub(r"_(bucket|sum|count)$", "", name)
    fam = families.get(base, {"samples": []})
    return [v for n, labels, v in fam["samples"]
            if n == name and all(labels.get(k) == str(x) for k, x in match.items())]


def total(families, name, **match):
    return sum(values(families, name, **match))
