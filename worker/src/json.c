/* json.c — a strict, allocation-free JSON validator and the quoting helpers the handlers need. */
#include "json.h"

#include <string.h>

typedef struct jp {
    const char *s, *e;
    int depth;
} jp;

static bool parse_value(jp *p);

/* Skips JSON whitespace. */
static void ws(jp *p)
{
    while (p->s < p->e && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')) p->s++;
}

/* Length of the valid UTF-8 sequence at s (limit e), or 0 when invalid. */
static int utf8_len(const unsigned char *s, const unsigned char *e)
{
    unsigned c = s[0];
    int n;
    unsigned min;
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) { n = 2; min = 0x80; c &= 0x1F; }
    else if ((c & 0xF0) == 0xE0) { n = 3; min = 0x800; c &= 0x0F; }
    else if ((c & 0xF8) == 0xF0) { n = 4; min = 0x10000; c &= 0x07; }
    else return 0;
    if (e - s < n) return 0;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    return n;
}

/* Reads 4 hex digits. */
static bool hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return false;
    }
    *out = v;
    return true;
}

/* Parses a string literal starting at '"'. */
static bool parse_string(jp *p)
{
    p->s++;
    while (p->s < p->e) {
        unsigned char c = (unsigned char)*p->s;
        if (c == '"') { p->s++; return true; }
        if (c < 0x20) return false;
        if (c == '\\') {
            if (p->e - p->s < 2) return false;
            char x = p->s[1];
            if (x == 'u') {
                unsigned v;
                if (p->e - p->s < 6 || !hex4(p->s + 2, &v) || v == 0) return false;
                p->s += 6;
                if (v >= 0xD800 && v <= 0xDBFF) {   /* a surrogate pair must follow */
                    unsigned w;
                    if (p->e - p->s < 6 || p->s[0] != '\\' || p->s[1] != 'u' || !hex4(p->s + 2, &w) ||
                        w < 0xDC00 || w > 0xDFFF) return false;
                    p->s += 6;
                } else if (v >= 0xDC00 && v <= 0xDFFF) {
                    return false;
                }
                continue;
            }
            if (!strchr("\"\\/bfnrt", x) || x == '\0') return false;
            p->s += 2;
            continue;
        }
        int n = utf8_len((const unsigned char *)p->s, (const unsigned char *)p->e);
        if (!n) return false;
        p->s += n;
    }
    return false;
}

/* PostgreSQL's numeric (what jsonb stores numbers as) holds at most 131072
   digits before the decimal point and 16383 after it, and refuses exponents
   of INT_MAX / 2 or more; JSON that jsonb cannot store is not a valid result. */
#define NUMERIC_MAX_INT_DIGITS 131072L
#define NUMERIC_MAX_SCALE      16383L
#define NUMERIC_MAX_EXPONENT   1073741823L

/* Parses a number per the JSON grammar; false also for one jsonb cannot store. */
static bool parse_number(jp *p)
{
    const char *s = p->s;
    if (s < p->e && *s == '-') s++;
    if (s >= p->e) return false;
    const char *is = s;
    if (*s == '0') s++;
    else if (*s >= '1' && *s <= '9') while (s < p->e && *s >= '0' && *s <= '9') s++;
    else return false;
    long int_len = (long)(s - is);
    const char *fs = s, *fe = s;
    if (s < p->e && *s == '.') {
        s++;
        fs = s;
        if (s >= p->e || *s < '0' || *s > '9') return false;
        while (s < p->e && *s >= '0' && *s <= '9') s++;
        fe = s;
    }
    long exp = 0;
    if (s < p->e && (*s == 'e' || *s == 'E')) {
        s++;
        bool neg = false;
        if (s < p->e && (*s == '+' || *s == '-')) neg = *s++ == '-';
        if (s >= p->e || *s < '0' || *s > '9') return false;
        while (s < p->e && *s >= '0' && *s <= '9') {
            if (exp < NUMERIC_MAX_EXPONENT) exp = exp * 10 + (*s - '0');
            s++;
        }
        if (exp >= NUMERIC_MAX_EXPONENT) return false;
        if (neg) exp = -exp;
    }
    /* Digits after the point once the exponent is applied. */
    if ((long)(fe - fs) - exp > NUMERIC_MAX_SCALE) return false;
    /* Digits before the point, counted from the first non-zero digit. */
    const char *nz = is;
    while (nz < is + int_len && *nz == '0') nz++;
    long weight;
    if (nz < is + int_len) {
        weight = (long)(is + int_len - nz) + exp;
    } else {
        const char *f = fs;
        while (f < fe && *f == '0') f++;
        weight = f < fe ? exp - (long)(f - fs) : 0;   /* zero has no digits */
    }
    if (weight > NUMERIC_MAX_INT_DIGITS) return false;
    p->s = s;
    return true;
}

/* Matches a literal word. */
static bool parse_word(jp *p, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(p->e - p->s) < n || memcmp(p->s, w, n) != 0) return false;
    p->s += n;
    return true;
}

/* Parses an array or object (open is '[' or '{'). */
static bool parse_container(jp *p, char open)
{
    char close = open == '[' ? ']' : '}';
    if (++p->depth > 256) return false;
    p->s++;
    ws(p);
    if (p->s < p->e && *p->s == close) { p->s++; p->depth--; return true; }
    for (;;) {
        ws(p);
        if (open == '{') {
            if (p->s >= p->e || *p->s != '"' || !parse_string(p)) return false;
            ws(p);
            if (p->s >= p->e || *p->s != ':') return false;
            p->s++;
            ws(p);
        }
        if (!parse_value(p)) return false;
        ws(p);
        if (p->s >= p->e) return false;
        if (*p->s == ',') { p->s++; continue; }
        if (*p->s == close) { p->s++; p->depth--; return true; }
        return false;
    }
}

