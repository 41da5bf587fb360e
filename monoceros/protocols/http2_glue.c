/* The compiled glue between libnghttp2 and monoceros (cffi API mode; built by http2_glue_build.py).
 *
 * It parses nothing: libnghttp2 parses every frame and decodes HPACK. The glue only gathers what the library
 * hands over, so that Python runs once per event instead of once per header field, and keeps in C the cheap
 * checks that run on every frame:
 *   - a request's header fields, joined as name NUL value NUL ... in one buffer, bounded while they arrive
 *     (size and count: libnghttp2 1.52 enforces neither, so an HPACK bomb would reach Python);
 *   - the reset budget in both directions (rapid reset, MadeYouReset) and the control-frame budget (PING,
 *     SETTINGS, PRIORITY, empty DATA, WINDOW_UPDATE that opens a window nothing waits on);
 *   - the lower-stream-id check libnghttp2 leaves out (RFC 9113 5.1.1; nghttp2 issue 1300);
 *   - a response head or trailer block handed over as one buffer, made into an nghttp2_nv array here;
 *   - the RST_STREAM(NO_ERROR) that follows a response completed before its request (RFC 9113 8.1).
 * Every byte it reads from a buffer is bounded by that buffer's length; nothing is kept past a callback
 * except the gathered block, which the connection owns and frees (mc_conn_free).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <nghttp2/nghttp2.h>

#define MC_SKIPPED 64          /* stream-id ranges the client skipped, remembered for the lower-id check */
#define MC_NV_STACK 32         /* response fields built on the stack; more are allocated */

enum { MC_OK = 0, MC_TOO_MANY_RESETS = 1, MC_TOO_MANY_CONTROLS = 2 };

typedef struct {
    double tokens, size, rate, last;
} mc_budget;

/* What the glue keeps for a stream (its nghttp2 stream user data), in a list the connection frees. */
typedef struct mc_stream {
    struct mc_stream *prev, *next;
    uint8_t *body;                /* a whole response body, copied: sent by mc_read_owned without Python */
    size_t len, off;
    int flags;
} mc_stream;

enum { MC_STOP_AFTER = 1, MC_OWNED = 2 };

typedef struct {
    void *handle;                 /* the Python engine (ffi.new_handle), passed back to every call */
    nghttp2_session *session;
    uint8_t *block;               /* the header block being gathered: name NUL value NUL ... */
    size_t len, cap;
    size_t size, max_size;        /* RFC 9113 6.5.2 size (name + value + 32 per field), and its limit */
    uint32_t count, max_count;
    int over;                     /* past a limit: the fields are dropped, the request is answered 431 */
    int32_t last_id;              /* the highest stream id the client opened */
    int32_t skipped[MC_SKIPPED][2];
    unsigned nskipped, next_skipped;
    mc_budget resets, controls;
    size_t data_sent;             /* DATA bytes sent since the last WINDOW_UPDATE received */
    size_t free_update;           /* as many make the next WINDOW_UPDATE free of the budget (http2.py) */
    int error;                    /* MC_TOO_MANY_*: a budget ended the connection */
    mc_stream streams;            /* the head of the list of mc_stream (a sentinel) */
} mc_conn;

/* What Python implements (cffi extern "Python"). */
static int mc_py_headers(void *handle, int32_t stream_id, uint8_t flags, int cat, int over, const uint8_t *block,
                         size_t len);
static int mc_py_data(void *handle, int32_t stream_id, const uint8_t *data, size_t len);
static int mc_py_end(void *handle, int32_t stream_id);
static int mc_py_close(void *handle, int32_t stream_id, uint32_t code);
static ssize_t mc_py_read(void *handle, int32_t stream_id, uint8_t *buf, size_t length, uint32_t *flags);

/* The stream's mc_stream, made (and listed) if it has none; NULL when memory is short. */
static mc_stream *mc_stream_of(mc_conn *c, int32_t stream_id) {
    mc_stream *st = nghttp2_session_get_stream_user_data(c->session, stream_id);
    if (st != NULL)
        return st;
    st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    if (nghttp2_session_set_stream_user_data(c->session, stream_id, st) != 0) {
        free(st);
        return NULL;
    }
    st->next = c->streams.next;
    st->prev = &c->streams;
    c->streams.next->prev = st;
    c->streams.next = st;
    return st;
}

