/* web.c — `baton web`: the dashboard's HTTP server (libmicrohttpd): embedded files, the JSON API, token, Host and CSRF checks. */
#include "console.h"
#include "web.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#if MHD_VERSION < 0x00097002
typedef int MHD_Result_t;
#else
typedef enum MHD_Result MHD_Result_t;
#endif

static struct {
    PGconn *conn;
    char csrf[65];
    char *token;     /* NULL: none required (loopback only) */
    bool loopback;
    unsigned port;
} W;

static volatile sig_atomic_t stopping;
static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void random_hex(char *out, size_t bytes)
{
    unsigned char b[32];
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || bytes > sizeof b || read(fd, b, bytes) != (ssize_t)bytes) die(EXIT_FAILED, "web: cannot read /dev/urandom");
    close(fd);
    for (size_t i = 0; i < bytes; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

/* Equal strings, in time independent of where they differ. */
static bool same(const char *a, const char *b)
{
    if (!a || !b) return false;
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la && i < lb; i++) d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

/* The connection, reconnected when the server went away. */
static PGconn *conn(void)
{
    if (W.conn && PQstatus(W.conn) == CONNECTION_OK) return W.conn;
    if (W.conn) PQfinish(W.conn);
    char err[1024];
    W.conn = db_connect(O.dsn, err, sizeof err);
    if (!W.conn) fprintf(stderr, "baton web: %s\n", err);
    return W.conn;
}

static const char *arg(void *ctx, const char *name)
{
    return MHD_lookup_connection_value((struct MHD_Connection *)ctx, MHD_GET_ARGUMENT_KIND, name);
}

static MHD_Result_t reply(struct MHD_Connection *mc, int status, const char *mime, const void *body, size_t len,
                          enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, mode);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", mime);
    /* Nothing inline, nothing from elsewhere: shown data can never run as script. */
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
                            " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_Result_t ret = MHD_queue_response(mc, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static MHD_Result_t text(struct MHD_Connection *mc, int status, const char *msg)
{
    return reply(mc, status, "text/plain; charset=utf-8", msg, strlen(msg), MHD_RESPMEM_MUST_COPY);
}

/* Without a token the dashboard answers only to loopback names, so a web page
 * elsewhere cannot reach it through DNS rebinding. */
static bool host_ok(struct MHD_Connection *mc)
{
    if (W.token) return true;
    const char *h = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Host");
    if (!h) return false;
    char want[3][64];
    snprintf(want[0], sizeof want[0], "127.0.0.1:%u", W.port);
    snprintf(want[1], sizeof want[1], "localhost:%u", W.port);
    snprintf(want[2], sizeof want[2], "[::1]:%u", W.port);
    for (int i = 0; i < 3; i++)
        if (!strcmp(h, want[i])) return true;
    return false;
}

/* With a token, every request carries it: a cookie set by /?token=..., or Authorization: Bearer. */
static bool token_ok(struct MHD_Connection *mc)
{
    if (!W.token) return true;
    const char *cookie = MHD_lookup_connection_value(mc, MHD_COOKIE_KIND, "baton_token");
    if (same(cookie, W.token)) return true;
    const char *auth = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Authorization");
    return auth && !strncmp(auth, "Bearer ", 7) && same(auth + 7, W.token);
}

static MHD_Result_t handle(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                           const char *version, const char *upload, size_t *upload_size, void **state)
{
    (void)cls;
    (void)version;
    (void)upload;
    static int first;
    if (*state == NULL) {
        *state = &first;
        return MHD_YES;
    }
    if (*upload_size) { /* actions take their arguments in the query string; a body is ignored */
        *upload_size = 0;
        return MHD_YES;
    }
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    if (!get && !post) return text(mc, 405, "method not allowed\n");
    if (!host_ok(mc)) return text(mc, 403, "forbidden: unexpected Host header\n");
    if (W.token && get && !strcmp(url, "/")) {
        const char *t = arg(mc, "token");
        if (t && same(t, W.token)) {
            struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
            char cookie[300];
            snprintf(cookie, sizeof cookie, "baton_token=%s; HttpOnly; SameSite=Strict; Path=/", W.token);
            MHD_add_response_header(r, "Set-Cookie", cookie);
            MHD_add_response_header(r, "Location", "/");
            MHD_Result_t ret = MHD_queue_response(mc, 303, r);
            MHD_destroy_response(r);
            return ret;
        }
    }
    if (!token_ok(mc)) return text(mc, 401, "baton web: a token is required: open /?token=YOUR_TOKEN\n");
    if (strncmp(url, "/api/", 5) != 0) {
        if (!get) return text(mc, 405, "method not allowed\n");
        const char *path = !strcmp(url, "/") ? "/index.html" : url;
        for (const Asset *a = ASSETS; a->path; a++)
            if (!strcmp(a->path, path)) return reply(mc, 200, a->mime, a->data, a->len, MHD_RESPMEM_PERSISTENT);
        return text(mc, 404, "not found\n");
    }
    if (post && !same(MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "X-CSRF-Token"), W.csrf))
        return text(mc, 403, "forbidden: missing or wrong CSRF token\n");
    PGconn *c = conn();
    if (!c) return text(mc, 503, "baton web: the database is unreachable\n");
    Resp out = {0};
    if (post) api_post(c, url, arg, mc, &out);
    else api_get(c, url, arg, mc, W.csrf, &out);
    MHD_Result_t ret = reply(mc, out.status, out.mime, out.body, strlen(out.body), MHD_RESPMEM_MUST_FREE);
    return ret;
}

