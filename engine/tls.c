/* SPDX-License-Identifier: MIT */
/*
 * tls.c: TLS on the worker's ring: OpenSSL 3 runs the handshake and the record layer, fed by
 * the transport's io_uring receives and draining into its sends, so nothing here ever blocks a
 * worker or makes a system call of its own. It sits between tcp.c (the socket: bytes in, bytes
 * out) and the connection's protocol, which sees plaintext exactly as on a plain connection:
 * tcp.c hands each receive to coil__tls_input, which decrypts into the worker's scratch buffer
 * and calls proto->on_data; the protocol queues plaintext in c->pend as always, and when
 * tcp.c is about to send, coil__tls_take seals it into records (ciphertext waits in the
 * connection's own buffer, never in OpenSSL's).
 *
 * OpenSSL meets the ring through a BIO of our own: its read takes from the receive being
 * handled (OpenSSL keeps any partial record itself), its write appends to the ciphertext
 * buffer. ALPN picks the protocol (http/1.1 today; the table is where h2 joins). SNI picks a
 * certificate among --tls-sni's. Certificates live in a set shared by every worker and
 * replaced whole on SIGHUP: each connection holds a reference to the set it began with, so a
 * reload never pulls a certificate from under a handshake. Session tickets are stateless, sealed
 * with keys of the process (shared by all workers, kept across reloads) that rotate every
 * --tls-ticket-rotate.
 *
 * Kernel TLS (--tls-offload auto|kernel|user): where the kernel's tls module takes the
 * connection's cipher, the kernel seals what the connection sends. OpenSSL hands the keys to
 * our BIO (its SET_KTLS control, which it sends any BIO with SSL_OP_ENABLE_KTLS set) when it
 * switches its write side to the traffic keys; we keep them until every byte written before
 * the switch is on the wire, then set TLS_TX on the socket. From then on the protocol's
 * plaintext goes out as it is (no copy, no user-space encryption), and what OpenSSL still
 * writes (tickets, a TLS 1.2 Finished, alerts) comes to the BIO as records of a given content
 * type, sent one by one with sendmsg and a TLS_SET_RECORD_TYPE control message. The receive
 * side stays in user space: the ring's receives read ahead of the handshake's last record, so
 * the kernel could not take the stream over at a record boundary (OpenSSL 3.0 offers no TLS
 * 1.3 receive offload either). A cipher the kernel lacks (probed at start-up) stays in user
 * space for that connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "internal.h"

#include <linux/tls.h>

#ifndef TCP_ULP
#define TCP_ULP 31
#endif
#ifndef SOL_TLS
#define SOL_TLS 282
#endif
/* OpenSSL 3's BIO controls for kernel TLS (include/internal/bio.h there: part of its ABI, not
 * of its public headers). */
#define CTRL_SET_KTLS 72
#define CTRL_KTLS_RECORD_TYPE 74
#define CTRL_KTLS_RECORD_TYPE_CLEAR 75

/* Mozilla's "intermediate" TLS 1.2 suites without finite-field DHE: ECDHE key exchange and
 * AEAD ciphers only; TLS 1.3's three, AES-128 first (as fast as any, and cheaper than AES-256).
 * A client that puts ChaCha20 first (no AES hardware) gets it. */
