"""json.dumps / json.loads stand-in for the 32-bit measurement port (no extmod there)."""


def dumps(o):
    if o is None:
        return "null"
    if o is True:
        return "true"
    if o is False:
        return "false"
    if isinstance(o, (int, float)):
        return repr(o)
    if isinstance(o, str):
        return '"' + o.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(o, dict):
        return "{" + ", ".join(dumps(str(k)) + ": " + dumps(v) for k, v in o.items()) + "}"
    return "[" + ", ".join(dumps(v) for v in o) + "]"


def loads(s):
    raise ValueError("json.loads is not available on this build")
