/*
 * Trusted front-end proxies (WSGITrustedProxyHeaders, WSGITrustedProxies),
 * with mod_wsgi's semantics: the proxy headers are grouped by what they
 * tell (the client's address, the host, the server name, the port, the
 * scheme, the mount point).  Only groups with a header named in
 * WSGITrustedProxyHeaders are touched:
 *
 *  - from a trusted peer (one in WSGITrustedProxies, or any peer when that
 *    directive is not used) the first named header present sets the
 *    variable it stands for (REMOTE_ADDR, HTTP_HOST, ...), and the other
 *    headers of its group are dropped from the environ;
 *  - from any other peer every header of the group is dropped and nothing
 *    changes (mod_wsgi once kept X-Client-IP here: CVE-2022-2255).
 *
 * A value that does not parse never changes anything.
 */
#include "tether_private.h"

#include "apr_network_io.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

enum {
    GROUP_ADDR,         /* REMOTE_ADDR */
    GROUP_HOST,         /* HTTP_HOST */
    GROUP_SERVER,       /* SERVER_NAME */
    GROUP_PORT,         /* SERVER_PORT */
    GROUP_SCHEME,       /* wsgi.url_scheme and HTTPS */
    GROUP_SCRIPT,       /* SCRIPT_NAME */
    GROUP_COUNT
};

/* How a header's value is read. */
enum {
    VALUE_ADDR_LIST,    /* X-Forwarded-For: addresses, client first */
    VALUE_ADDR,         /* one address */
    VALUE_HOST,         /* host[:port], first of a list */
    VALUE_PORT,
    VALUE_SCHEME,       /* "http" or "https", first of a list */
    VALUE_FLAG,         /* on/true/1 for https, off/false/0 for http */
    VALUE_PATH
};

typedef struct {
    const char *name;   /* as in WSGITrustedProxyHeaders */
    const char *var;    /* its environ key */
    int group;
    int value;
} proxy_header_t;

static const proxy_header_t headers[] = {
    { "X-Forwarded-For", "HTTP_X_FORWARDED_FOR", GROUP_ADDR,
      VALUE_ADDR_LIST },
    { "X-Client-IP", "HTTP_X_CLIENT_IP", GROUP_ADDR, VALUE_ADDR },
    { "X-Real-IP", "HTTP_X_REAL_IP", GROUP_ADDR, VALUE_ADDR },
    { "X-Forwarded-Host", "HTTP_X_FORWARDED_HOST", GROUP_HOST, VALUE_HOST },
    { "X-Host", "HTTP_X_HOST", GROUP_HOST, VALUE_HOST },
    { "X-Forwarded-Server", "HTTP_X_FORWARDED_SERVER", GROUP_SERVER,
      VALUE_HOST },
    { "X-Forwarded-Port", "HTTP_X_FORWARDED_PORT", GROUP_PORT, VALUE_PORT },
    { "X-Forwarded-Proto", "HTTP_X_FORWARDED_PROTO", GROUP_SCHEME,
      VALUE_SCHEME },
    { "X-Forwarded-Scheme", "HTTP_X_FORWARDED_SCHEME", GROUP_SCHEME,
      VALUE_SCHEME },
    { "X-Scheme", "HTTP_X_SCHEME", GROUP_SCHEME, VALUE_SCHEME },
    { "X-Forwarded-HTTPS", "HTTP_X_FORWARDED_HTTPS", GROUP_SCHEME,
      VALUE_FLAG },
    { "X-Forwarded-SSL", "HTTP_X_FORWARDED_SSL", GROUP_SCHEME, VALUE_FLAG },
    { "X-Script-Name", "HTTP_X_SCRIPT_NAME", GROUP_SCRIPT, VALUE_PATH },
    { "X-Forwarded-Script-Name", "HTTP_X_FORWARDED_SCRIPT_NAME",
      GROUP_SCRIPT, VALUE_PATH },
};

#define HEADER_COUNT (sizeof(headers) / sizeof(headers[0]))

const char *tether_proxy_header_name(const char *name)
{
    apr_size_t i;

    for (i = 0; i < HEADER_COUNT; i++) {
        if (!strcasecmp(name, headers[i].name)) {
            return headers[i].name;
        }
    }
    return NULL;
}

static const proxy_header_t *header_of(const char *name)
{
    apr_size_t i;

    for (i = 0; i < HEADER_COUNT; i++) {
        if (!strcasecmp(name, headers[i].name)) {
            return &headers[i];
        }
    }
    return NULL;
}

static int in_proxies(const apr_array_header_t *proxies,
                      apr_sockaddr_t *sa)
{
    int i;

    for (i = 0; i < proxies->nelts; i++) {
        if (apr_ipsubnet_test(APR_ARRAY_IDX(proxies, i, apr_ipsubnet_t *),
                              sa)) {
            return 1;
        }
    }
    return 0;
}