static const char CIPHERS12[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
static const char SUITES13[] =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
static const char GROUPS[] = "X25519:P-256:P-384";
#define RECORD_MAX 16384u          /* plaintext bytes per record */
#define RECORD_OVERHEAD 64u        /* header, tag, TLS 1.3's inner type, with room to spare */
#define SEAL_MAX (15 * RECORD_MAX) /* sealed per send: fits a 256 KiB buffer */

enum offload { OFFLOAD_AUTO, OFFLOAD_KERNEL, OFFLOAD_USER };

struct sni_opt {
    char *name; /* "api.example.com" or "*.example.com" */
    char *cert;
    char *key;
};

/* One generation of certificates: the default context and one per --tls-sni name. */
struct certs {
    _Atomic unsigned refs;
    SSL_CTX *dflt;
    unsigned n;
    struct {
        const char *name; /* the option's (lives as long as the app) */
        SSL_CTX *ctx;
    } sni[];
};

/* The ciphers the kernel seals, probed at start-up: bit (cipher - TLS_CIPHER_AES_GCM_128) for
 * TLS 1.2, and the same bit + 4 for TLS 1.3. */
#define KCIPHER_BIT(version, cipher)                                                               \
    (1u << (((cipher)-TLS_CIPHER_AES_GCM_128) + ((version) == TLS_1_3_VERSION ? 4 : 0)))

/* A session ticket key: tickets name it, AES-256-CBC encrypts them, HMAC-SHA256 signs them. */
struct ticket_key {
    unsigned char name[16], aes[32], hmac[32];
    uint64_t born_ns;
    bool valid;
};

struct coil__tlscfg {
    int port;                   /* -1: no TLS listener */
    int port2;                  /* a second one (--tls-port N,M), or -1 */
    uint64_t ticket_ns;         /* --tls-ticket-rotate */
    pthread_mutex_t tlock;      /* guards tkeys */
    struct ticket_key tkeys[2]; /* the one sealing new tickets, and the one before it */
    unsigned kciphers;          /* KCIPHER_BIT set: kernel TLS in effect for those */
    char *cert, *key;
    struct sni_opt *sni;
    unsigned nsni;
    enum offload offload;
    bool no_http;
    BIO_METHOD *bio;
    pthread_mutex_t lock; /* guards cur */
    _Atomic unsigned gen; /* bumped when cur changes (workers keep a reference of their own) */
    struct certs *cur;
};

/* A connection's TLS state (w->tls->conns[c->idx]). */
struct coil__tls {
    SSL *ssl;
    struct certs *certs;
    struct coil__worker *w;
    struct coil_conn *c;
    const char *win; /* the receive being handled: what the BIO's read hands OpenSSL */
    size_t win_len;
    struct coil__obuf *cpend; /* ciphertext not yet sent (with kernel TLS: written before the
                               * switch, so sent before it) */
    struct coil__obuf *ctl;   /* kernel TLS: records OpenSSL wrote since, framed as type,
                               * length (2 bytes), data; sent from ctl->sent on */
    uint8_t ctl_type;         /* the content type of OpenSSL's next write (kernel TLS) */
    enum { KTX_OFF, KTX_PENDING, KTX_ON } ktx;
    bool ktx_broken; /* OpenSSL changed keys the kernel cannot take: close */
    bool ktx_rekey;  /* the peer asked for a key update the kernel cannot make: close_notify */
    uint16_t kinfo_len;
    unsigned char kinfo[64]; /* the kernel's tls12_crypto_info_* while KTX_PENDING */
    struct msghdr msg;       /* the record being sent with its type (kernel TLS) */
    struct iovec iov;
    union {
        char buf[CMSG_SPACE(sizeof(uint8_t))];
        struct cmsghdr align;
    } cmsg;
    bool oom;      /* the BIO could not grow cpend */
    bool fed;      /* OpenSSL has had input */
    bool ready;    /* the handshake is done */
    bool notified; /* no more records: close_notify or a fatal alert is queued */
};

/* ---- options ---------------------------------------------------------------------------- */

/* "N", or "N,M": a second TLS port with the same certificates (HttpArena wants HTTP/1.1 over
 * TLS on one port and h2 on another: both are served on each). */
static int set_port(const char *v, void *ud)
{
    struct coil__tlscfg *cfg = ud;
    char *end;
    unsigned long p = strtoul(v, &end, 10), p2 = 0;
    bool two = *end == ',';
    if (two) {
        const char *s2 = end + 1;
        p2 = strtoul(s2, &end, 10);
        if (!*s2 || p2 > 65535 || (p2 && p2 == p))
            return -1;
    }
    if (!*v || *end || p > 65535)
        return -1;
    cfg->port = (int)p;
    cfg->port2 = two ? (int)p2 : -1;
    return 0;
}

static int set_path(char **slot, const char *v)
{
    char *s = strdup(v);
    if (!s || !*v) {
        free(s);
        return -1;
    }
    free(*slot);
    *slot = s;
    return 0;
}

static int set_cert(const char *v, void *ud)
{
    return set_path(&((struct coil__tlscfg *)ud)->cert, v);
}

static int set_key(const char *v, void *ud)
{
    return set_path(&((struct coil__tlscfg *)ud)->key, v);
}

/* One "NAME=CERT:KEY" (the variable may hold several, separated by commas). */
static int add_sni(struct coil__tlscfg *cfg, const char *s, size_t len)
{
    const char *eq = memchr(s, '=', len);
    const char *end = s + len;
    if (!eq || eq == s)
        return -1;
    const char *colon = memchr(eq + 1, ':', (size_t)(end - eq - 1));
    if (!colon || colon == eq + 1 || colon + 1 == end)
        return -1;
    struct sni_opt *v = realloc(cfg->sni, (cfg->nsni + 1) * sizeof(*v));
    if (!v)
        return -1;
    cfg->sni = v;
    struct sni_opt *o = &v[cfg->nsni];
    o->name = strndup(s, (size_t)(eq - s));
    o->cert = strndup(eq + 1, (size_t)(colon - eq - 1));
    o->key = strndup(colon + 1, (size_t)(end - colon - 1));
    if (!o->name || !o->cert || !o->key) {
        free(o->name);
        free(o->cert);
        free(o->key);
        return -1;
    }
    cfg->nsni++;
    return 0;
}

static int set_sni(const char *v, void *ud)
{
    while (*v) {
        const char *comma = strchr(v, ',');
        size_t len = comma ? (size_t)(comma - v) : strlen(v);
        if (add_sni(ud, v, len) < 0)
            return -1;
        v += len + (comma != NULL);
    }
    return 0;
}

static int set_offload(const char *v, void *ud)
{
    struct coil__tlscfg *cfg = ud;
    if (!strcmp(v, "auto"))
        cfg->offload = OFFLOAD_AUTO;
    else if (!strcmp(v, "kernel"))
        cfg->offload = OFFLOAD_KERNEL;
    else if (!strcmp(v, "user"))
        cfg->offload = OFFLOAD_USER;
    else
        return -1;
    return 0;
}

static int set_ticket_rotate(const char *v, void *ud)
{
    uint64_t ms;
    if (coil__parse_duration_ms(v, &ms) < 0 || ms < 1000 || ms > 7 * 86400000ull)
        return -1;
    ((struct coil__tlscfg *)ud)->ticket_ns = ms * 1000000;
    return 0;
}

static int set_no_http(const char *v, void *ud)
{
    int b = coil__parse_bool(v);
    if (b < 0)
        return -1;
    ((struct coil__tlscfg *)ud)->no_http = b;
    return 0;
}

int coil__tls_setup(struct coil_app *app)
{
    struct coil__tlscfg *cfg = calloc(1, sizeof(*cfg));
    if (!cfg)
        return -ENOMEM;
    cfg->port = cfg->port2 = -1;
    cfg->ticket_ns = 3600ull * 1000000000;
    pthread_mutex_init(&cfg->lock, NULL);
    pthread_mutex_init(&cfg->tlock, NULL);
    app->tls = cfg;
    if (coil_app_option(app, "tls-port", "COIL_TLS_PORT", "N",
                        "HTTPS port beside --port (0 picks a free one); N,M: two of them [off]",
                        set_port, cfg) < 0 ||
        coil_app_option(app, "tls-cert", "COIL_TLS_CERT", "PATH",
                        "PEM certificate, its chain after it (--tls-port)", set_cert, cfg) < 0 ||
        coil_app_option(app, "tls-key", "COIL_TLS_KEY", "PATH", "PEM private key (--tls-port)",
                        set_key, cfg) < 0 ||
        coil_app_option(app, "tls-sni", "COIL_TLS_SNI", "NAME=CERT:KEY",
                        "another server name's certificate, repeatable (\"*.example.com\" "
                        "covers one label; the variable takes a comma-separated list)",
                        set_sni, cfg) < 0 ||
        coil_app_option(app, "tls-offload", "COIL_TLS_OFFLOAD", "auto|kernel|user",
                        "where TLS records are encrypted: the kernel's tls module or OpenSSL "
                        "[auto]",
                        set_offload, cfg) < 0 ||
        coil_app_option(app, "tls-ticket-rotate", "COIL_TLS_TICKET_ROTATE", "D",
                        "a new session ticket key this often; tickets live at most twice that "
                        "(1s-7d) [1h]",
                        set_ticket_rotate, cfg) < 0 ||
        coil__app_flag(app, "no-http", "COIL_NO_HTTP",
                       "no plain-HTTP listener: serve only --tls-port", set_no_http, cfg) < 0)
        return -ENOMEM;
    return 0;
}

/* ---- certificates ----------------------------------------------------------------------- */

/* The first error OpenSSL queued, as text, and the queue cleared. */
static const char *ssl_error(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_error();
    if (e)
        ERR_error_string_n(e, buf, cap);
    else
        snprintf(buf, cap, "%s", strerror(errno ? errno : EINVAL));
    ERR_clear_error();
    return buf;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg);
static int sni_select(SSL *ssl, int *alert, void *arg);
static int ticket_crypt(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *ectx,
                        EVP_MAC_CTX *hctx, int enc);

/* ---- session tickets ------------------------------------------------------------------- */

/* Tickets are stateless: the client keeps the session, sealed with a key of the process's
 * (shared by the workers, kept across reloads). A new key takes over every ticket_ns and the
 * one before it still opens tickets (which are then renewed), so a ticket lives at most two
 * periods, and a key, once gone, no longer opens the sessions it sealed (forward secrecy for
 * resumed sessions is bounded by that). */
static int ticket_key_new(struct ticket_key *k)
{
    if (RAND_bytes(k->name, sizeof(k->name)) != 1 || RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
        RAND_bytes(k->hmac, sizeof(k->hmac)) != 1) {
        ERR_clear_error();
        return -1;
    }
    k->born_ns = coil__clock_ns();
    k->valid = true;
    return 0;
}

/* Under tlock: a new key when the current one is a period old (both when two periods passed
 * with no handshake to notice). A failure keeps the keys as they are, to try again. */
static void ticket_rotate(struct coil__tlscfg *cfg)
{
    uint64_t age = coil__clock_ns() - cfg->tkeys[0].born_ns;
    if (age < cfg->ticket_ns)
        return;
    struct ticket_key k;
    if (ticket_key_new(&k) < 0)
        return;
    if (age >= 2 * cfg->ticket_ns)
        cfg->tkeys[1].valid = false;
    else
        cfg->tkeys[1] = cfg->tkeys[0];
    cfg->tkeys[0] = k;
    OPENSSL_cleanse(&k, sizeof(k));
}

/* OpenSSL's ticket callback: 1 sealed or opened, 2 opened with the older key (renew it), 0
 * unknown key (a full handshake), -1 error. */
static int ticket_crypt(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *ectx,
                        EVP_MAC_CTX *hctx, int enc)
{
    const struct coil__tls *t = SSL_get_app_data(ssl);
    struct coil__tlscfg *cfg = t->w->app->tls;
    struct ticket_key k;
    int rc = 1;
    pthread_mutex_lock(&cfg->tlock);
    ticket_rotate(cfg);
    if (enc || !memcmp(name, cfg->tkeys[0].name, sizeof(k.name)))
        k = cfg->tkeys[0];
    else if (cfg->tkeys[1].valid && !memcmp(name, cfg->tkeys[1].name, sizeof(k.name)))
        k = cfg->tkeys[1], rc = 2;
    else
        rc = 0;
    pthread_mutex_unlock(&cfg->tlock);
    if (rc == 0)
        return 0;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof(k.hmac)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    bool ok;
    if (enc) {
        memcpy(name, k.name, sizeof(k.name));
        ok = RAND_bytes(iv, 16) == 1 &&
             EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1;
    } else {
        ok = EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1;
    }
    ok = ok && EVP_MAC_CTX_set_params(hctx, params) == 1;
    OPENSSL_cleanse(&k, sizeof(k));
    return ok ? rc : -1;
}

/* A context with coil's protocol settings and one certificate; NULL after printing why. */
static SSL_CTX *ctx_new(const char *cert, const char *key, const char *what, const char *name,
                        bool ktls)
{
    char err[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        fprintf(stderr, "coil: TLS: %s\n", ssl_error(err, sizeof(err)));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA |
                                 SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 (ktls ? SSL_OP_ENABLE_KTLS : 0));
    /* Stateless tickets only: no server-side cache for the workers to share and lock. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 1);
    /* A session resumes only under the name (certificate) it began with. */
    size_t nl = strlen(name);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)name,
                                   nl < SSL_MAX_SID_CTX_LENGTH ? (unsigned)nl
                                                               : SSL_MAX_SID_CTX_LENGTH);
    /* An idle keep-alive connection gives its record buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_crypt);
    SSL_CTX_set_tlsext_servername_callback(ctx, sni_select);
    if (SSL_CTX_set_cipher_list(ctx, CIPHERS12) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, SUITES13) != 1 ||
        SSL_CTX_set1_groups_list(ctx, GROUPS) != 1) {
        fprintf(stderr, "coil: TLS: %s\n", ssl_error(err, sizeof(err)));
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        fprintf(stderr, "coil: %s %s: %s\n", what, cert, ssl_error(err, sizeof(err)));
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "coil: %s key %s: %s\n", what, key, ssl_error(err, sizeof(err)));
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        fprintf(stderr, "coil: %s: the key %s does not match the certificate %s\n", what, key,
                cert);
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static void certs_put(struct certs *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    SSL_CTX_free(s->dflt);
    for (unsigned i = 0; i < s->n; i++)
        SSL_CTX_free(s->sni[i].ctx);
    free(s);
}

/* Loads every certificate the options name; NULL after printing why. */
static struct certs *certs_load(const struct coil__tlscfg *cfg)
{
    struct certs *s = calloc(1, sizeof(*s) + cfg->nsni * sizeof(s->sni[0]));
    if (!s) {
        fprintf(stderr, "coil: TLS: out of memory\n");
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->dflt = ctx_new(cfg->cert, cfg->key, "--tls-cert", "", cfg->kciphers != 0);
    for (unsigned i = 0; s->dflt && i < cfg->nsni; i++, s->n++) {
        s->sni[i].name = cfg->sni[i].name;
        s->sni[i].ctx = ctx_new(cfg->sni[i].cert, cfg->sni[i].key, "--tls-sni", cfg->sni[i].name,
                                cfg->kciphers != 0);
        if (!s->sni[i].ctx)
            break;
    }
    if (!s->dflt || s->n < cfg->nsni) {
        certs_put(s);
        return NULL;
    }
    return s;
}

/* The current set, with a reference for the caller. */
static struct certs *certs_get(struct coil__tlscfg *cfg)
{
    pthread_mutex_lock(&cfg->lock);
    struct certs *s = cfg->cur;
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&cfg->lock);
    return s;
}