static bool parse_listen(const char *s, struct sockaddr_in *sa)
{
    const char *colon = strrchr(s, ':');
    if (!colon) return false;
    char host[64];
    size_t hl = (size_t)(colon - s);
    if (hl == 0 || hl >= sizeof host) return false;
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (!strcmp(host, "localhost")) strcpy(host, "127.0.0.1");
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535) return false;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1;
}

static char *read_token_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) die(EXIT_USAGE, "web: cannot read --token-file %s", path);
    char line[256] = "";
    if (!fgets(line, sizeof line, f)) line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    return xstrdup(line);
}

int cmd_web(int argc, char **argv)
{
    const char *listen = "127.0.0.1:8080", *token = NULL, *token_file = NULL;
    Flag f[] = {{"listen", true, &listen, NULL}, {"token", true, &token, NULL}, {"token-file", true, &token_file, NULL},
                {0}};
    char *pos[1];
    parse_flags("web", argc, argv, f, pos, 0);
    struct sockaddr_in sa;
    if (!parse_listen(listen, &sa)) die(EXIT_USAGE, "web: bad --listen \"%s\" (IPv4ADDRESS:PORT, e.g. 127.0.0.1:8080)", listen);
    if (token_file) token = read_token_file(token_file);
    if (token && strlen(token) < 16) die(EXIT_USAGE, "web: the token must have at least 16 characters");
    W.loopback = (ntohl(sa.sin_addr.s_addr) >> 24) == 127;
    if (!W.loopback && !token)
        die(EXIT_USAGE, "web: listening on %s (not loopback) needs --token or --token-file", listen);
    W.token = token ? xstrdup(token) : NULL;
    random_hex(W.csrf, 32);
    W.conn = db_connect_or_die();
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, handle, NULL,
                                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    if (!d) die(EXIT_FAILED, "web: cannot listen on %s (in use, or not an address of this host)", listen);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    W.port = info ? info->port : ntohs(sa.sin_port);
    char addr[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sa.sin_addr, addr, sizeof addr);
    printf("baton web: dashboard at http://%s:%u/%s (Ctrl-C stops it)\n", addr, W.port,
           W.token ? "?token=..." : "");
    fflush(stdout);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    while (!stopping) pause();
    MHD_stop_daemon(d);
    PQfinish(W.conn);
    return EXIT_OK;
}