/* Parses any value at the current position. */
static bool parse_value(jp *p)
{
    ws(p);
    if (p->s >= p->e) return false;
    switch (*p->s) {
    case '"': return parse_string(p);
    case '{': case '[': return parse_container(p, *p->s);
    case 't': return parse_word(p, "true");
    case 'f': return parse_word(p, "false");
    case 'n': return parse_word(p, "null");
    default: return parse_number(p);
    }
}

/* True for exactly one JSON value that jsonb accepts. */
bool json_valid(const char *s, size_t n)
{
    jp p = {s, s + n, 0};
    if (!parse_value(&p)) return false;
    ws(&p);
    return p.s == p.e;
}

/* Appends a JSON string literal of s (bad UTF-8 and NUL become U+FFFD). */
void json_add_string(buf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s, *e = u + n;
    buf_addc(b, '"');
    while (u < e) {
        unsigned char c = *u;
        if (c == '"' || c == '\\') { buf_addc(b, '\\'); buf_addc(b, (char)c); u++; continue; }
        if (c == '\n') { buf_adds(b, "\\n"); u++; continue; }
        if (c == '\t') { buf_adds(b, "\\t"); u++; continue; }
        if (c == '\r') { buf_adds(b, "\\r"); u++; continue; }
        if (c == 0) { buf_adds(b, "\\ufffd"); u++; continue; }
        if (c < 0x20) { buf_printf(b, "\\u%04x", c); u++; continue; }
        int l = utf8_len(u, e);
        if (!l) { buf_adds(b, "\\ufffd"); u++; continue; }
        buf_add(b, u, (size_t)l);
        u += l;
    }
    buf_addc(b, '"');
}

/* A copy of s that PostgreSQL text accepts (valid UTF-8, no NUL). */
char *text_sanitize(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s, *e = u + n;
    buf b;
    buf_init(&b);
    while (u < e) {
        int l = *u ? utf8_len(u, e) : 0;
        if (!l) { buf_adds(&b, "\xEF\xBF\xBD"); u++; continue; }
        buf_add(&b, u, (size_t)l);
        u += l;
    }
    return buf_steal(&b);
}

/* Finds a top-level member of a JSON object and returns its raw value span. */
bool json_member(const char *s, size_t n, const char *key, const char **vs, size_t *vn)
{
    jp p = {s, s + n, 0};
    ws(&p);
    if (p.s >= p.e || *p.s != '{') return false;
    p.s++;
    size_t klen = strlen(key);
    for (;;) {
        ws(&p);
        if (p.s >= p.e || *p.s != '"') return false;
        const char *ks = p.s;
        if (!parse_string(&p)) return false;
        /* Keys are compared raw: the protocol's keys need no escapes. */
        bool match = (size_t)(p.s - ks) == klen + 2 && memcmp(ks + 1, key, klen) == 0;
        ws(&p);
        if (p.s >= p.e || *p.s != ':') return false;
        p.s++;
        ws(&p);
        const char *v = p.s;
        if (!parse_value(&p)) return false;
        if (match) {
            *vs = v;
            *vn = (size_t)(p.s - v);
            return true;
        }
        ws(&p);
        if (p.s >= p.e || *p.s != ',') return false;
        p.s++;
    }
}

/* Appends code point cp as UTF-8. */
static void add_utf8(buf *b, unsigned cp)
{
    char o[4];
    if (cp < 0x80) { o[0] = (char)cp; buf_add(b, o, 1); }
    else if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); buf_add(b, o, 2); }
    else if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)); buf_add(b, o, 3);
    } else {
        o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F)); buf_add(b, o, 4);
    }
}

/* Decodes a JSON string literal (malloc'd), or NULL if it is not one. */
char *json_string_value(const char *s, size_t n)
{
    jp p = {s, s + n, 0};
    if (n < 2 || *s != '"' || !parse_string(&p) || p.s != p.e) return NULL;
    buf b;
    buf_init(&b);
    for (const char *c = s + 1; c < s + n - 1;) {
        if (*c != '\\') { buf_addc(&b, *c++); continue; }
        char x = c[1];
        c += 2;
        switch (x) {
        case 'b': buf_addc(&b, '\b'); break;
        case 'f': buf_addc(&b, '\f'); break;
        case 'n': buf_addc(&b, '\n'); break;
        case 'r': buf_addc(&b, '\r'); break;
        case 't': buf_addc(&b, '\t'); break;
        case 'u': {
            unsigned v = 0, w = 0;
            hex4(c, &v);
            c += 4;
            if (v >= 0xD800 && v <= 0xDBFF) {
                hex4(c + 2, &w);
                c += 6;
                v = 0x10000 + ((v - 0xD800) << 10) + (w - 0xDC00);
            }
            add_utf8(&b, v);
            break;
        }
        default: buf_addc(&b, x); break;
        }
    }
    return buf_steal(&b);
}

/* Appends an element (quoted; NULL for SQL NULL) to an array literal. */
void pg_array_add(buf *b, const char *elem, bool first)
{
    if (!first) buf_addc(b, ',');
    if (!elem) { buf_adds(b, "NULL"); return; }
    buf_addc(b, '"');
    for (const char *c = elem; *c; c++) {
        if (*c == '"' || *c == '\\') buf_addc(b, '\\');
        buf_addc(b, *c);
    }
    buf_addc(b, '"');
}
