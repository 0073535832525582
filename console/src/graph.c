/* graph.c — runs and traces drawn as SVG: Graphviz (libgvc, the dot layout) lays out the graph, nothing is placed by hand. */
#include "console.h"
#include "queries.h"

#include <graphviz/gvc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static GVC_t *gvc;

/* Fill and stroke of a state, the same palette as baton.graph()'s Mermaid classes. */
static void state_style(const char *state, const char **fill, const char **stroke)
{
    static const struct {
        const char *state, *fill, *stroke;
    } P[] = {
        {"pending", "#f4f4f4", "#999999"},      {"waiting", "#fff3c4", "#c9a400"},
        {"running", "#d6e8ff", "#2f6fd1"},      {"succeeded", "#d8f5d0", "#3a9a2a"},
        {"failed", "#ffd6d6", "#c62828"},       {"skipped", "#eeeeee", "#bbbbbb"},
        {"cancelled", "#e0e0e0", "#777777"},    {"compensating", "#ffe0b2", "#ef6c00"},
        {"compensated", "#ffecd9", "#b26a00"},
    };
    *fill = "#ffffff";
    *stroke = "#666666";
    for (size_t i = 0; state && i < sizeof P / sizeof P[0]; i++)
        if (!strcmp(P[i].state, state)) {
            *fill = P[i].fill;
            *stroke = P[i].stroke;
        }
}

/* A label as Graphviz reads it: a backslash would start an escape (\N, \G);
 * a newline becomes Graphviz's centred line break. */
static char *label_text(const char *s)
{
    Buf b = {0};
    buf_puts(&b, "");
    for (; *s; s++) {
        if (*s == '\\') buf_puts(&b, "\\\\");
        else if (*s == '\n') buf_puts(&b, "\\n");
        else buf_add(&b, s, 1);
    }
    return b.s;
}

static Agraph_t *new_graph(const char *rankdir)
{
    Agraph_t *g = agopen("g", Agdirected, NULL);
    agattr(g, AGRAPH, "rankdir", (char *)rankdir);
    agattr(g, AGRAPH, "bgcolor", "transparent");
    agattr(g, AGRAPH, "nodesep", "0.35");
    agattr(g, AGRAPH, "ranksep", "0.45");
    agattr(g, AGNODE, "shape", "box");
    agattr(g, AGNODE, "style", "rounded,filled");
    agattr(g, AGNODE, "fontname", "Helvetica");
    agattr(g, AGNODE, "fontsize", "11");
    agattr(g, AGNODE, "penwidth", "1.4");
    agattr(g, AGNODE, "fillcolor", "#ffffff");
    agattr(g, AGNODE, "color", "#666666");
    agattr(g, AGNODE, "label", "\\N");
    agattr(g, AGNODE, "id", "");
    agattr(g, AGNODE, "class", "");
    agattr(g, AGEDGE, "color", "#8a94a6");
    agattr(g, AGEDGE, "arrowsize", "0.7");
    return g;
}

static void style_node(Agnode_t *n, const char *label, const char *state, const char *id)
{
    const char *fill, *stroke;
    state_style(state, &fill, &stroke);
    char *l = label_text(label);
    agset(n, "label", l);
    free(l);
    agset(n, "fillcolor", (char *)fill);
    agset(n, "color", (char *)stroke);
    if (state) {
        char cls[64];
        snprintf(cls, sizeof cls, "state-%s", state);
        agset(n, "class", cls);
    }
    if (state && !strcmp(state, "skipped")) agset(n, "style", "rounded,filled,dashed");
    if (id) agset(n, "id", (char *)id);
}

/* Lays out g and returns its SVG (malloc'd), closing g. */
static char *render(Agraph_t *g, char *err, size_t errlen)
{
    if (!gvc) gvc = gvContext();
    char *svg = NULL;
    if (gvLayout(gvc, g, "dot") != 0) {
        snprintf(err, errlen, "graphviz could not lay out the graph");
        agclose(g);
        return NULL;
    }
    char *data = NULL;
    unsigned int len = 0;
    if (gvRenderData(gvc, g, "svg", &data, &len) == 0 && data) {
        svg = xmalloc(len + 1);
        memcpy(svg, data, len);
        svg[len] = '\0';
    } else {
        snprintf(err, errlen, "graphviz could not render SVG");
    }
    if (data) gvFreeRenderData(data);
    gvFreeLayout(gvc, g);
    agclose(g);
    return svg;
}

/* A run's DAG: nodes from baton.run_steps (state, map progress), edges from
 * baton.graph(run) (Mermaid "s_a --> s_b"; step names are identifiers). */
