#!/usr/bin/env python3
"""report.py — turns the figures a bench run recorded into report.json and REPORT.md.

    report.py WORKDIR OUTDIR

WORKDIR holds meta.json, figures.jsonl (one measured figure a line),
sections.jsonl (measured and failed parts), settings-SECTION.json and durations.
Each figure may name a bound (another figure's id, or an inline value): the
ratio is value / bound (or bound / value with ratio_mode=inverse, so that a
slowdown reads as a factor above 1).  A target is checked on the value or on
the ratio; a miss says by how much.
"""
import glob
import json
import os
import re
import sys

SECTION_ORDER = ["raw_claim", "sql_claim", "enqueue", "drain", "latency", "steady",
                 "orchestration", "choreography", "flatness", "footprint"]


def load_lines(path):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    rows.append(json.loads(line))
    return rows


def parse_target(text, on):
    """'>=0.70' -> {'op': '>=', 'limit': 0.7, 'on': 'ratio'}."""
    m = re.fullmatch(r"\s*(<=|>=)\s*([0-9.eE+-]+)\s*", text or "")
    if not m:
        return None
    return {"op": m.group(1), "limit": float(m.group(2)), "on": on or "value", "text": text.strip()}


def check(target, value, ratio):
    """Returns (result, miss_by) for a target, or (None, None) when not measurable."""
    x = ratio if target["on"] == "ratio" else value
    if x is None:
        return None, None
    lim = target["limit"]
    if target["op"] == "<=":
        if x <= lim:
            return "pass", None
        return "miss", f"{(x - lim) / lim * 100:.0f}% over ({fmt(x)} vs {target['text']})" if lim else f"{fmt(x)} vs {target['text']}"
    if x >= lim:
        return "pass", None
    return "miss", f"{(lim - x) / lim * 100:.0f}% short ({fmt(x)} vs {target['text']})"


def fmt(x, unit=""):
    if x is None:
        return "—"
    if isinstance(x, int) and not isinstance(x, bool):
        s = f"{x:,}"
    elif isinstance(x, float):
        a = abs(x)
        if a >= 1000:
            s = f"{x:,.0f}"
        elif a >= 100:
            s = f"{x:.0f}"
        elif a >= 10:
            s = f"{x:.1f}"
        elif a >= 0.01 or a == 0:
            s = f"{x:.2f}"
        else:
            s = f"{x:.4f}"
    else:
        s = str(x)
    return f"{s} {unit}".strip()


