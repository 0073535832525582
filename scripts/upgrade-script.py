#!/usr/bin/env python3
"""upgrade-script.py — assembles sql/baton--OLD--NEW.sql from the hand-written part and the code that changed.

    scripts/upgrade-script.py OLD NEW            write sql/baton--OLD--NEW.sql
    scripts/upgrade-script.py OLD NEW --check    exit 1 if the committed file is not what it would write

An upgrade script has two kinds of content (the approach PostGIS takes):
- state: tables, columns, indexes, types, data, dropped or re-signatured functions.
  Only a person can say how old rows become new ones, so this part is written by
  hand in sql/upgrade/OLD--NEW.sql (run before the code), and in
  sql/upgrade/OLD--NEW.post.sql for state that needs the new code (a trigger on
  a new function, a default calling one), run after it.
- code: functions, views and their comments, which hold no data.  Every one whose
  text differs from the OLD install script (or that is new) is appended here as
  CREATE OR REPLACE, in install order, followed by every GRANT/REVOKE of the
  install script (all idempotent).  Copying them by hand is how an upgrade script
  drifts from the code; this keeps them the same text.

The generated file is committed (a released upgrade script must not change when
sql/src changes later) and tests/integration/15_upgrade.t proves OLD + script ==
a fresh NEW install, schema for schema.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def statements(text):
    """Splits SQL text into top-level statements (quotes, dollar quotes and comments respected)."""
    out, start, i, n = [], 0, 0, len(text)
    while i < n:
        c = text[i]
        if c == '-' and text.startswith('--', i):
            j = text.find('\n', i)
            i = n if j < 0 else j + 1
        elif c == '/' and text.startswith('/*', i):
            i = text.index('*/', i) + 2
        elif c == "'":
            backslash = i > 0 and text[i - 1] in 'Ee'
            i += 1
            while True:
                if backslash and text[i] == '\\':
                    i += 2
                    continue
                if text[i] == "'":
                    if text.startswith("''", i):
                        i += 2
                        continue
                    i += 1
                    break
                i += 1
        elif c == '"':
            i = text.index('"', i + 1) + 1
        elif c == '$':
            m = re.match(r'\$([A-Za-z_][A-Za-z_0-9]*)?\$', text[i:])
            if m and not (i > 0 and (text[i - 1].isalnum() or text[i - 1] == '_')):
                tag = m.group(0)
                i = text.index(tag, i + len(tag)) + len(tag)
            else:
                i += 1
        elif c == ';':
            out.append(text[start:i + 1])
            start = i = i + 1
        else:
            i += 1
    return out


def strip_comments(stmt):
    """The statement without its leading comment lines and blank lines."""
    lines = stmt.strip('\n').split('\n')
    while lines and (not lines[0].strip() or lines[0].lstrip().startswith('--')):
        lines.pop(0)
    return '\n'.join(lines)


def key(stmt):
    """('function'|'view'|'comment'|'grant', identity) for code, None for state."""
    s = strip_comments(stmt)
    m = re.match(r'CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+([\w.]+)\s*\(', s, re.I)
    if m:
        return ('function', m.group(1) + '(' + arg_types(s[m.end():]) + ')')
    m = re.match(r'CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+([\w.]+)', s, re.I)
    if m:
        return ('view', m.group(1))
    m = re.match(r'COMMENT\s+ON\s+(FUNCTION|VIEW|COLUMN|TABLE)\s+(.*?)\s+IS\b', s, re.I | re.S)
    if m and m.group(1).upper() in ('FUNCTION', 'VIEW'):
        return ('comment', re.sub(r'\s+', '', m.group(2)))
    if re.match(r'(GRANT|REVOKE)\b', s, re.I):
        return ('grant', s)
    return None


def arg_types(rest):
    """A normalised signature from the text after 'name(': the argument types, names and defaults dropped."""
    depth, i = 1, 0
    while depth:
        depth += {'(': 1, ')': -1}.get(rest[i], 0)
        i += 1
    args = []
    for a in split_top(rest[:i - 1]):
        a = re.split(r'\s+DEFAULT\s+|\s*:=\s*|\s*=\s*', a.strip(), flags=re.I)[0]
        words = a.split()
        if not words:
            continue
        if words[0].upper() in ('IN', 'OUT', 'INOUT', 'VARIADIC'):
            if words[0].upper() == 'OUT':
                continue
            words = words[1:]
        # "name type" or just "type": a type never has the form "identifier type-word..."
        if len(words) > 1 and re.match(r'^[a-z_][a-z_0-9]*$', words[0]) and not re.match(
                r'^(double|character|timestamp|time|bit)$', words[0], re.I):
            words = words[1:]
        args.append(' '.join(words).lower())
    return ','.join(args)


def split_top(s):
    parts, depth, cur = [], 0, ''
    for ch in s:
        if ch == ',' and depth == 0:
            parts.append(cur)
            cur = ''
            continue
        depth += {'(': 1, ')': -1, '[': 1, ']': -1}.get(ch, 0)
        cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def code(path):
    """The code statements of an install script, keyed, in order."""
    with open(path) as f:
        text = f.read()
    items = []
    for st in statements(text):
        k = key(st)
        if k:
            items.append((k, strip_comments(st)))
    return items


def norm(s):
    return re.sub(r'\s+', ' ', re.sub(r'CREATE\s+OR\s+REPLACE', 'CREATE', s, flags=re.I)).strip()


def build(old, new):
    old_code = {k: norm(s) for k, s in code(os.path.join(ROOT, 'sql', 'baton--%s.sql' % old))}
    new_items = code(os.path.join(ROOT, 'sql', 'baton--%s.sql' % new))
    new_keys = {k for k, _ in new_items}
    hand_path = os.path.join(ROOT, 'sql', 'upgrade', '%s--%s.sql' % (old, new))
    with open(hand_path) as f:
        hand = f.read()
    gone = [k for k in old_code if k[0] in ('function', 'view') and k not in new_keys]
    hand_lower = hand.lower()
    missing = [k for k in gone if ('drop %s %s' % (k[0], k[1].split('(')[0])).lower() not in hand_lower]
    if missing:
        sys.exit('upgrade-script: %s no longer in the install script; drop %s in %s' % (
            ', '.join('%s %s' % k for k in missing), 'them' if len(missing) > 1 else 'it',
            os.path.relpath(hand_path, ROOT)))
    out = [hand.rstrip('\n'), '',
           '-- ---- code that changed since %s (generated by scripts/upgrade-script.py from sql/src) ----' % old]
    for k, s in new_items:
        if k[0] == 'grant' or norm(s) == old_code.get(k):
            continue
        s = re.sub(r'^CREATE\s+(FUNCTION|VIEW)', r'CREATE OR REPLACE \1', s, flags=re.I)
        out += ['', s]
    post_path = os.path.join(ROOT, 'sql', 'upgrade', '%s--%s.post.sql' % (old, new))
    if os.path.exists(post_path):
        with open(post_path) as f:
            out += ['', f.read().rstrip('\n')]
    out += ['', '-- ---- privileges, as the install script sets them (idempotent) ----']
    out += [s for k, s in new_items if k[0] == 'grant']
    return '\n'.join(out) + '\n'


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    old, new = sys.argv[1], sys.argv[2]
    text = build(old, new)
    path = os.path.join(ROOT, 'sql', 'baton--%s--%s.sql' % (old, new))
    if '--check' in sys.argv[3:]:
        cur = open(path).read() if os.path.exists(path) else ''
        if cur != text:
            sys.exit('upgrade-script: %s is not up to date: run scripts/upgrade-script.py %s %s' % (
                os.path.relpath(path, ROOT), old, new))
        return
    with open(path, 'w') as f:
        f.write(text)


if __name__ == '__main__':
    main()