/* s without leading and trailing blanks, in p. */
static char *trimmed(apr_pool_t *p, const char *s, apr_size_t len)
{
    while (len && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) {
        len--;
    }
    return apr_pstrmemdup(p, s, len);
}

/* The first element of a comma separated list, trimmed. */
static char *first_element(apr_pool_t *p, const char *value)
{
    const char *comma = strchr(value, ',');

    return trimmed(p, value, comma ? (apr_size_t)(comma - value)
                                   : strlen(value));
}

/*
 * An IP address literal (IPv4 dotted quad, IPv6, IPv6 in brackets) in its
 * canonical text form, and its socket address in *sa; NULL when s is
 * anything else (never a name lookup).
 */
static const char *parse_addr(apr_pool_t *p, const char *s,
                              apr_sockaddr_t **sa)
{
    char buf[INET6_ADDRSTRLEN];
    unsigned char bin[sizeof(struct in6_addr)];
    apr_size_t len = strlen(s);
    int family;

    if (len > 2 && s[0] == '[' && s[len - 1] == ']') {
        s = apr_pstrmemdup(p, s + 1, len - 2);
        if (!strchr(s, ':')) {
            return NULL;
        }
    }
    if (inet_pton(AF_INET, s, bin) == 1) {
        family = AF_INET;
    }
    else if (inet_pton(AF_INET6, s, bin) == 1) {
        family = AF_INET6;
    }
    else {
        return NULL;
    }
    if (!inet_ntop(family, bin, buf, sizeof(buf))) {
        return NULL;
    }
    s = apr_pstrdup(p, buf);
    if (sa && apr_sockaddr_info_get(sa, s, family == AF_INET ? APR_INET
                                                            : APR_INET6,
                                    0, 0, p) != APR_SUCCESS) {
        return NULL;
    }
    return s;
}

/*
 * The client address an X-Forwarded-For value gives, or NULL.  Each proxy
 * appends the address it received the request from, so the right-most
 * element was written by our peer.  With WSGITrustedProxies, the elements
 * are read from the right, skipping those of trusted proxies (and empty
 * ones); the first other address is the client.  Anything unparsable on
 * the way means the chain cannot be trusted any further: NULL.  Without
 * WSGITrustedProxies, the left-most address is taken (mod_wsgi's rule).
 */
static const char *forwarded_for(apr_pool_t *p, const char *value,
                                 const apr_array_header_t *proxies)
{
    const char *end = value + strlen(value);
    const char *last = NULL;

    if (!proxies) {
        while (value <= end) {
            const char *comma = strchr(value, ',');
            apr_size_t len = comma ? (apr_size_t)(comma - value)
                                   : (apr_size_t)(end - value);
            char *elt = trimmed(p, value, len);

            if (*elt) {
                return parse_addr(p, elt, NULL);
            }
            if (!comma) {
                break;
            }
            value = comma + 1;
        }
        return NULL;
    }
    for (;;) {
        const char *start = end;
        char *elt;
        const char *addr;
        apr_sockaddr_t *sa;

        while (start > value && start[-1] != ',') {
            start--;
        }
        elt = trimmed(p, start, end - start);
        if (*elt) {
            if (!(addr = parse_addr(p, elt, &sa))) {
                return NULL;
            }
            last = addr;
            if (!in_proxies(proxies, sa)) {
                return addr;
            }
        }
        if (start == value) {
            break;
        }
        end = start - 1;        /* the comma before this element */
    }
    /* Every hop is a trusted proxy: the left-most is the client. */
    return last;
}

/* A host[:port] or [v6]:port as a Host header holds it, or NULL. */
static const char *parse_host(apr_pool_t *p, const char *value)
{
    char *host = first_element(p, value);
    const char *s;

    if (!*host) {
        return NULL;
    }
    for (s = host; *s; s++) {
        if (!apr_isalnum(*s) && !strchr(".-_:[]", *s)) {
            return NULL;
        }
    }
    return host;
}

static const char *parse_port(apr_pool_t *p, const char *value)
{
    char *port = first_element(p, value);
    const char *s;
    long n = 0;

    if (!*port || strlen(port) > 5) {
        return NULL;
    }
    for (s = port; *s; s++) {
        if (!apr_isdigit(*s)) {
            return NULL;
        }
        n = n * 10 + (*s - '0');
    }
    if (n < 1 || n > 65535) {
        return NULL;
    }
    return apr_ltoa(p, n);
}

/* 1 for https, 0 for http, -1 for anything else. */
static int parse_scheme(apr_pool_t *p, const char *value, int flag)
{
    const char *v = first_element(p, value);

    if (flag) {
        if (!strcasecmp(v, "on") || !strcasecmp(v, "true")
            || !strcmp(v, "1")) {
            return 1;
        }
        if (!strcasecmp(v, "off") || !strcasecmp(v, "false")
            || !strcmp(v, "0")) {
            return 0;
        }
        return -1;
    }
    if (!strcasecmp(v, "https")) {
        return 1;
    }
    if (!strcasecmp(v, "http")) {
        return 0;
    }
    return -1;
}