static void mc_stream_free(mc_stream *st) {
    st->prev->next = st->next;
    st->next->prev = st->prev;
    free(st->body);
    free(st);
}

static double mc_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void mc_budget_init(mc_budget *b, double burst, double rate) {
    b->tokens = burst;
    b->size = burst;
    b->rate = rate;
    b->last = mc_now();
}

/* A token bucket: 0 once the burst is spent faster than the rate refills it. */
static int mc_spend(mc_budget *b) {
    double now = mc_now();
    double tokens = b->tokens + (now - b->last) * b->rate;
    if (tokens > b->size)
        tokens = b->size;
    b->last = now;
    if (tokens < 1.0) {
        b->tokens = tokens;
        return 0;
    }
    b->tokens = tokens - 1.0;
    return 1;
}

static void mc_spend_or_end(mc_conn *c, mc_budget *b, int why) {
    if (!mc_spend(b) && !c->error) {
        c->error = why;
        nghttp2_session_terminate_session(c->session, NGHTTP2_ENHANCE_YOUR_CALM);
    }
}

static int mc_append(mc_conn *c, const uint8_t *p, size_t n) {
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 1024;
        while (cap < c->len + n + 1)
            cap *= 2;
        uint8_t *grown = realloc(c->block, cap);
        if (grown == NULL)
            return -1;
        c->block = grown;
        c->cap = cap;
    }
    memcpy(c->block + c->len, p, n);
    c->len += n;
    c->block[c->len++] = 0;
    return 0;
}

static int mc_on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd, void *user_data) {
    mc_conn *c = user_data;
    if (hd->type == NGHTTP2_HEADERS && (hd->stream_id & 1) && hd->stream_id < c->last_id) {
        unsigned n = c->nskipped < MC_SKIPPED ? c->nskipped : MC_SKIPPED;
        for (unsigned i = 0; i < n; i++) {
            if (c->skipped[i][0] <= hd->stream_id && hd->stream_id <= c->skipped[i][1]) {
                /* The client's ids only grow; one it skipped is closed (RFC 9113 5.1.1). */
                nghttp2_session_terminate_session(session, NGHTTP2_PROTOCOL_ERROR);
                break;
            }
        }
    }
    return 0;
}

static int mc_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
    mc_conn *c = user_data;
    int32_t id = frame->hd.stream_id;
    (void)session;
    c->len = 0;
    c->size = 0;
    c->count = 0;
    c->over = 0;
    if (frame->headers.cat == NGHTTP2_HCAT_REQUEST && id > c->last_id) {
        if (id > c->last_id + 2) {
            c->skipped[c->next_skipped][0] = c->last_id + 2;
            c->skipped[c->next_skipped][1] = id - 2;
            c->next_skipped = (c->next_skipped + 1) % MC_SKIPPED;
            c->nskipped++;
        }
        c->last_id = id;
    }
    return 0;
}

static int mc_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                        const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data) {
    mc_conn *c = user_data;
    (void)session, (void)frame, (void)flags;
    c->size += namelen + valuelen + 32;
    c->count++;
    if (c->size <= c->max_size && c->count <= c->max_count) {
        /* NUL separates the fields; libnghttp2 refuses it in a field already, and this makes sure. */
        if (memchr(name, 0, namelen) || memchr(value, 0, valuelen))
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        if (mc_append(c, name, namelen) || mc_append(c, value, valuelen))
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        return 0;
    }
    c->over = 1;
    if (c->size > 4 * c->max_size || c->count > 4 * c->max_count)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* far over: reset the stream, decode no more */
    return 0;
}

static int mc_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
    mc_conn *c = user_data;
    (void)session;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST || frame->headers.cat == NGHTTP2_HCAT_HEADERS)
            return mc_py_headers(c->handle, frame->hd.stream_id, frame->hd.flags, frame->headers.cat, c->over,
                                 c->block, c->len);
        return 0;
    case NGHTTP2_DATA:
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
            return mc_py_end(c->handle, frame->hd.stream_id);
        if (frame->hd.length == 0)
            mc_spend_or_end(c, &c->controls, MC_TOO_MANY_CONTROLS);
        return 0;
    case NGHTTP2_RST_STREAM:
        mc_spend_or_end(c, &c->resets, MC_TOO_MANY_RESETS);
        return 0;
    case NGHTTP2_SETTINGS:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK)
            return 0;
        /* fall through */
    case NGHTTP2_PING:
    case NGHTTP2_PRIORITY:
        mc_spend_or_end(c, &c->controls, MC_TOO_MANY_CONTROLS);
        return 0;
    case NGHTTP2_WINDOW_UPDATE:
        if (c->data_sent >= c->free_update)
            c->data_sent = 0;
        else
            mc_spend_or_end(c, &c->controls, MC_TOO_MANY_CONTROLS);
        return 0;
    default:
        return 0;
    }
}