char *graph_run_svg(PGconn *c, const char *run, char *err, size_t errlen)
{
    const char *p[] = {run};
    PGresult *s = db_query(c, SQL_RUN_STEPS, 1, p);
    if (PQresultStatus(s) != PGRES_TUPLES_OK || PQntuples(s) == 0) {
        if (PQresultStatus(s) == PGRES_TUPLES_OK) snprintf(err, errlen, "run %s does not exist", run);
        else db_error_line(c, s, err, errlen);
        PQclear(s);
        return NULL;
    }
    PGresult *m = db_query(c, "SELECT baton.graph($1::bigint)", 1, p);
    if (PQresultStatus(m) != PGRES_TUPLES_OK || PQntuples(m) != 1) {
        db_error_line(c, m, err, errlen);
        PQclear(s);
        PQclear(m);
        return NULL;
    }
    Agraph_t *g = new_graph("LR");
    int fstep = PQfnumber(s, "step"), fkind = PQfnumber(s, "kind"), fstate = PQfnumber(s, "state"),
        fmap = PQfnumber(s, "map"), fatt = PQfnumber(s, "attempt");
    for (int i = 0; i < PQntuples(s); i++) {
        const char *step = PQgetvalue(s, i, fstep), *state = PQgetvalue(s, i, fstate);
        Buf l = {0};
        buf_printf(&l, "%s\n%s · %s", step, PQgetvalue(s, i, fkind), state);
        if (!PQgetisnull(s, i, fmap)) buf_printf(&l, "\nmap %s", PQgetvalue(s, i, fmap));
        if (!PQgetisnull(s, i, fatt) && atoi(PQgetvalue(s, i, fatt)) > 1)
            buf_printf(&l, "\nattempt %s", PQgetvalue(s, i, fatt));
        char id[80];
        snprintf(id, sizeof id, "step-%s", step);
        style_node(agnode(g, (char *)step, 1), l.s, state, id);
        buf_free(&l);
    }
    char *text = xstrdup(PQgetvalue(m, 0, 0));
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char a[80], b[80];
        if (sscanf(line, " s_%79[A-Za-z0-9_] --> s_%79[A-Za-z0-9_]", a, b) == 2) {
            Agnode_t *na = agnode(g, a, 0), *nb = agnode(g, b, 0);
            if (na && nb) agedge(g, na, nb, NULL, 1);
        }
    }
    free(text);
    PQclear(s);
    PQclear(m);
    return render(g, err, errlen);
}

/* A correlation's causal chain: events, tasks, runs and steps, cause -> effect. */
char *graph_trace_svg(PGconn *c, const char *correlation, char *err, size_t errlen)
{
    const char *p[] = {correlation};
    PGresult *r = db_query(c, SQL_TRACE, 1, p);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) == 0) {
        if (PQresultStatus(r) == PGRES_TUPLES_OK) snprintf(err, errlen, "nothing has correlation id %s", correlation);
        else db_error_line(c, r, err, errlen);
        PQclear(r);
        return NULL;
    }
    Agraph_t *g = new_graph("TB");
    int fnode = PQfnumber(r, "node"), fpar = PQfnumber(r, "parent"), fkind = PQfnumber(r, "kind"),
        fid = PQfnumber(r, "id"), fname = PQfnumber(r, "name"), fstate = PQfnumber(r, "state");
    for (int i = 0; i < PQntuples(r); i++) {
        const char *kind = PQgetvalue(r, i, fkind);
        const char *state = PQgetisnull(r, i, fstate) ? NULL : PQgetvalue(r, i, fstate);
        Buf l = {0};
        buf_printf(&l, "%s %s\n%s", kind, PQgetvalue(r, i, fid), PQgetvalue(r, i, fname));
        if (state) buf_printf(&l, "\n%s", state);
        Agnode_t *n = agnode(g, PQgetvalue(r, i, fnode), 1);
        style_node(n, l.s, state, NULL);
        if (!strcmp(kind, "event")) {
            agset(n, "shape", "box");
            agset(n, "style", "rounded,filled,bold");
            agset(n, "fillcolor", "#efe7ff");
            agset(n, "color", "#6f42c1");
        } else if (!strcmp(kind, "run")) {
            agset(n, "shape", "box3d");
            agset(n, "style", "filled");
        }
        buf_free(&l);
    }
    for (int i = 0; i < PQntuples(r); i++) {
        if (PQgetisnull(r, i, fpar)) continue;
        Agnode_t *a = agnode(g, PQgetvalue(r, i, fpar), 0), *b = agnode(g, PQgetvalue(r, i, fnode), 0);
        if (a && b) agedge(g, a, b, NULL, 1);
    }
    PQclear(r);
    return render(g, err, errlen);
}
