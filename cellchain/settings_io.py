"""Settings as a file (issue 22): export every setting of an End board, import them back - for a
backup before a firmware update, or to set up a second pack the same way.

The file is JSON: ``{"format": "cellchain-settings/1", "settings": {name: value, ...}}`` with
every field of ``core.settings.FIELDS`` and ``name`` (the password never leaves the board).
An import is checked as a whole first, with the board's own rules (``core.settings.check`` on
the complete set): one field out of range, an unknown name or a missing field refuses the whole
file and nothing is written. A good file is then written field by field in an order the board
accepts (each write is checked by the board against the set in force, so e.g. a new V-max goes
in before a V-balance above the old V-max); fields that already have the value cost nothing.
Shared by ``cellchain settings export|import`` and the dashboard's export/import buttons.
"""
import json

FORMAT = "cellchain-settings/1"


class ImportRefused(ValueError):
    pass


def export_text(settings):
    """The file's text for a settings dict as the board answered ``S?``."""
    body = {k: v for k, v in settings.items() if k not in ("pw_hash", "pw_salt")}
    return json.dumps({"format": FORMAT, "settings": body}, indent=1, sort_keys=True) + "\n"


def parse(text):
    """The settings dict of a file, or ImportRefused (not JSON, wrong format)."""
    try:
        d = json.loads(text)
    except ValueError as e:
        raise ImportRefused("not a settings file (not JSON: %s)" % e) from None
    if not isinstance(d, dict) or d.get("format") != FORMAT or not isinstance(d.get("settings"), dict):
        raise ImportRefused("not a settings file (format %r, want %r)" % (
            d.get("format") if isinstance(d, dict) else None, FORMAT))
    return d["settings"]


def check(new, rules):
    """None when ``new`` (a complete settings dict) is valid as a whole by the board's rules
    (``rules`` = core.settings), else the reason. Refuses unknown and missing fields."""
    names = set(rules.FIELD_NAMES) | {"name"}
    unknown = sorted(set(new) - names)
    if unknown:
        return "unknown setting %s" % ", ".join(unknown)
    missing = sorted(names - set(new))
    if missing:
        return "missing setting %s" % ", ".join(missing)
    s = rules.Settings()
    for k in rules.FIELD_NAMES:
        v = new[k]
        if not isinstance(v, int) or isinstance(v, bool):
            return "%s=%r: must be a whole number" % (k, v)
        setattr(s, k, v)
    if not isinstance(new["name"], str):
        return "name: must be text"
    if any(not 32 <= ord(ch) < 127 or ch in "$!" for ch in new["name"]):
        return "name: printable ASCII only, no '$' or '!'"
    s.name = new["name"]
    return rules.check(s)


# the fields a chemistry preset sets (core.settings.apply_preset): rewritten after it
PRESET_FIELDS = ("vmax_mv", "vmin_mv", "vnom_mv", "vbal_mv", "tmin_charge_dc", "tmin_discharge_dc", "tmax_dc")


def plan(current, new, rules=None):
    """The (name, value) writes that turn ``current`` into ``new``, in an order each of which
    the board's rules accept given the ones before (tried on a local copy when ``rules`` is
    there; else the order of the file with V-max/V-min widened first). A chemistry change
    comes first as ``("chemistry", code)``: it is the preset (issue 20: the bare field is
    refused), after which every limit the preset moved is written back to the file's value."""
    todo = [k for k in new if str(current.get(k)) != str(new[k])]
    out = []
    if "chemistry" in todo:
        todo.remove("chemistry")
        out.append(("chemistry", new["chemistry"]))
        if rules is None:
            todo = [k for k in PRESET_FIELDS if k in new] + [k for k in todo if k not in PRESET_FIELDS]
    if rules is None:
        first = [k for k in ("vmax_mv", "vmin_mv") if k in todo]
        return out + [(k, new[k]) for k in first + [k for k in todo if k not in first]]
    s = rules.Settings()
    for k in rules.FIELD_NAMES:
        if k in current:
            setattr(s, k, current[k])
    if out and rules.apply_preset(s, new["chemistry"]) is None:
        todo = [k for k in new if k != "chemistry" and str(getattr(s, k, None)) != str(new[k])]
    while todo:
        progress = False
        for k in list(todo):
            if rules.apply(s, k, new[k]) is None:
                out.append((k, new[k]))
                todo.remove(k)
                progress = True
        if not progress:
            # no single write is accepted next (e.g. the set in force is itself invalid): the
            # rest in the file's order, the board says which one it refuses
            out += [(k, new[k]) for k in todo]
            break
    return out


def import_settings(current, new, write, rules=None, preset=None):
    """Check ``new`` as a whole, then write it with ``write(name, value)`` (None or the board's
    refusal); a chemistry change goes through ``preset(name)`` (the chemistry's name, e.g.
    "nmc"; None or the refusal) first. Returns the list of names written; raises ImportRefused
    (nothing written when the whole-file check fails; the names already written and the
    board's reason otherwise)."""
    if rules is not None:
        why = check(new, rules)
        if why is not None:
            raise ImportRefused("refused, nothing written: %s" % why)
    done = []
    for name, value in plan(current, new, rules):
        if name == "chemistry" and preset is not None:
            names = getattr(rules, "CHEMISTRY_NAMES", ("unknown", "lifepo4", "lto", "nmc", "nca"))
            why = preset(names[value]) if 0 < value < len(names) else "chemistry=%s: unknown" % value
        else:
            why = write(name, str(value))
        if why is not None:
            raise ImportRefused("the board refused %s=%s (%s); written before it: %s" % (
                name, value, why, ", ".join(done) or "nothing"))
        done.append(name)
    return done