static int mc_on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data,
                                 size_t len, void *user_data) {
    mc_conn *c = user_data;
    (void)session, (void)flags;
    return mc_py_data(c->handle, stream_id, data, len);
}

static int mc_on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
    mc_conn *c = user_data;
    int32_t id = frame->hd.stream_id;
    if (frame->hd.type == NGHTTP2_RST_STREAM) {
        /* MadeYouReset (CVE-2025-8671): the resets a client provokes count as its own. */
        mc_spend_or_end(c, &c->resets, MC_TOO_MANY_RESETS);
        return 0;
    }
    if (frame->hd.type == NGHTTP2_DATA)
        c->data_sent += frame->hd.length;
    if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        mc_stream *st = nghttp2_session_get_stream_user_data(session, id);
        if (st != NULL && (st->flags & MC_STOP_AFTER)) {
            st->flags &= ~MC_STOP_AFTER;
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR);
        }
    }
    return 0;
}

static int mc_on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data) {
    mc_conn *c = user_data;
    mc_stream *st = nghttp2_session_get_stream_user_data(session, stream_id);
    if (st != NULL) {
        int owned = st->flags & MC_OWNED;
        mc_stream_free(st);
        if (owned && error_code == NGHTTP2_NO_ERROR)
            return 0; /* a whole response, sent whole: Python has nothing left of it */
    }
    return mc_py_close(c->handle, stream_id, error_code);
}

/* The read callback of a body the glue owns (mc_respond): copies, without Python. */
static ssize_t mc_read_owned(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                             uint32_t *data_flags, nghttp2_data_source *source, void *user_data) {
    mc_stream *st = source->ptr;
    size_t n = st->len - st->off;
    (void)session, (void)stream_id, (void)user_data;
    if (n > length)
        n = length;
    memcpy(buf, st->body + st->off, n);
    st->off += n;
    if (st->off == st->len)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static ssize_t mc_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                       uint32_t *data_flags, nghttp2_data_source *source, void *user_data) {
    mc_conn *c = user_data;
    (void)session, (void)source;
    return mc_py_read(c->handle, stream_id, buf, length, data_flags);
}

/* Create the server session of ``c``; 0 or a libnghttp2 error code. */
static int mc_conn_new(mc_conn *c, void *handle, const nghttp2_option *option, size_t max_size, uint32_t max_count,
                       double burst, double rate, size_t free_update) {
    nghttp2_session_callbacks *cbs;
    int rc = nghttp2_session_callbacks_new(&cbs);
    if (rc != 0)
        return rc;
    nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, mc_on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, mc_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, mc_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, mc_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, mc_on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, mc_on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, mc_on_stream_close);
    memset(c, 0, sizeof(*c));
    c->streams.next = c->streams.prev = &c->streams;
    c->handle = handle;
    c->max_size = max_size;
    c->max_count = max_count;
    c->free_update = free_update;
    mc_budget_init(&c->resets, burst, rate);
    mc_budget_init(&c->controls, burst, rate);
    rc = nghttp2_session_server_new2(&c->session, cbs, c, option);
    nghttp2_session_callbacks_del(cbs);
    return rc;
}

static void mc_conn_free(mc_conn *c) {
    if (c->session != NULL)
        nghttp2_session_del(c->session); /* calls no stream-close callback: the list frees what is left */
    c->session = NULL;
    while (c->streams.next != NULL && c->streams.next != &c->streams)
        mc_stream_free(c->streams.next);
    free(c->block);
    c->block = NULL;
    c->len = c->cap = 0;
}

/* Fill ``nva`` with the ``count`` fields of ``block`` (name NUL value NUL ..., the last NUL optional);
 * the number filled, or -1 when the block holds fewer. Points into ``block``: libnghttp2 copies at submit. */