def main():
    work, out = sys.argv[1], sys.argv[2]
    with open(os.path.join(work, "meta.json")) as f:
        meta = json.load(f)
    meta["machine"]["loadavg_at_end"] = " ".join(open("/proc/loadavg").read().split()[:3])
    figures = load_lines(os.path.join(work, "figures.jsonl"))
    parts = load_lines(os.path.join(work, "sections.jsonl"))

    settings = {}
    for path in sorted(glob.glob(os.path.join(work, "settings-*.json"))):
        name = os.path.basename(path)[len("settings-"):-len(".json")]
        try:
            with open(path) as f:
                settings[name] = json.loads(f.read().strip() or "{}")
        except ValueError:
            pass
    durations = {}
    if os.path.exists(os.path.join(work, "durations")):
        for line in open(os.path.join(work, "durations")):
            n, s = line.split()
            durations[n] = int(s)

    by_id = {f["id"]: f for f in figures if "id" in f}
    rows = []
    for f in figures:
        bound = None
        if f.get("bound"):
            b = by_id.get(f["bound"])
            if b is not None:
                bound = {"id": b["id"], "name": b.get("name"), "value": b.get("value"), "unit": b.get("unit")}
            else:
                bound = {"id": f["bound"], "name": None, "value": None, "unit": None,
                         "missing": "bound figure was not measured in this run"}
        elif f.get("bound_value") is not None:
            bound = {"id": None, "name": f.get("bound_name"), "value": f.get("bound_value"),
                     "unit": f.get("bound_unit", f.get("unit"))}
        value = f.get("value")
        ratio = None
        if bound and isinstance(bound.get("value"), (int, float)) and isinstance(value, (int, float)):
            if f.get("ratio_mode") == "inverse":
                ratio = bound["value"] / value if value else None
            else:
                ratio = value / bound["value"] if bound["value"] else None
        target = parse_target(f.get("target"), f.get("target_on"))
        result, miss_by = check(target, value, ratio) if target else (None, None)
        rows.append({"id": f.get("id"), "section": f.get("section"), "name": f.get("name"),
                     "value": value, "unit": f.get("unit"), "bound": bound,
                     "ratio": round(ratio, 4) if ratio is not None else None,
                     "ratio_mode": f.get("ratio_mode", "value/bound"),
                     "target": target, "result": result, "miss_by": miss_by,
                     "note": f.get("note")})

    sections = {}
    for name in SECTION_ORDER + sorted({p["section"] for p in parts} - set(SECTION_ORDER)):
        mine = [p for p in parts if p["section"] == name]
        nfig = sum(1 for r in rows if r["section"] == name)
        if name not in durations and not mine and not nfig:
            continue
        status = "failed" if any(p["status"] == "failed" for p in mine) else "done"
        sections[name] = {"status": status, "duration_s": durations.get(name), "figures": nfig,
                          "parts": [{k: p.get(k) for k in ("part", "status", "reason")} for p in mine]}

    first = next((settings[s] for s in SECTION_ORDER if s in settings), next(iter(settings.values()), {}))
    report = {
        "meta": meta,
        "postgres_settings": first,
        "settings_by_section": settings,
        "sections": sections,
        "figures": rows,
        "summary": {"pass": sum(r["result"] == "pass" for r in rows),
                    "miss": sum(r["result"] == "miss" for r in rows),
                    "failed": [f"{s}: {p['reason']}" for s, v in sections.items()
                               for p in v["parts"] if p["status"] == "failed"]},
    }
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")

    m = meta["machine"]
    md = [f"# baton benchmark report ({meta['mode']} run)", "",
          f"- date: {meta['date']}, commit `{meta['commit']}`",
          f"- machine: {m['nproc']} cores, {m['cpu_model']}, {m['mem_total_kb'] // 1024} MB RAM, "
          f"kernel {m['kernel']}; load average at start {m['loadavg_at_start']}, at end {m['loadavg_at_end']}",
          f"- {meta['postgres_version']}; " + ", ".join(f"{k}={v}" for k, v in sorted(first.items())
                                                       if k != "server_version"),
          "- each section ran on a fresh throwaway cluster; ratios compare figures measured in this same run",
          "", "| section | figure | value | bound | ratio | target | result |",
          "|---|---|---:|---|---:|---|---|"]
    for r in rows:
        b = r["bound"]
        btxt = "—"
        if b:
            btxt = f"{fmt(b['value'], b.get('unit') or '')} ({b.get('name') or b.get('id')})" \
                if b.get("value") is not None else f"not measured ({b.get('id')})"
        t = r["target"]
        ttxt = f"{t['on']} {t['text']}" if t else ""
        res = {"pass": "pass", "miss": f"**miss**: {r['miss_by']}", None: ""}[r["result"]]
        if t and r["result"] is None:
            res = "not measurable"
        md.append(f"| {r['section']} | {r['name']} | {fmt(r['value'], r['unit'] or '')} | {btxt} | "
                  f"{fmt(r['ratio'])} | {ttxt} | {res} |")
    md.append("")
    failed = report["summary"]["failed"]
    if failed:
        md += ["## Failed", ""] + [f"- {s}" for s in failed] + [""]
    notes = [r for r in rows if r.get("note")]
    if notes:
        md += ["## Notes", ""] + [f"- {r['id']}: {r['note']}" for r in notes] + [""]
    md += [f"Targets: {report['summary']['pass']} pass, {report['summary']['miss']} miss. "
           f"Section durations (s): " + ", ".join(f"{k} {v['duration_s']}" for k, v in sections.items()), ""]
    with open(os.path.join(out, "REPORT.md"), "w") as f:
        f.write("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