/* A mount point: "" or "/..." without a trailing slash, or NULL. */
static const char *parse_path(apr_pool_t *p, const char *value)
{
    char *path = trimmed(p, value, strlen(value));
    apr_size_t len = strlen(path);
    const char *s;

    if (*path && *path != '/') {
        return NULL;
    }
    for (s = path; *s; s++) {
        if (apr_iscntrl(*s) || *s == ' ' || *s == '?' || *s == '#') {
            return NULL;
        }
    }
    while (len && path[len - 1] == '/') {
        path[--len] = '\0';
    }
    return path;
}

/* Applies one trusted header; 0 when its value was not usable. */
static int apply_header(request_rec *r, apr_table_t *env,
                        const tether_dir_conf_t *conf,
                        const proxy_header_t *h, const char *value)
{
    const char *v;
    int https;

    switch (h->value) {
    case VALUE_ADDR_LIST:
        if (!(v = forwarded_for(r->pool, value, conf->trusted_proxies))) {
            return 0;
        }
        apr_table_setn(env, "REMOTE_ADDR", v);
        return 1;
    case VALUE_ADDR:
        v = parse_addr(r->pool, trimmed(r->pool, value, strlen(value)),
                       NULL);
        if (!v) {
            return 0;
        }
        apr_table_setn(env, "REMOTE_ADDR", v);
        return 1;
    case VALUE_HOST:
        if (!(v = parse_host(r->pool, value))) {
            return 0;
        }
        apr_table_setn(env, h->group == GROUP_HOST ? "HTTP_HOST"
                                                   : "SERVER_NAME", v);
        return 1;
    case VALUE_PORT:
        if (!(v = parse_port(r->pool, value))) {
            return 0;
        }
        apr_table_setn(env, "SERVER_PORT", v);
        return 1;
    case VALUE_SCHEME:
    case VALUE_FLAG:
        https = parse_scheme(r->pool, value, h->value == VALUE_FLAG);
        if (https < 0) {
            return 0;
        }
        if (https) {
            apr_table_setn(env, "HTTPS", "1");
        }
        else {
            apr_table_unset(env, "HTTPS");
        }
        apr_table_setn(env, "wsgi.url_scheme", https ? "https" : "http");
        return 1;
    case VALUE_PATH:
        if (!(v = parse_path(r->pool, value))) {
            return 0;
        }
        apr_table_setn(env, "SCRIPT_NAME", v);
        return 1;
    }
    return 0;
}

void tether_proxy_apply(request_rec *r, apr_table_t *env)
{
    const tether_dir_conf_t *conf = tether_config_dir(r);
    const proxy_header_t *named[GROUP_COUNT * HEADER_COUNT];
    int nnamed[GROUP_COUNT] = { 0 };
    int listed[HEADER_COUNT] = { 0 };
    int trusted;
    apr_size_t i;
    int g, k;

    if (!conf || !conf->trusted_proxy_headers
        || !conf->trusted_proxy_headers->nelts) {
        return;
    }
    /* The named headers of each group, in directive order. */
    for (k = 0; k < conf->trusted_proxy_headers->nelts; k++) {
        const proxy_header_t *h = header_of(
            APR_ARRAY_IDX(conf->trusted_proxy_headers, k, const char *));

        if (h && !listed[h - headers]) {
            listed[h - headers] = 1;
            named[h->group * HEADER_COUNT + nnamed[h->group]++] = h;
        }
    }
    trusted = !conf->trusted_proxies
              || in_proxies(conf->trusted_proxies,
                            r->connection->client_addr);

    for (i = 0; i < HEADER_COUNT; i++) {
        const proxy_header_t *h = &headers[i];

        if (!nnamed[h->group] || (trusted && listed[i])) {
            continue;
        }
        if (!trusted && apr_table_get(env, h->var)) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                          TETHER_LOGNO(0700) "%s from %s, which is not a "
                          "trusted proxy (WSGITrustedProxies): removed",
                          h->name, r->connection->client_ip);
        }
        apr_table_unset(env, h->var);
    }
    if (!trusted) {
        return;
    }
    for (g = 0; g < GROUP_COUNT; g++) {
        for (k = 0; k < nnamed[g]; k++) {
            const proxy_header_t *h = named[g * HEADER_COUNT + k];
            const char *value = apr_table_get(env, h->var);

            if (!value) {
                continue;
            }
            if (!apply_header(r, env, conf, h, value)) {
                ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                              TETHER_LOGNO(0701) "%s from trusted proxy %s "
                              "has an unusable value '%s': ignored",
                              h->name, r->connection->client_ip, value);
            }
            /* The first named header present decides. */
            break;
        }
    }
}