static long mc_fields(const uint8_t *block, size_t len, size_t count, nghttp2_nv *nva) {
    const uint8_t *p = block, *end = block + len;
    for (size_t i = 0; i < 2 * count; i++) {
        if (p > end)
            return -1;
        const uint8_t *stop = memchr(p, 0, (size_t)(end - p));
        size_t n = stop ? (size_t)(stop - p) : (size_t)(end - p);
        if (i % 2 == 0) {
            nva[i / 2].name = (uint8_t *)p;
            nva[i / 2].namelen = n;
            nva[i / 2].flags = NGHTTP2_NV_FLAG_NONE;
        } else {
            nva[i / 2].value = (uint8_t *)p;
            nva[i / 2].valuelen = n;
        }
        p += n + 1;
    }
    return (long)count;
}

/* kind 0: a final response with no body; 1: a final response whose body the read callback gives;
 * 2: an interim (1xx) head; 3: trailers. 0 or a libnghttp2 error code (-1: a malformed block). */
static int mc_submit(nghttp2_session *session, int32_t stream_id, int kind, const uint8_t *block, size_t len,
                     size_t count) {
    nghttp2_nv stack[MC_NV_STACK];
    nghttp2_nv *nva = count <= MC_NV_STACK ? stack : malloc(count * sizeof(nghttp2_nv));
    int rc;
    if (nva == NULL)
        return NGHTTP2_ERR_NOMEM;
    if (mc_fields(block, len, count, nva) < 0) {
        rc = -1;
    } else if (kind == 0) {
        rc = nghttp2_submit_response(session, stream_id, nva, count, NULL);
    } else if (kind == 1) {
        nghttp2_data_provider provider;
        provider.source.ptr = NULL;
        provider.read_callback = mc_read;
        rc = nghttp2_submit_response(session, stream_id, nva, count, &provider);
    } else if (kind == 2) {
        rc = nghttp2_submit_headers(session, NGHTTP2_FLAG_NONE, stream_id, NULL, nva, count, NULL);
        rc = rc < 0 ? rc : 0;
    } else {
        rc = nghttp2_submit_trailer(session, stream_id, nva, count);
    }
    if (nva != stack)
        free(nva);
    return rc;
}

/* A whole response at once: the head (as mc_submit's block) and the body, copied here and sent by
 * mc_read_owned; the stream's close then needs no Python. 0 or a libnghttp2 error code. */
static int mc_respond(mc_conn *c, int32_t stream_id, const uint8_t *block, size_t len, size_t count,
                      const uint8_t *body, size_t bodylen) {
    nghttp2_nv stack[MC_NV_STACK];
    nghttp2_nv *nva;
    nghttp2_data_provider provider;
    mc_stream *st;
    int rc;
    if (bodylen == 0)
        return mc_submit(c->session, stream_id, 0, block, len, count);
    st = mc_stream_of(c, stream_id);
    if (st == NULL || st->body != NULL)
        return NGHTTP2_ERR_NOMEM;
    st->body = malloc(bodylen);
    nva = count <= MC_NV_STACK ? stack : malloc(count * sizeof(nghttp2_nv));
    if (st->body == NULL || nva == NULL) {
        if (nva != stack)
            free(nva);
        return NGHTTP2_ERR_NOMEM;
    }
    memcpy(st->body, body, bodylen);
    st->len = bodylen;
    st->off = 0;
    st->flags |= MC_OWNED;
    if (mc_fields(block, len, count, nva) < 0) {
        rc = -1;
    } else {
        provider.source.ptr = st;
        provider.read_callback = mc_read_owned;
        rc = nghttp2_submit_response(c->session, stream_id, nva, count, &provider);
    }
    if (rc != 0)
        st->flags &= ~MC_OWNED;
    if (nva != stack)
        free(nva);
    return rc;
}

/* Reset ``stream_id`` with NO_ERROR once its response has gone (see mc_on_frame_send). */
static int mc_stop_after(mc_conn *c, int32_t stream_id) {
    mc_stream *st = mc_stream_of(c, stream_id);
    if (st == NULL)
        return NGHTTP2_ERR_NOMEM;
    st->flags |= MC_STOP_AFTER;
    return 0;
}

/* After Upgrade: h2c, stream 1 is open. */
static void mc_upgraded(mc_conn *c) {
    if (c->last_id < 1)
        c->last_id = 1;
}