/* SIGHUP (main thread): new handshakes use the files as they are now. */
static void reload(void *ud)
{
    struct coil__tlscfg *cfg = ud;
    struct certs *s = certs_load(cfg);
    struct certs *prev;
    if (!s) {
        coil__log("TLS reload: the files above are not usable; keeping the certificates in use");
        return;
    }
    pthread_mutex_lock(&cfg->lock);
    prev = cfg->cur;
    cfg->cur = s;
    pthread_mutex_unlock(&cfg->lock);
    atomic_fetch_add_explicit(&cfg->gen, 1, memory_order_release);
    certs_put(prev);
    coil__log("TLS reload: certificates loaded");
}

/* ---- handshake callbacks ---------------------------------------------------------------- */

/* The protocols ALPN may pick, in the server's order of preference. */
static const struct {
    const char *name; /* as on the wire: length, then the name */
    const struct coil__proto *proto;
} alpn_protos[] = {
    {"\x02h2", &coil__http2}, /* unless --http2 off */
    {"\x08http/1.1", &coil__http1},
    {"\x08http/1.0", &coil__http1},
};

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    for (size_t k = 0; k < sizeof(alpn_protos) / sizeof(alpn_protos[0]); k++) {
        if (alpn_protos[k].proto == &coil__http2 && !coil__h2_on(coil__app))
            continue;
        const unsigned char *want = (const unsigned char *)alpn_protos[k].name;
        for (unsigned i = 0; i < inlen; i += 1u + in[i]) {
            if (in[i] == want[0] && i + 1u + in[i] <= inlen &&
                !memcmp(in + i + 1, want + 1, want[0])) {
                *out = in + i + 1;
                *outlen = in[i];
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    /* RFC 7301: a client that offers only protocols we do not speak gets a fatal alert. */
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* name matches pattern: equal ignoring case, or pattern "*.rest" and name one label + ".rest". */
static bool name_matches(const char *pattern, const char *name)
{
    if (pattern[0] != '*' || pattern[1] != '.')
        return strcasecmp(pattern, name) == 0;
    const char *dot = strchr(name, '.');
    return dot && dot != name && strcasecmp(pattern + 1, dot) == 0;
}

static int sni_select(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    (void)arg;
    struct coil__tls *t = SSL_get_app_data(ssl);
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!t || !name)
        return SSL_TLSEXT_ERR_OK;
    for (unsigned i = 0; i < t->certs->n; i++) {
        if (name_matches(t->certs->sni[i].name, name)) {
            SSL_set_SSL_CTX(ssl, t->certs->sni[i].ctx);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK; /* an unknown name gets the default certificate */
}

/* ---- the BIO between OpenSSL and the ring ----------------------------------------------- */

static int bio_read(BIO *b, char *out, int len)
{
    struct coil__tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!t->win_len) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = t->win_len < (size_t)len ? t->win_len : (size_t)len;
    memcpy(out, t->win, n);
    t->win += n;
    t->win_len -= n;
    return (int)n;
}

static int bio_write(BIO *b, const char *in, int len)
{
    struct coil__tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (t->ktx == KTX_OFF) {
        char *p = coil__obuf_reserve(t->w, &t->cpend, (size_t)len);
        if (!p) {
            t->oom = true;
            return -1;
        }
        memcpy(p, in, (size_t)len);
        t->cpend->len += (size_t)len;
        return len;
    }
    /* The kernel seals: a record's content, of the type OpenSSL announced (application data
     * when it announced none). OpenSSL writes at most one record's worth at a time. */
    uint8_t type = t->ctl_type ? t->ctl_type : 23;
    t->ctl_type = 0;
    char *p = len <= 0xffff ? coil__obuf_reserve(t->w, &t->ctl, 3 + (size_t)len) : NULL;
    if (!p) {
        t->oom = true;
        return -1;
    }
    p[0] = (char)type;
    p[1] = (char)(len >> 8);
    p[2] = (char)len;
    memcpy(p + 3, in, (size_t)len);
    t->ctl->len += 3 + (size_t)len;
    return len;
}

/* The kernel's crypto_info size for its cipher, or 0 if we do not know it. */
static size_t kinfo_size(const struct tls_crypto_info *i)
{
    switch (i->cipher_type) {
    case TLS_CIPHER_AES_GCM_128:
        return sizeof(struct tls12_crypto_info_aes_gcm_128);
    case TLS_CIPHER_AES_GCM_256:
        return sizeof(struct tls12_crypto_info_aes_gcm_256);
    case TLS_CIPHER_CHACHA20_POLY1305:
        return sizeof(struct tls12_crypto_info_chacha20_poly1305);
    }
    return 0;
}

/* OpenSSL's write side switched keys (info: the kernel's crypto_info, the record sequence
 * included). 1: the kernel will seal from here; 0: OpenSSL keeps sealing. */
static long ktx_capture(struct coil__tls *t, const struct tls_crypto_info *info)
{
    const struct coil__tlscfg *cfg = t->w->app->tls;
    if (t->ktx != KTX_OFF) {
        /* A TLS 1.3 key update: this kernel's TLS_TX cannot be changed, and OpenSSL now writes
         * records the old keys must not seal. */
        t->ktx_broken = true;
        return 0;
    }
    size_t n = kinfo_size(info);
    if (!n || n > sizeof(t->kinfo) ||
        !(cfg->kciphers & KCIPHER_BIT(info->version, info->cipher_type)))
        return 0;
    memcpy(t->kinfo, info, n);
    t->kinfo_len = (uint16_t)n;
    t->ktx = KTX_PENDING;
    return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct coil__tls *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* written bytes are queued at once, in order */
    case BIO_CTRL_GET_KTLS_SEND:
        return t->ktx != KTX_OFF;
    case CTRL_SET_KTLS:
        /* The receive side stays with OpenSSL (see the top of the file). */
        return num ? ktx_capture(t, ptr) : 0;
    case CTRL_KTLS_RECORD_TYPE:
        t->ctl_type = (uint8_t)num;
        return 0;
    case CTRL_KTLS_RECORD_TYPE_CLEAR:
        t->ctl_type = 0;
        return 0;
    }
    return 0;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

/* ---- start-up --------------------------------------------------------------------------- */

/* A connected loopback TCP socket, or -1 with errno set. Its listener (*l) must stay open
 * while the socket is used: closing it resets the connection it has not accepted. */
static int loopback_socket(int *l)
{
    *l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int ok = *l >= 0 && c >= 0 && bind(*l, (struct sockaddr *)&a, sizeof(a)) == 0 &&
             listen(*l, 1) == 0 && getsockname(*l, (struct sockaddr *)&a, &len) == 0 &&
             connect(c, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (ok)
        return c;
    int e = errno;
    if (*l >= 0)
        close(*l);
    if (c >= 0)
        close(c);
    errno = e;
    return -1;
}

/* Which ciphers the kernel seals (KCIPHER_BIT), set up on throwaway sockets with zero keys;
 * 0 with why[] saying why none. */
static unsigned probe_ktls(char *why, size_t cap)
{
    static const uint16_t versions[] = {TLS_1_2_VERSION, TLS_1_3_VERSION};
    static const uint16_t ciphers[] = {TLS_CIPHER_AES_GCM_128, TLS_CIPHER_AES_GCM_256,
                                       TLS_CIPHER_CHACHA20_POLY1305};
    unsigned found = 0;
    int err = 0;
    why[0] = '\0';
    for (size_t v = 0; v < 2; v++) {
        for (size_t k = 0; k < 3; k++) {
            int l, fd = loopback_socket(&l);
            if (fd < 0) {
                snprintf(why, cap, "could not probe for kernel TLS: %s", strerror(errno));
                return 0;
            }
            if (setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) < 0) {
                snprintf(why, cap,
                         "kernel TLS is not available: setsockopt TCP_ULP \"tls\": %s (load "
                         "the tls module with `modprobe tls`, or the kernel lacks CONFIG_TLS)",
                         strerror(errno));
                close(fd);
                close(l);
                return 0;
            }
            union {
                struct tls_crypto_info info;
                unsigned char bytes[64];
            } u;
            memset(&u, 0, sizeof(u));
            u.info.version = versions[v];
            u.info.cipher_type = ciphers[k];
            if (setsockopt(fd, SOL_TLS, TLS_TX, &u, (socklen_t)kinfo_size(&u.info)) == 0)
                found |= KCIPHER_BIT(versions[v], ciphers[k]);
            else
                err = errno;
            close(fd);
            close(l);
        }
    }
    if (!found)
        snprintf(why, cap, "the kernel's tls module takes none of coil's ciphers: %s",
                 strerror(err));
    return found;
}

/* The ciphers the kernel takes for version, as text: "AES-128-GCM, ChaCha20-Poly1305". */
static const char *kcipher_names(const struct coil__tlscfg *cfg, uint16_t version, char *buf,
                                 size_t cap)
{
    static const struct {
        uint16_t cipher;
        const char *name;
    } names[] = {{TLS_CIPHER_AES_GCM_128, "AES-128-GCM"},
                 {TLS_CIPHER_AES_GCM_256, "AES-256-GCM"},
                 {TLS_CIPHER_CHACHA20_POLY1305, "ChaCha20-Poly1305"}};
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (cfg->kciphers & KCIPHER_BIT(version, names[i].cipher))
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", names[i].name);
    return n ? buf : "none";
}

int coil__tls_install(struct coil_app *app)
{
    struct coil__tlscfg *cfg = app->tls;
    if (cfg->port < 0) {
        if (cfg->cert || cfg->key || cfg->nsni || cfg->no_http) {
            fprintf(stderr, "coil: --tls-cert, --tls-key, --tls-sni and --no-http need "
                            "--tls-port\n");
            return -1;
        }
        return 0;
    }
    if (!cfg->cert || !cfg->key) {
        fprintf(stderr, "coil: --tls-port needs --tls-cert and --tls-key\n");
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        int p = i ? cfg->port2 : cfg->port;
        if (p > 0 && p == app->cfg.port && !cfg->no_http) {
            fprintf(stderr, "coil: --tls-port %d is --port too: give TLS a port of its own\n", p);
            return -1;
        }
    }
    char why[256];
    if (cfg->offload != OFFLOAD_USER)
        cfg->kciphers = probe_ktls(why, sizeof(why));
    if (cfg->offload == OFFLOAD_KERNEL && !cfg->kciphers) {
        fprintf(stderr, "coil: --tls-offload kernel: %s\n", why);
        return -1;
    }
    if (ticket_key_new(&cfg->tkeys[0]) < 0) {
        fprintf(stderr, "coil: TLS: no random bytes for a session ticket key\n");
        return -1;
    }
    cfg->cur = certs_load(cfg);
    if (!cfg->cur)
        return -1;
    int index = BIO_get_new_index();
    cfg->bio = index < 0 ? NULL : BIO_meth_new(index | BIO_TYPE_SOURCE_SINK, "coil ring");
    if (!cfg->bio || !BIO_meth_set_read(cfg->bio, bio_read) ||
        !BIO_meth_set_write(cfg->bio, bio_write) || !BIO_meth_set_ctrl(cfg->bio, bio_ctrl) ||
        !BIO_meth_set_create(cfg->bio, bio_create) || coil_app_on_reload(app, reload, cfg) < 0) {
        fprintf(stderr, "coil: TLS: out of memory\n");
        return -1;
    }
    if (cfg->offload == OFFLOAD_USER)
        coil__log("TLS record layer: user space (--tls-offload user)");
    else if (!cfg->kciphers)
        coil__log("TLS record layer: user space (%s)", why);
    else {
        char v12[64], v13[64];
        coil__log("TLS record layer: kernel for sending (TLS 1.2: %s; TLS 1.3: %s; other "
                  "ciphers in user space), user space for receiving",
                  kcipher_names(cfg, TLS_1_2_VERSION, v12, sizeof(v12)),
                  kcipher_names(cfg, TLS_1_3_VERSION, v13, sizeof(v13)));
    }
    return 0;
}

void coil__tls_free(struct coil_app *app)
{
    struct coil__tlscfg *cfg = app->tls;
    if (!cfg)
        return;
    certs_put(cfg->cur);
    BIO_meth_free(cfg->bio);
    for (unsigned i = 0; i < cfg->nsni; i++) {
        free(cfg->sni[i].name);
        free(cfg->sni[i].cert);
        free(cfg->sni[i].key);
    }
    free(cfg->sni);
    free(cfg->cert);
    free(cfg->key);
    pthread_mutex_destroy(&cfg->lock);
    pthread_mutex_destroy(&cfg->tlock);
    OPENSSL_cleanse(cfg->tkeys, sizeof(cfg->tkeys));
    free(cfg);
    app->tls = NULL;
}

int coil__tls_port(const struct coil_app *app)
{
    return app->tls ? app->tls->port : -1;
}

bool coil__tls_no_http(const struct coil_app *app)
{
    return app->tls && app->tls->no_http;
}

void coil__tls_set_port(struct coil_app *app, uint16_t port)
{
    app->tls->port = port;
}

int coil__tls_port2(const struct coil_app *app)
{
    return app->tls && app->tls->port >= 0 ? app->tls->port2 : -1;
}

void coil__tls_set_port2(struct coil_app *app, uint16_t port)
{
    app->tls->port2 = port;
}

/* ---- per worker ------------------------------------------------------------------------- */

/* A worker's TLS: its connections' state by slot, the scratch buffer decrypted input passes
 * through, and its reference to the current certificates (refreshed when a reload bumps gen,
 * so an accept takes no lock). */
struct coil__tlsw {
    struct coil__tls **conns;
    char *scratch;
    struct certs *certs;
    unsigned gen;
};

int coil__tls_start(struct coil__worker *w)
{
    struct coil__tlscfg *cfg = w->app->tls;
    if (coil__tls_port(w->app) < 0)
        return 0;
    size_t n = w->app->cfg.max_conns;
    struct coil__tlsw *tw = coil__walloc(&w->wa, sizeof(*tw));
    if (!tw)
        return -ENOMEM;
    w->tls = tw;
    tw->conns = coil__walloc(&w->wa, n * sizeof(*tw->conns));
    tw->scratch = coil__walloc(&w->wa, w->app->cfg.recv_buf_size);
    tw->gen = atomic_load_explicit(&cfg->gen, memory_order_acquire);
    tw->certs = certs_get(cfg);
    if (!tw->conns || !tw->scratch)
        return -ENOMEM;
    memset(tw->conns, 0, n * sizeof(*tw->conns));
    return 0;
}

void coil__tls_stop(struct coil__worker *w)
{
    struct coil__tlsw *tw = w->tls;
    if (!tw)
        return;
    certs_put(tw->certs);
    coil__wfree(&w->wa, tw->conns);
    coil__wfree(&w->wa, tw->scratch);
    coil__wfree(&w->wa, tw);
    w->tls = NULL;
}

/* ---- per connection --------------------------------------------------------------------- */

static struct coil__tls *tls_of(const struct coil__worker *w, const struct coil_conn *c)
{
    return w->tls->conns[c->idx];
}

int coil__tls_accept(struct coil__worker *w, struct coil_conn *c)
{
    struct coil__tlscfg *cfg = w->app->tls;
    struct coil__tls *t = coil__walloc(&w->wa, sizeof(*t));
    if (!t)
        return -ENOMEM;
    memset(t, 0, sizeof(*t));
    t->w = w;
    t->c = c;
    struct coil__tlsw *tw = w->tls;
    unsigned gen = atomic_load_explicit(&cfg->gen, memory_order_acquire);
    if (gen != tw->gen) { /* reloaded since: take the new set */
        certs_put(tw->certs);
        tw->certs = certs_get(cfg);
        tw->gen = gen;
    }
    t->certs = tw->certs;
    atomic_fetch_add_explicit(&t->certs->refs, 1, memory_order_relaxed);
    t->ssl = SSL_new(t->certs->dflt);
    BIO *bio = t->ssl ? BIO_new(cfg->bio) : NULL;
    if (!bio) {
        SSL_free(t->ssl);
        certs_put(t->certs);
        coil__wfree(&w->wa, t);
        ERR_clear_error();
        return -ENOMEM;
    }
    BIO_set_data(bio, t);
    SSL_set_bio(t->ssl, bio, bio); /* one BIO both ways: the SSL owns its one reference */
    SSL_set_app_data(t->ssl, t);
    SSL_set_accept_state(t->ssl);
    w->tls->conns[c->idx] = t;
    c->flags |= CONN_TLS;
    return 0;
}

void coil__tls_close(struct coil__worker *w, struct coil_conn *c)
{
    struct coil__tls *t = tls_of(w, c);
    if (!t)
        return;
    w->tls->conns[c->idx] = NULL;
    SSL_free(t->ssl);
    certs_put(t->certs);
    coil__buf_free(w, t->cpend, t->cpend ? t->cpend->pooled : 0);
    coil__buf_free(w, t->ctl, t->ctl ? t->ctl->pooled : 0);
    OPENSSL_cleanse(t->kinfo, sizeof(t->kinfo));
    coil__wfree(&w->wa, t);
}

bool coil__tls_handshaking(const struct coil__worker *w, const struct coil_conn *c)
{
    return !tls_of(w, c)->ready;
}

/* Records are waiting to be sent (raw, or for the kernel to seal). */
static bool has_records(const struct coil__tls *t)
{
    return (t->cpend && t->cpend->len) || (t->ctl && t->ctl->sent < t->ctl->len);
}

/* The connection's TLS is over: send what OpenSSL queued (an alert), then close. */
static void fail(struct coil__worker *w, struct coil_conn *c, struct coil__tls *t, int err)
{
    if (coil__debugging()) {
        char buf[256];
        const char *peer;
        size_t n = coil__conn_peer(w, c, &peer);
        coil__debug("TLS %s with %.*s failed: %s", t->ready ? "connection" : "handshake", (int)n,
                    peer, err == SSL_ERROR_SSL ? ssl_error(buf, sizeof(buf)) : "connection error");
    }
    ERR_clear_error();
    if (!t->ready)
        STAT_INC(w, tls_failed);
    t->notified = true; /* after a fatal alert, nothing more */
    if (t->oom || !has_records(t)) {
        coil__conn_abort(w, c);
        return;
    }
    coil__conn_close_after(w, c);
}

static void handshake_done(struct coil__worker *w, struct coil_conn *c, struct coil__tls *t)
{
    t->ready = true;
    const unsigned char *name;
    unsigned len;
    SSL_get0_alpn_selected(t->ssl, &name, &len);
    for (size_t k = 0; len && k < sizeof(alpn_protos) / sizeof(alpn_protos[0]); k++)
        if (len == (unsigned char)alpn_protos[k].name[0] &&
            !memcmp(name, alpn_protos[k].name + 1, len))
            c->proto = alpn_protos[k].proto;
    if (SSL_version(t->ssl) == TLS1_3_VERSION)
        STAT_INC(w, tls13);
    else
        STAT_INC(w, tls12);
    if (SSL_session_reused(t->ssl))
        STAT_INC(w, tls_resumed);
    if (t->ktx != KTX_OFF)
        STAT_INC(w, tls_ktx);
    /* The first request's head has its own header timeout, from now. */
    c->read_deadline = w->now_ms + w->app->cfg.header_timeout_ms;
    coil__conn_set_timer(w, c);
}

/* Decrypts what is there into the scratch buffer and hands it to the protocol, until OpenSSL
 * wants more bytes or the connection stops reading. */
static void read_records(struct coil__worker *w, struct coil_conn *c, struct coil__tls *t)
{
    char *buf = w->tls->scratch;
    size_t cap = w->app->cfg.recv_buf_size;
    for (;;) {
        size_t n = 0;
        int r = 1, err = SSL_ERROR_NONE;
        while (n < cap) {
            ERR_clear_error();
            r = SSL_read(t->ssl, buf + n, (int)(cap - n));
            if (r <= 0) {
                err = SSL_get_error(t->ssl, r);
                break;
            }
            n += (size_t)r;
        }
        if (n) {
            c->proto->on_data(w, c, buf, n);
            if (c->flags & (CONN_CLOSING | CONN_LINGER | CONN_CLOSE_AFTER))
                return;
        }
        if (r > 0)
            continue; /* the scratch buffer filled up: there may be more */
        if (err == SSL_ERROR_WANT_READ)
            return;
        if (err == SSL_ERROR_ZERO_RETURN) { /* the peer's close_notify: its end of input */
            c->flags |= CONN_EOF;
            c->proto->on_eof(w, c);
            return;
        }
        fail(w, c, t, err);
        return;
    }
}

/* A plain HTTP request on the TLS port (a TLS client's first byte is 22, a handshake record):
 * told so in plain HTTP, as a browser shows it, then closed. */
static void plain_http(struct coil__worker *w, struct coil_conn *c, struct coil__tls *t)
{
    static const char body[] = "This port speaks HTTPS: use https:// in the URL.\n";
    char head[160];
    int hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      sizeof(body) - 1);
    char *p = coil__obuf_reserve(w, &t->cpend, (size_t)hn + sizeof(body) - 1);
    if (!p) {
        coil__conn_abort(w, c);
        return;
    }
    memcpy(p, head, (size_t)hn);
    memcpy(p + hn, body, sizeof(body) - 1);
    t->cpend->len += (size_t)hn + sizeof(body) - 1;
    STAT_INC(w, tls_failed);
    if (coil__debugging()) {
        const char *peer;
        size_t pn = coil__conn_peer(w, c, &peer);
        coil__debug("TLS handshake with %.*s failed: plain HTTP on the TLS port", (int)pn, peer);
    }
    t->notified = true;
    coil__conn_close_after(w, c);
}

void coil__tls_input(struct coil__worker *w, struct coil_conn *c, const char *data, size_t n)
{
    struct coil__tls *t = tls_of(w, c);
    if (t->notified || (c->flags & CONN_EOF))
        return; /* nothing more is read after an alert or the peer's close_notify */
    if (!t->fed && data[0] >= 'A' && data[0] <= 'Z') {
        plain_http(w, c, t);
        return;
    }
    t->fed = true;
    t->win = data;
    t->win_len = n;
    if (!t->ready) {
        ERR_clear_error();
        int r = SSL_do_handshake(t->ssl);
        if (r == 1) {
            handshake_done(w, c, t);
        } else {
            int err = SSL_get_error(t->ssl, r);
            if (err != SSL_ERROR_WANT_READ || t->oom)
                fail(w, c, t, err);
            else if (has_records(t))
                coil__conn_queue_flush(w, c);
            t->win_len = 0;
            return;
        }
    }
    read_records(w, c, t);
    t->win_len = 0;
    if (t->ktx != KTX_OFF && !t->ktx_rekey &&
        SSL_get_key_update_type(t->ssl) != SSL_KEY_UPDATE_NONE && !(c->flags & CONN_CLOSING)) {
        /* RFC 8446 4.6.3: our next application data must follow a KeyUpdate of ours, and the
         * kernel's key cannot change: nothing more is sent but a close_notify (under the keys
         * in use). */
        t->ktx_rekey = true;
        coil__conn_close_after(w, c);
    }
    if (t->oom)
        coil__conn_abort(w, c);
    else if (has_records(t) && !(c->flags & CONN_CLOSING))
        coil__conn_queue_flush(w, c); /* handshake output, tickets, a key update's answer */
}

/* The socket reached EOF without a close_notify. */
void coil__tls_eof(struct coil__worker *w, struct coil_conn *c)
{
    struct coil__tls *t = tls_of(w, c);
    if (!t->ready) {
        /* An answer queued already (an alert, the 400 for plain HTTP) still goes out: the
         * lingering close then ends at once, as the peer has closed. */
        if (!(c->flags & CONN_CLOSE_AFTER))
            coil__conn_abort(w, c);
        return;
    }
    /* A truncation attack only matters where framing does not: the protocol decides (HTTP/1.1
     * answers what it has and treats an unfinished request as an aborted one). */
    c->proto->on_eof(w, c);
}

/* Sets the socket's send side to the kernel's record layer with the keys OpenSSL handed over. */
static int ktx_start(struct coil_conn *c, struct coil__tls *t)
{
    int rc = setsockopt(c->fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls"));
    if (rc == 0)
        rc = setsockopt(c->fd, SOL_TLS, TLS_TX, t->kinfo, t->kinfo_len);
    OPENSSL_cleanse(t->kinfo, sizeof(t->kinfo));
    if (rc < 0) {
        coil__debug("TLS: kernel TLS refused the connection's keys: %s", strerror(errno));
        return -1;
    }
    t->ktx = KTX_ON;
    return 0;
}

/* The next record OpenSSL wrote since the switch, in a buffer of its own for one send. */
static int ctl_pop(struct coil__worker *w, struct coil__tls *t, struct coil__obuf **out)
{
    struct coil__obuf *q = t->ctl;
    const unsigned char *h = (const unsigned char *)q->data + q->sent;
    size_t n = (size_t)h[1] << 8 | h[2];
    struct coil__obuf *b = NULL;
    char *p = coil__obuf_reserve(w, &b, n ? n : 1);
    if (!p)
        return -1;
    memcpy(p, h + 3, n);
    b->len = n;
    b->rtype = h[0];
    q->sent += 3 + n;
    if (q->sent == q->len) {
        t->ctl = NULL;
        coil__buf_free(w, q, q->pooled);
    }
    *out = b;
    return 0;
}

/* What goes out next with kernel TLS: the bytes OpenSSL wrote before the switch (sealed by it,
 * or handshake records), then the switch, then OpenSSL's later records one by one, then the
 * protocol's plaintext as it is. */
static int take_kernel(struct coil__worker *w, struct coil_conn *c, struct coil__tls *t,
                       struct coil__obuf **out)
{
    if (t->cpend && t->cpend->len) {
        *out = t->cpend;
        t->cpend = NULL;
        return 0;
    }
    if (t->ktx == KTX_PENDING && ktx_start(c, t) < 0)
        return -1;
    if (t->ctl)
        return ctl_pop(w, t, out);
    if (t->ready && !t->notified && !t->ktx_rekey && c->pend && c->pend->len) {
        *out = c->pend;
        (*out)->proto = true;
        c->pend = NULL;
        return 0;
    }
    if (t->ktx_rekey && c->pend) { /* not to be sent: see coil__tls_input */
        coil__buf_free(w, c->pend, c->pend->pooled);
        c->pend = NULL;
    }
    if ((c->flags & CONN_CLOSE_AFTER) && t->ready && !t->notified && !c->pend) {
        t->notified = true;
        ERR_clear_error();
        SSL_shutdown(t->ssl); /* close_notify: a record for ctl */
        ERR_clear_error();
        if (t->oom)
            return -1;
        if (t->ctl)
            return ctl_pop(w, t, out);
    }
    return 0;
}

int coil__tls_take(struct coil__worker *w, struct coil_conn *c, struct coil__obuf **out)
{
    struct coil__tls *t = tls_of(w, c);
    *out = NULL;
    if (t->oom || t->ktx_broken)
        return -1;
    if (t->ktx != KTX_OFF)
        return take_kernel(w, c, t, out);
    struct coil__obuf *p = c->pend;
    if (t->ready && !t->notified && p && p->len) {
        /* At most SEAL_MAX per send, so a large response costs a bounded ciphertext buffer; the
         * rest waits in c->pend behind p->sent (a plain connection never uses pend's sent). */
        size_t n = p->len - p->sent < SEAL_MAX ? p->len - p->sent : SEAL_MAX;
        size_t records = n / RECORD_MAX + 1;
        if (!coil__obuf_reserve(w, &t->cpend, n + records * RECORD_OVERHEAD))
            return -1;
        ERR_clear_error();
        int r = SSL_write(t->ssl, p->data + p->sent, (int)n);
        if (r <= 0 || (size_t)r != n) {
            ERR_clear_error();
            return -1;
        }
        t->cpend->proto = true;
        p->sent += n;
        if (p->sent == p->len) {
            c->pend = NULL;
            coil__buf_free(w, p, p->pooled);
        } else if (p->len - p->sent <= p->sent) {
            /* Less left than sealed: moved to the front, so the protocol's next appends do not
             * grow the buffer behind dead bytes (the copy is paid for by what was sealed). */
            memmove(p->data, p->data + p->sent, p->len - p->sent);
            p->len -= p->sent;
            p->sent = 0;
        }
    }
    if ((c->flags & CONN_CLOSE_AFTER) && t->ready && !t->notified && !c->pend) {
        t->notified = true;
        ERR_clear_error();
        SSL_shutdown(t->ssl); /* queues close_notify; the peer's is not awaited */
        ERR_clear_error();
    }
    if (t->oom)
        return -1;
    if (t->cpend && t->cpend->len) {
        *out = t->cpend;
        t->cpend = NULL;
    }
    return 0;
}

void coil__tls_prep_record(struct coil__worker *w, struct coil_conn *c, struct io_uring_sqe *sqe,
                           const char *data, size_t n, uint8_t rtype)
{
    struct coil__tls *t = tls_of(w, c);
    t->iov.iov_base = (void *)data;
    t->iov.iov_len = n;
    memset(&t->msg, 0, sizeof(t->msg));
    t->msg.msg_iov = &t->iov;
    t->msg.msg_iovlen = 1;
    t->msg.msg_control = t->cmsg.buf;
    t->msg.msg_controllen = sizeof(t->cmsg.buf);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&t->msg);
    cm->cmsg_level = SOL_TLS;
    cm->cmsg_type = TLS_SET_RECORD_TYPE;
    cm->cmsg_len = CMSG_LEN(sizeof(uint8_t));
    *CMSG_DATA(cm) = rtype;
    io_uring_prep_sendmsg(sqe, c->fd, &t->msg, MSG_NOSIGNAL);
}
